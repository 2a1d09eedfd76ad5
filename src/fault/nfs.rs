//! `nfs.unexport`: the server withdraws an export, as the failover in
//! incidents/storage-failover-stale-handles-xfs-on-loop did for a moment.

use super::{Active, FaultError, Targets, server};

pub(super) const KIND: &str = "nfs.unexport";

pub(super) fn unexport(
    world: &dyn Targets,
    name: &str,
    export: &str,
) -> Result<Active, FaultError> {
    set_exported(world, name, export, false)?;
    Ok(Active::NfsUnexport {
        server: name.to_string(),
        export: export.to_string(),
    })
}

pub(super) fn reexport(world: &dyn Targets, name: &str, export: &str) -> Result<(), FaultError> {
    set_exported(world, name, export, true)
}

/// knfsd: `exportfs -u` and back; ours: its handles answer STALE and back.
fn set_exported(
    world: &dyn Targets,
    name: &str,
    export: &str,
    exported: bool,
) -> Result<(), FaultError> {
    if let Some(knfsd) = world.knfsd(name) {
        return knfsd
            .set_exported(export, exported)
            .map_err(|source| FaultError::Knfsd {
                fault: KIND,
                source,
            });
    }
    server(world, KIND, name)?
        .set_exported(export, exported)
        .map_err(|source| FaultError::Nfs {
            fault: KIND,
            source,
        })
}
