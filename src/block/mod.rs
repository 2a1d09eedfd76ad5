//! Loop devices, device-mapper volumes, image files, mkfs.xfs and mounts.

mod dm;
mod fsstate;
mod image;
mod loopdev;
mod mount;

use std::path::PathBuf;

pub use crate::sys::xfs::GoingDown;
pub use dm::{DmTarget, DmVolume, io_count, remove_dm_device};
pub use fsstate::{FsState, fs_state, xfs_shutdown, xfs_shutdown_with};
pub use image::{ImageFile, MKFS_XFS_MIN_BYTES, mkfs_xfs};
pub use loopdev::{LoopDevice, detach_loops};
pub use mount::{Mount, is_mounted, unmount};

#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("cannot record {what} in the ledger: {source}")]
    Ledger {
        what: String,
        source: crate::ledger::LedgerError,
    },
    #[error("cannot create image {path}: {source}")]
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
    #[error("cannot attach {backing} to a loop device: {source}")]
    Attach {
        backing: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot detach {device}: {source}")]
    Detach {
        device: PathBuf,
        source: std::io::Error,
    },
    /// mount(2) itself failed: no helper (mount.nfs) runs, so the errno
    /// and the options the kernel was given are all there is to say.
    #[error(
        "cannot mount {source_spec} on {target} ({fstype}{}): {source}",
        options_note(.options)
    )]
    Mount {
        source_spec: String,
        target: PathBuf,
        // Boxed strs keep SetupError, which holds this, small enough to
        // return by value (clippy::result_large_err).
        fstype: Box<str>,
        /// The option string passed to mount(2), e.g. NFS's `vers=3,addr=…`.
        options: Box<str>,
        source: nix::errno::Errno,
    },
    #[error("cannot unmount {target}: {steps}")]
    Umount { target: PathBuf, steps: String },
    #[error("cannot inspect filesystem at {path}: {source}")]
    Inspect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot shut down xfs at {path}: {source}")]
    Shutdown {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn options_note(options: &str) -> String {
    if options.is_empty() {
        String::new()
    } else {
        format!(", options {options}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Issue 13: a failed NFS mount said only `cannot mount … (nfs)`.
    #[test]
    fn a_failed_mount_names_its_errno_and_options() {
        let e = BlockError::Mount {
            source_spec: "10.77.0.1:/export".into(),
            target: "/mnt/share".into(),
            fstype: "nfs".into(),
            options: "vers=3,addr=10.77.0.1".into(),
            source: nix::errno::Errno::ECONNREFUSED,
        };
        assert_eq!(
            e.to_string(),
            "cannot mount 10.77.0.1:/export on /mnt/share (nfs, options vers=3,addr=10.77.0.1): \
             ECONNREFUSED: Connection refused"
        );
        let plain = BlockError::Mount {
            source_spec: "/dev/loop0".into(),
            target: "/mnt/db".into(),
            fstype: "xfs".into(),
            options: "".into(),
            source: nix::errno::Errno::EINVAL,
        };
        assert_eq!(
            plain.to_string(),
            "cannot mount /dev/loop0 on /mnt/db (xfs): EINVAL: Invalid argument"
        );
    }
}
