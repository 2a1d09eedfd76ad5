//! Resolving kernel modules and their dependencies from `modules.dep`, so the
//! initramfs can insmod them in an order where every symbol already exists,
//! and reading a module's ELF image whatever compression depmod lists it with.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::tools::{self, CommandError};

/// The parsed `modules.dep` of one kernel: module path (relative to
/// /lib/modules/<version>) → the paths it depends on, transitively complete
/// as depmod writes them.
#[derive(Debug, Default)]
pub struct ModuleDeps {
    deps: HashMap<String, Vec<String>>,
    /// Module name ("9pnet_virtio") → path, names normalised with '_'.
    by_name: HashMap<String, String>,
}

impl ModuleDeps {
    /// Parses the text of `modules.dep` ("path: dep dep ...").
    pub fn parse(text: &str) -> Self {
        let mut out = ModuleDeps::default();
        for line in text.lines() {
            let Some((module, deps)) = line.split_once(':') else {
                continue;
            };
            let module = module.trim().to_string();
            out.by_name.insert(module_name(&module), module.clone());
            out.deps.insert(
                module,
                deps.split_whitespace().map(str::to_string).collect(),
            );
        }
        out
    }

    /// The paths to load, dependencies first, for the named modules, less
    /// those the kernel has built in (names from [`builtin_names`]: Debian's
    /// 6.12 builds in virtio and virtio_pci, other distributions'
    /// kernels virtio_mmio). A name in neither is returned as the error.
    pub fn load_order(
        &self,
        names: &[&str],
        builtin: &HashSet<String>,
    ) -> Result<Vec<String>, String> {
        let mut order = Vec::new();
        let mut seen = HashSet::new();
        for name in names {
            let name = name.replace('-', "_");
            match self.by_name.get(&name) {
                Some(path) => self.visit(path, &mut seen, &mut order),
                None if builtin.contains(&name) => {}
                None => return Err(name),
            }
        }
        Ok(order)
    }

    /// Depth-first: a module goes after everything it needs. depmod's lists
    /// are already transitive, but recursing keeps the order right even
    /// when the list itself is not sorted by dependency.
    fn visit(&self, path: &str, seen: &mut HashSet<String>, order: &mut Vec<String>) {
        if !seen.insert(path.to_string()) {
            return;
        }
        for dep in self.deps.get(path).into_iter().flatten() {
            self.visit(dep, seen, order);
        }
        order.push(path.to_string());
    }
}

/// The module names of `modules.builtin` (one path per line).
pub fn builtin_names(text: &str) -> HashSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(module_name)
        .collect()
}

/// "kernel/net/9p/9pnet_virtio.ko" → "9pnet_virtio"; compressed modules
/// (".ko.xz", ".ko.zst") keep the same name.
pub fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split(".ko").next().unwrap_or(file);
    stem.replace('-', "_")
}

/// The suffixes a module may carry in modules.dep (the compressions kmod
/// knows) and the command that writes the ELF image of such a file to
/// stdout. Debian compresses its modules with xz since 6.12.
const COMPRESSIONS: &[(&str, &[&str])] = &[
    (".ko.xz", &["xz", "-dc", "--"]),
    (".ko.zst", &["zstd", "-dcq", "--"]),
    (".ko.gz", &["gzip", "-dc", "--"]),
];

/// Why a module's image could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ModuleReadError {
    #[error("reading module {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("decompressing module {path}")]
    Decompress {
        path: PathBuf,
        #[source]
        source: CommandError,
    },
    #[error("module {path} has no ELF image inside (unknown compression?)")]
    NotElf { path: PathBuf },
}

/// The uncompressed ELF image of the module at `path`. busybox insmod hands
/// the bytes to init_module(2), which takes no compressed image, so a
/// `.ko.xz`/`.ko.zst`/`.ko.gz` is decompressed here; the guest's own later
/// loads go through kmod's modprobe, which reads them itself.
pub fn module_image(path: &Path) -> Result<Vec<u8>, ModuleReadError> {
    let name = path.to_string_lossy();
    let bytes = match COMPRESSIONS
        .iter()
        .find(|(suffix, _)| name.ends_with(suffix))
    {
        Some((_, argv)) => {
            let mut cmd = Command::new(argv[0]);
            cmd.args(&argv[1..]).arg(path);
            tools::output_bytes(cmd, tools::Input::default()).map_err(|source| {
                ModuleReadError::Decompress {
                    path: path.to_path_buf(),
                    source,
                }
            })?
        }
        None => std::fs::read(path).map_err(|source| ModuleReadError::Read {
            path: path.to_path_buf(),
            source,
        })?,
    };
    if !bytes.starts_with(b"\x7fELF") {
        return Err(ModuleReadError::NotElf {
            path: path.to_path_buf(),
        });
    }
    Ok(bytes)
}

