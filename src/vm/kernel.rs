//! Which guest kernel to boot: an explicit image, a series ("6.12": the
//! newest /boot/vmlinuz-6.12.*), or by default the newest of
//! [`DEFAULT_SERIES`]; always one whose /lib/modules/<version> exists (the
//! guest loads everything it needs from there over 9p).

use std::path::{Path, PathBuf};

use super::VmError;
use super::moddep::modules_dir;

/// The series booted when no kernel is named: Debian bookworm's own
/// (`linux-image-amd64`), on which the seed scenarios and the figures in
/// bench/ were taken. ci/setup also installs 6.12 for the kernel matrix, and
/// "newest installed" would then silently move every default run to it.
/// Without a 6.1 kernel (another distribution), the newest with modules.
pub const DEFAULT_SERIES: &str = "6.1";

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

    /// What `--kernel` names: an image path (anything with a `/`), or a
    /// series looked up under `boot`.
    pub fn resolve(spec: &Path, boot: &Path) -> Result<Self, VmError> {
        match spec.to_str() {
            Some(series) if !series.contains('/') => Self::newest_of(boot, Some(series)),
            _ => Self::from_image(spec),
        }
    }

    /// The kernel booted when none is named.
    pub fn default_in(boot: &Path) -> Result<Self, VmError> {
        Self::newest_of(boot, Some(DEFAULT_SERIES)).or_else(|_| Self::newest_of(boot, None))
    }

    /// The newest `vmlinuz-*` under `boot` that has modules, in `series`
    /// ("6.1" takes 6.1.0-57 but not 6.12.3) when one is given.
    pub fn newest_of(boot: &Path, series: Option<&str>) -> Result<Self, VmError> {
        let entries = std::fs::read_dir(boot).map_err(|_| VmError::NoKernel {
            dir: boot.to_path_buf(),
            series: series.map(str::to_string),
        })?;
        let mut candidates: Vec<(Vec<u64>, PathBuf)> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter_map(|p| version_of(&p).map(|v| (v, p)))
            .filter(|(v, _)| series.is_none_or(|s| in_series(v, s)))
            .map(|(v, p)| (version_key(&v), p))
            .collect();
        candidates.sort();
        candidates
            .into_iter()
            .rev()
            .find_map(|(_, p)| Self::from_image(&p).ok())
            .ok_or_else(|| VmError::NoKernel {
                dir: boot.to_path_buf(),
                series: series.map(str::to_string),
            })
    }
}

/// "6.12.118+deb12-amd64" is in series "6.12" and "6", not in "6.1".
fn in_series(version: &str, series: &str) -> bool {
    version
        .strip_prefix(series)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '-', '+']))
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
    fn a_series_takes_its_own_versions_only() {
        assert!(in_series("6.1.0-57-amd64", "6.1"));
        assert!(in_series("6.12.118+deb12-amd64", "6.12"));
        assert!(!in_series("6.12.118+deb12-amd64", "6.1"));
        assert!(in_series("6.12.118+deb12-amd64", "6"));
        assert!(!in_series("6.10.2-amd64", "6.1"));
    }

    /// The installed version of `series` (from /lib/modules, which the
    /// lookup reads: ci/setup installs both 6.1 and 6.12).
    fn installed(series: &str) -> String {
        std::fs::read_dir("/lib/modules")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .find(|v| in_series(v, series) && modules_dir(v).join("modules.dep").is_file())
            .unwrap_or_else(|| panic!("no {series} kernel modules: run ci/setup"))
    }

    #[test]
    fn the_default_stays_on_6_1_when_a_newer_kernel_is_installed() {
        let (old, new) = (installed("6.1"), installed("6.12"));
        let boot = tempfile::tempdir().unwrap();
        for v in [&old, &new, &"9.9.9-nomodules".to_string()] {
            std::fs::write(boot.path().join(format!("vmlinuz-{v}")), b"x").unwrap();
        }
        let b = boot.path();
        assert_eq!(GuestKernel::default_in(b).unwrap().version, old);
        assert_eq!(GuestKernel::newest_of(b, None).unwrap().version, new);
        let by_series = GuestKernel::resolve(Path::new("6.12"), b).unwrap();
        assert_eq!(by_series.version, new);
        let by_path = GuestKernel::resolve(&b.join(format!("vmlinuz-{old}")), b).unwrap();
        assert_eq!(by_path.version, old);
        let err = GuestKernel::resolve(Path::new("5.10"), b).unwrap_err();
        assert!(err.to_string().contains("5.10"), "{err}");
    }

    #[test]
    fn a_boot_dir_without_kernels_names_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("vmlinuz-0.0.0-nomodules"), b"x").unwrap();
        let err = GuestKernel::default_in(dir.path()).unwrap_err();
        assert!(
            err.to_string()
                .contains("apt-get install linux-image-amd64"),
            "{err}"
        );
    }
}
