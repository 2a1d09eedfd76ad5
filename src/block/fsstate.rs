//! Is a mounted filesystem healthy, read-only, or shut down?

use std::path::Path;

use nix::sys::statvfs::{FsFlags, statvfs};

use super::BlockError;
use crate::sys::xfs::{GoingDown, going_down};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsState {
    Ok,
    ReadOnly,
    /// XFS after a forced shutdown: getattr answers EIO
    /// (xfs_vn_getattr checks xfs_is_shutdown).
    Shutdown,
}

/// Classifies the filesystem mounted at `mountpoint`. stat(2) first: on a
/// shut-down XFS it fails with EIO; then statvfs for ST_RDONLY.
pub fn fs_state(mountpoint: &Path) -> Result<FsState, BlockError> {
    let inspect = |source| BlockError::Inspect {
        path: mountpoint.to_path_buf(),
        source,
    };
    match std::fs::metadata(mountpoint) {
        Ok(_) => {}
        Err(e) if e.raw_os_error() == Some(libc::EIO) => return Ok(FsState::Shutdown),
        Err(e) => return Err(inspect(e)),
    }
    match statvfs(mountpoint) {
        Ok(s) if s.flags().contains(FsFlags::ST_RDONLY) => Ok(FsState::ReadOnly),
        Ok(_) => Ok(FsState::Ok),
        Err(nix::errno::Errno::EIO) => Ok(FsState::Shutdown),
        Err(e) => Err(inspect(e.into())),
    }
}

/// Forces an XFS shutdown without flushing the log — what a dying disk
/// does to XFS, and what the "xfs shutdown" fault wants.
pub fn xfs_shutdown(mountpoint: &Path) -> Result<(), BlockError> {
    xfs_shutdown_with(mountpoint, GoingDown::NoLogFlush)
}

pub fn xfs_shutdown_with(mountpoint: &Path, how: GoingDown) -> Result<(), BlockError> {
    going_down(mountpoint, how).map_err(|source| BlockError::Shutdown {
        path: mountpoint.to_path_buf(),
        source,
    })?;
    tracing::info!(mountpoint = %mountpoint.display(), ?how, "xfs shut down");
    Ok(())
}
