//! `nfs.unexport`: the server withdraws an export, as the failover in
//! incidents/storage-failover-stale-handles-xfs-on-loop did for a moment.

use super::{Active, FaultError, Targets, server};

pub(super) const KIND: &str = "nfs.unexport";

pub(super) fn unexport(
    world: &dyn Targets,
    name: &str,
    export: &str,
) -> Result<Active, FaultError> {
    server(world, KIND, name)?
        .set_exported(export, false)
        .map_err(|source| FaultError::Nfs {
            fault: KIND,
            source,
        })?;
    Ok(Active::NfsUnexport {
        server: name.to_string(),
        export: export.to_string(),
    })
}

pub(super) fn reexport(world: &dyn Targets, name: &str, export: &str) -> Result<(), FaultError> {
    server(world, KIND, name)?
        .set_exported(export, true)
        .map_err(|source| FaultError::Nfs {
            fault: KIND,
            source,
        })
}
