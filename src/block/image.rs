//! Sparse image files and mkfs.xfs.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::BlockError;

/// mkfs.xfs 6.1 rejects anything smaller ("Filesystem must be larger than
/// 300MB."). Measured with xfsprogs 6.1.0 (Debian 12, the guest's): `mkfs.xfs
/// -f` on a sparse file of 314572800 bytes (300M) succeeds; 314572799 bytes
/// and 299M fail. `validate` refuses smaller images with this figure.
pub const MKFS_XFS_MIN_BYTES: u64 = 300 * 1024 * 1024;

/// A sparse file used as a disk image; removed on drop unless `keep` was
/// called. The path may be on an NFS mount (the incident case: XFS on a
/// loop device over NFS).
#[derive(Debug)]
pub struct ImageFile {
    path: PathBuf,
    keep: bool,
}

impl ImageFile {
    /// Creates `path` (which must not exist) with `size` bytes and no blocks.
    pub fn create(path: &Path, size: u64) -> Result<ImageFile, BlockError> {
        let err = |source| BlockError::CreateImage {
            path: path.to_path_buf(),
            source,
        };
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(err)?;
        f.set_len(size).map_err(err)?;
        f.sync_all().map_err(err)?;
        Ok(ImageFile {
            path: path.to_path_buf(),
            keep: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Leave the file in place when dropped.
    pub fn keep(mut self) -> PathBuf {
        self.keep = true;
        self.path.clone()
    }
}

impl Drop for ImageFile {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        match std::fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // On a dead NFS mount this fails; the mount's teardown reports it.
            Err(e) => {
                tracing::warn!(image = %self.path.display(), error = %e, "image file left behind")
            }
        }
    }
}

/// Makes an XFS filesystem on `image` (a file or a block device).
pub fn mkfs_xfs(image: &Path) -> Result<(), BlockError> {
    if let Ok(meta) = std::fs::metadata(image)
        && meta.is_file()
        && meta.len() < MKFS_XFS_MIN_BYTES
    {
        return Err(BlockError::ImageTooSmall {
            path: image.to_path_buf(),
            size: meta.len(),
        });
    }
    let mut cmd = Command::new("mkfs.xfs");
    cmd.args(["-q", "-f"]).arg(image);
    Ok(crate::tools::run(cmd)?)
}
