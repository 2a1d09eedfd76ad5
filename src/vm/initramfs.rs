//! Building the guest's initramfs: busybox, the 9p/virtio-mmio modules in
//! load order (decompressed: busybox insmod takes ELF images only) and
//! vm/init.sh, as an uncompressed newc cpio (the kernel takes it as is),
//! cached per kernel version and input content.

use std::fs;
use std::path::{Path, PathBuf};

use super::VmError;
use super::cache::ContentHash;
use super::cpio::NewcArchive;
use super::kernel::GuestKernel;
use super::moddep::{ModuleDeps, builtin_names, module_image, module_name, modules_dir};
use super::qemu::NINEP_MSIZE;

/// The initramfs /init, with @MSIZE@ filled in at build time.
pub const INIT_SCRIPT: &str = include_str!("../../vm/init.sh");

/// The statically linked busybox that runs /init (Debian: busybox-static).
pub const BUSYBOX: &str = "/usr/bin/busybox";

/// What the initramfs must load to see the host root: the microvm's
/// virtio-mmio bus, the 9p virtio transport and the 9p filesystem.
pub const BOOT_MODULES: &[&str] = &["virtio_mmio", "9pnet_virtio", "9p"];

/// The initramfs for `kernel`, built on first use and cached in `cache`.
pub fn ensure(kernel: &GuestKernel, cache: &Path) -> Result<PathBuf, VmError> {
    let inputs = Inputs::collect(kernel)?;
    let path = cache.join(format!(
        "initramfs-{}-{}.cpio",
        kernel.version,
        inputs.key()
    ));
    if path.is_file() {
        tracing::debug!(path = %path.display(), "initramfs cached");
        return Ok(path);
    }
    fs::create_dir_all(cache).map_err(|source| VmError::Cache {
        path: cache.to_path_buf(),
        source,
    })?;
    let bytes = inputs.archive().map_err(|source| VmError::Cache {
        path: path.clone(),
        source,
    })?;
    // Write then rename: a concurrent run never sees half an archive.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    fs::write(&tmp, &bytes)
        .and_then(|()| fs::rename(&tmp, &path))
        .map_err(|source| VmError::Cache {
            path: path.clone(),
            source,
        })?;
    tracing::info!(path = %path.display(), bytes = bytes.len(), "initramfs built");
    Ok(path)
}

/// The bytes that go into the archive, read once for both key and build.
struct Inputs {
    version: String,
    script: String,
    busybox: Vec<u8>,
    /// (name, contents) in load order.
    modules: Vec<(String, Vec<u8>)>,
}

impl Inputs {
    fn collect(kernel: &GuestKernel) -> Result<Self, VmError> {
        let busybox = fs::read(BUSYBOX).map_err(|_| VmError::BusyboxMissing {
            path: BUSYBOX.into(),
        })?;
        let dir = modules_dir(&kernel.version);
        let dep_path = dir.join("modules.dep");
        let dep_text = fs::read_to_string(&dep_path).map_err(|_| VmError::ModulesMissing {
            kernel: kernel.image.clone(),
            dir: dir.clone(),
        })?;
        // Absent on kernels built without any module built in (or before
        // depmod wrote it): then nothing is.
        let builtin = fs::read_to_string(dir.join("modules.builtin")).unwrap_or_default();
        let order = ModuleDeps::parse(&dep_text)
            .load_order(BOOT_MODULES, &builtin_names(&builtin))
            .map_err(|module| VmError::ModuleMissing {
                module,
                dir: dir.clone(),
            })?;
        let mut modules = Vec::new();
        for rel in order {
            let path = dir.join(&rel);
            if !path.is_file() {
                return Err(VmError::ModuleMissing {
                    module: module_name(&rel),
                    dir: dir.clone(),
                });
            }
            modules.push((module_name(&rel), module_image(&path)?));
        }
        Ok(Self {
            version: kernel.version.clone(),
            script: INIT_SCRIPT.replace("@MSIZE@", &NINEP_MSIZE.to_string()),
            busybox,
            modules,
        })
    }

    fn key(&self) -> String {
        let mut h = ContentHash::default();
        h.update(self.version.as_bytes())
            .update(self.script.as_bytes())
            .update(&self.busybox);
        for (name, bytes) in &self.modules {
            h.update(name.as_bytes()).update(bytes);
        }
        h.hex()
    }

    fn archive(&self) -> std::io::Result<Vec<u8>> {
        let mut a = NewcArchive::new(Vec::new());
        for dir in ["bin", "dev", "proc", "sys", "newroot", "modules"] {
            a.dir(dir, 0o755)?;
        }
        a.char_dev("dev/console", 0o600, 5, 1)?;
        a.file("bin/busybox", 0o755, &self.busybox)?;
        a.symlink("bin/sh", "busybox")?;
        a.file("init", 0o755, self.script.as_bytes())?;
        let mut order = String::new();
        for (name, bytes) in &self.modules {
            a.file(&format!("modules/{name}.ko"), 0o644, bytes)?;
            order.push_str(name);
            order.push('\n');
        }
        a.file("modules/order", 0o644, order.as_bytes())?;
        a.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::super::cpio::{EntryKind, parse};
    use super::*;

    fn inputs() -> Inputs {
        Inputs {
            version: "6.1.0-56-amd64".into(),
            script: INIT_SCRIPT.replace("@MSIZE@", "524288"),
            busybox: b"busybox-bytes".to_vec(),
            modules: vec![
                ("virtio_ring".into(), b"ring".to_vec()),
                ("virtio".into(), b"virtio".to_vec()),
            ],
        }
    }

    #[test]
    fn archive_holds_init_busybox_console_and_ordered_modules() {
        let entries = parse(&inputs().archive().unwrap()).unwrap();
        let find = |p: &str| {
            entries
                .iter()
                .find(|e| e.path == p)
                .unwrap_or_else(|| panic!("{p}"))
        };
        assert_eq!(find("dev/console").kind, EntryKind::CharDev(5, 1));
        assert_eq!(
            find("bin/busybox").kind,
            EntryKind::File(b"busybox-bytes".to_vec())
        );
        assert_eq!(find("bin/busybox").mode, 0o755);
        let EntryKind::File(init) = &find("init").kind else {
            panic!("init is not a file")
        };
        let init = String::from_utf8(init.clone()).unwrap();
        assert!(init.starts_with("#!/bin/busybox sh\n"));
        assert!(
            init.contains("msize=524288") && !init.contains("@MSIZE@"),
            "{init}"
        );
        assert_eq!(
            find("modules/order").kind,
            EntryKind::File(b"virtio_ring\nvirtio\n".to_vec())
        );
        assert_eq!(
            find("modules/virtio.ko").kind,
            EntryKind::File(b"virtio".to_vec())
        );
        // The kernel creates entries in order: parents must precede children.
        let pos = |p: &str| entries.iter().position(|e| e.path == p).unwrap();
        assert!(pos("modules") < pos("modules/virtio.ko"));
        assert!(pos("dev") < pos("dev/console"));
    }

    #[test]
    fn key_changes_with_any_input() {
        let base = inputs().key();
        let mut other = inputs();
        other.modules[1].1.push(b'!');
        assert_ne!(base, other.key());
        let mut other = inputs();
        other.script.push('\n');
        assert_ne!(base, other.key());
        assert_eq!(base, inputs().key());
    }
}
