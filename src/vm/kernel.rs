//! Which guest kernel to boot: an explicit image, or the newest
//! /boot/vmlinuz-* whose /lib/modules/<version> exists (the guest loads
//! everything it needs from there over 9p).

use std::path::{Path, PathBuf};

use super::VmError;
use super::moddep::modules_dir;

/// A bootable kernel image and the version its modules live under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestKernel {
    pub image: PathBuf,
    pub version: String,
}

impl GuestKernel {
    /// Accepts an image named like Debian's `vmlinuz-<version>`; the
    /// version names the modules directory, so it must have one.
    pub fn from_image(image: &Path) -> Result<Self, VmError> {
        if !image.is_file() {
            return Err(VmError::KernelMissing {
                path: image.to_path_buf(),
            });
        }
        let version = version_of(image).ok_or_else(|| VmError::KernelVersionUnknown {
            path: image.to_path_buf(),
        })?;
        let modules = modules_dir(&version);
        if !modules.join("modules.dep").is_file() {
            return Err(VmError::ModulesMissing {
                kernel: image.to_path_buf(),
                dir: modules,
            });
        }
        Ok(Self {
            image: image.to_path_buf(),
            version,
        })
    }

    /// The newest `vmlinuz-*` under `boot` that has modules.
    pub fn newest_in(boot: &Path) -> Result<Self, VmError> {
        let entries = std::fs::read_dir(boot).map_err(|_| VmError::NoKernel {
            dir: boot.to_path_buf(),
        })?;
        let mut candidates: Vec<(Vec<u64>, PathBuf)> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter_map(|p| version_of(&p).map(|v| (version_key(&v), p)))
            .collect();
        candidates.sort();
        candidates
            .into_iter()
            .rev()
            .find_map(|(_, p)| Self::from_image(&p).ok())
            .ok_or_else(|| VmError::NoKernel {
                dir: boot.to_path_buf(),
            })
    }
}

fn version_of(image: &Path) -> Option<String> {
    let name = image.file_name()?.to_str()?;
    let version = name.strip_prefix("vmlinuz-")?;
    (!version.is_empty()).then(|| version.to_string())
}

/// "6.1.0-56-amd64" → [6, 1, 0, 56, 64]: numeric runs compared as numbers so
/// 6.10 sorts after 6.9.
fn version_key(version: &str) -> Vec<u64> {
    version
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_numerically() {
        assert!(version_key("6.10.0-1-amd64") > version_key("6.9.12-3-amd64"));
        assert!(version_key("6.1.0-56-amd64") > version_key("6.1.0-9-amd64"));
    }

    #[test]
    fn version_comes_from_the_image_name() {
        assert_eq!(
            version_of(Path::new("/boot/vmlinuz-6.1.0-56-amd64")).as_deref(),
            Some("6.1.0-56-amd64")
        );
        assert_eq!(version_of(Path::new("/boot/bzImage")), None);
        assert_eq!(version_of(Path::new("/boot/vmlinuz-")), None);
    }

    #[test]
    fn a_boot_dir_without_kernels_names_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("vmlinuz-0.0.0-nomodules"), b"x").unwrap();
        let err = GuestKernel::newest_in(dir.path()).unwrap_err();
        assert!(
            err.to_string()
                .contains("apt-get install linux-image-amd64"),
            "{err}"
        );
    }
}