/// The directory of a kernel version's modules.
pub fn modules_dir(version: &str) -> PathBuf {
    Path::new("/lib/modules").join(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    // An excerpt of Debian 6.1's modules.dep, deliberately out of order.
    const DEP: &str = "\
kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/fscache/fscache.ko kernel/fs/netfs/netfs.ko
kernel/fs/netfs/netfs.ko:
kernel/fs/fscache/fscache.ko: kernel/fs/netfs/netfs.ko
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_mmio.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/net/9p/9pnet.ko:
kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/fs/xfs/xfs.ko.xz: kernel/lib/libcrc32c.ko
kernel/lib/libcrc32c.ko:
";

    #[test]
    fn nine_p_stack_loads_dependencies_first() {
        let deps = ModuleDeps::parse(DEP);
        let order = deps
            .load_order(&["virtio_mmio", "9pnet_virtio", "9p"], &HashSet::new())
            .unwrap();
        let names: Vec<String> = order.iter().map(|p| module_name(p)).collect();
        assert_eq!(
            names,
            [
                "virtio_ring",
                "virtio",
                "virtio_mmio",
                "9pnet",
                "9pnet_virtio",
                "netfs",
                "fscache",
                "9p"
            ]
        );
    }

    /// A kernel that builds virtio_mmio in lists it in modules.builtin, not
    /// modules.dep: the initramfs loads the rest, and a module in neither
    /// is still an error that names it.
    #[test]
    fn built_in_modules_are_not_loaded_nor_missing() {
        let dep = "kernel/net/9p/9pnet.ko:\n\
                   kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko\n\
                   kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko\n";
        let builtin = builtin_names(
            "kernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio_ring.ko\n\
             kernel/drivers/virtio/virtio_mmio.ko\n",
        );
        let deps = ModuleDeps::parse(dep);
        let order = deps
            .load_order(&["virtio_mmio", "9pnet_virtio", "9p"], &builtin)
            .unwrap();
        let names: Vec<String> = order.iter().map(|p| module_name(p)).collect();
        assert_eq!(names, ["9pnet", "9pnet_virtio", "9p"]);
        assert_eq!(
            deps.load_order(&["virtio_mmio", "9p"], &HashSet::new()),
            Err("virtio_mmio".to_string())
        );
    }

    #[test]
    fn every_module_follows_all_of_its_dependencies() {
        let deps = ModuleDeps::parse(DEP);
        let order = deps
            .load_order(&["9p", "9pnet_virtio", "virtio_mmio"], &HashSet::new())
            .unwrap();
        for (i, path) in order.iter().enumerate() {
            for dep in &deps.deps[path] {
                let j = order.iter().position(|p| p == dep).unwrap();
                assert!(j < i, "{dep} must load before {path}: {order:?}");
            }
        }
    }

    #[test]
    fn names_with_dashes_and_compressed_suffixes_resolve() {
        let deps = ModuleDeps::parse(DEP);
        assert_eq!(module_name("kernel/fs/xfs/xfs.ko.xz"), "xfs");
        assert_eq!(
            deps.load_order(&["xfs"], &HashSet::new()).unwrap(),
            ["kernel/lib/libcrc32c.ko", "kernel/fs/xfs/xfs.ko.xz"]
        );
        assert_eq!(
            deps.load_order(&["nosuch"], &HashSet::new()).unwrap_err(),
            "nosuch"
        );
    }

    /// `tool args… < input`, for making compressed fixtures.
    fn pipe(argv: &[&str], input: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut child = Command::new(argv[0])
            .args(&argv[1..])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{argv:?} (ci/setup installs it): {e}"));
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{argv:?}");
        out.stdout
    }

    #[test]
    fn compressed_modules_are_read_as_their_elf_image() {
        let dir = tempfile::tempdir().unwrap();
        let elf = b"\x7fELF\x02\x01 module bytes".repeat(100);
        let cases: [(&str, Vec<u8>); 4] = [
            ("plain.ko", elf.clone()),
            ("xz.ko.xz", pipe(&["xz", "-c"], &elf)),
            ("zst.ko.zst", pipe(&["zstd", "-cq"], &elf)),
            ("gz.ko.gz", pipe(&["gzip", "-c"], &elf)),
        ];
        for (name, bytes) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            assert_eq!(module_image(&path).unwrap(), elf, "{name}");
        }
    }

    #[test]
    fn a_corrupt_or_foreign_module_names_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let bad_xz = dir.path().join("bad.ko.xz");
        std::fs::write(&bad_xz, b"not xz at all").unwrap();
        let err = module_image(&bad_xz).unwrap_err();
        assert!(
            matches!(err, ModuleReadError::Decompress { .. })
                && err.to_string().contains("bad.ko.xz"),
            "{err}"
        );
        let lz4 = dir.path().join("odd.ko.lz4");
        std::fs::write(&lz4, b"\x04\x22\x4d\x18").unwrap();
        assert!(matches!(
            module_image(&lz4).unwrap_err(),
            ModuleReadError::NotElf { .. }
        ));
    }
}
