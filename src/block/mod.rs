//! Loop devices, device-mapper volumes, image files, mkfs.xfs and mounts.

mod dm;
mod fsstate;
mod image;
mod loopdev;
mod mount;

use std::path::PathBuf;

pub use crate::sys::xfs::GoingDown;
pub use dm::{DmTarget, DmVolume, remove_dm_device};
pub use fsstate::{FsState, fs_state, xfs_shutdown, xfs_shutdown_with};
pub use image::{ImageFile, MKFS_XFS_MIN_BYTES, mkfs_xfs};
pub use loopdev::{LoopDevice, detach_loops};
pub use mount::{Mount, is_mounted, unmount};

#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("cannot record {what} in the ledger")]
    Ledger {
        what: String,
        source: crate::ledger::LedgerError,
    },
    #[error("cannot create image {path}")]
    CreateImage {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("image {path} is {size} bytes; mkfs.xfs 6.1 refuses filesystems under 300 MB")]
    ImageTooSmall { path: PathBuf, size: u64 },
    /// dmsetup, blockdev or mkfs.xfs failed (or could not start).
    #[error(transparent)]
    Command(#[from] crate::tools::CommandError),
    #[error("cannot read the output of `{command}`: {why}")]
    BadOutput { command: String, why: String },
    #[error("cannot attach {backing} to a loop device")]
    Attach {
        backing: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot detach {device}")]
    Detach {
        device: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot mount {source_spec} on {target} ({fstype})")]
    Mount {
        source_spec: String,
        target: PathBuf,
        fstype: String,
        source: nix::errno::Errno,
    },
    #[error("cannot unmount {target}: {steps}")]
    Umount { target: PathBuf, steps: String },
    #[error("cannot inspect filesystem at {path}")]
    Inspect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot shut down xfs at {path}")]
    Shutdown {
        path: PathBuf,
        source: std::io::Error,
    },
}
