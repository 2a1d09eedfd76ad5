//! XFS ioctls (xfs_fs.h): the forced shutdown used by the "xfs shutdown" fault.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// xfs_fs.h: `XFS_IOC_GOINGDOWN _IOR('X', 125, uint32_t)`.
const XFS_IOC_GOINGDOWN: libc::c_ulong =
    nix::request_code_read!(b'X', 125, std::mem::size_of::<u32>()) as libc::c_ulong;

/// How the filesystem goes down (xfs_fs.h XFS_FSOP_GOING_FLAGS_*).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoingDown {
    /// Freeze, flush, then shut down (XFS_FSOP_GOING_FLAGS_DEFAULT).
    Default = 0,
    /// Flush the log, then shut down (XFS_FSOP_GOING_FLAGS_LOGFLUSH).
    LogFlush = 1,
    /// Shut down without flushing: the closest thing to pulling the disk
    /// (XFS_FSOP_GOING_FLAGS_NOLOGFLUSH).
    NoLogFlush = 2,
}

/// Forces an XFS shutdown of the filesystem mounted at `mountpoint`.
pub fn going_down(mountpoint: &Path, how: GoingDown) -> io::Result<()> {
    let dir = File::open(mountpoint)?;
    let flags: u32 = how as u32;
    // SAFETY: XFS_IOC_GOINGDOWN reads one u32 of flags from the pointer;
    // `flags` lives across the call. Needs CAP_SYS_ADMIN.
    let rc = unsafe { libc::ioctl(dir.as_raw_fd(), XFS_IOC_GOINGDOWN, &flags as *const u32) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
