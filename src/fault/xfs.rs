//! `xfs.shutdown`: force the shutdown XFS performs on a log I/O error, the
//! end state of both the stale-handle and the volume-detach incidents.

use super::{Active, FaultError, Targets};

pub(super) const KIND: &str = "xfs.shutdown";

pub(super) fn shutdown(world: &dyn Targets, image: &str) -> Result<Active, FaultError> {
    let at = world
        .image_mountpoint(image)
        .ok_or_else(|| FaultError::UnknownTarget {
            fault: KIND,
            what: "image",
            name: image.to_string(),
        })?;
    crate::block::xfs_shutdown(at).map_err(|source| FaultError::Block {
        fault: KIND,
        source,
    })?;
    Ok(Active::Permanent { kind: KIND })
}
