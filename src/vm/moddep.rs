//! Resolving kernel modules and their dependencies from `modules.dep`, so the
//! initramfs can insmod them in an order where every symbol already exists.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

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

    /// The paths to load, dependencies first, for the named modules. A name
    /// that is not in modules.dep is returned as the error (it may be
    /// built in, which the caller can check in modules.builtin).
    pub fn load_order(&self, names: &[&str]) -> Result<Vec<String>, String> {
        let mut order = Vec::new();
        let mut seen = HashSet::new();
        for name in names {
            let path = self
                .by_name
                .get(&name.replace('-', "_"))
                .ok_or_else(|| name.to_string())?;
            self.visit(path, &mut seen, &mut order);
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

/// "kernel/net/9p/9pnet_virtio.ko" → "9pnet_virtio"; compressed modules
/// (".ko.xz", ".ko.zst") keep the same name.
pub fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split(".ko").next().unwrap_or(file);
    stem.replace('-', "_")
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
            .load_order(&["virtio_mmio", "9pnet_virtio", "9p"])
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

    #[test]
    fn every_module_follows_all_of_its_dependencies() {
        let deps = ModuleDeps::parse(DEP);
        let order = deps
            .load_order(&["9p", "9pnet_virtio", "virtio_mmio"])
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
            deps.load_order(&["xfs"]).unwrap(),
            ["kernel/lib/libcrc32c.ko", "kernel/fs/xfs/xfs.ko.xz"]
        );
        assert_eq!(deps.load_order(&["nosuch"]).unwrap_err(), "nosuch");
    }
}
