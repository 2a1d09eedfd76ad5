//! Whether the running kernel has a feature a scenario requires, decided from
//! the kernel's own config (/proc/config.gz) or, where that is absent, from
//! /proc/filesystems, /sys/module and the modules.builtin / modules.dep files
//! of /lib/modules/$(uname -r).
//!
//! The decision is a pure function of `Evidence` so fixture configs can test
//! it; `Evidence::gather` reads the real files.

use crate::plan::KernelFeature;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// What a feature is called in the kernel: its Kconfig option, the module
/// that provides it when built as one, and its /proc/filesystems name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureSpec {
    pub name: &'static str,
    pub what: &'static str,
    pub config: &'static str,
    /// Module name as /sys/module spells it (underscores).
    pub module: Option<&'static str>,
    pub filesystem: Option<&'static str>,
}

pub fn spec(f: KernelFeature) -> FeatureSpec {
    let s = |name, what, config, module, filesystem| FeatureSpec {
        name,
        what,
        config,
        module,
        filesystem,
    };
    match f {
        KernelFeature::Nfs => s(
            "nfs",
            "NFS client",
            "CONFIG_NFS_FS",
            Some("nfs"),
            Some("nfs"),
        ),
        KernelFeature::Nfsd => s(
            "nfsd",
            "NFS server",
            "CONFIG_NFSD",
            Some("nfsd"),
            Some("nfsd"),
        ),
        KernelFeature::Xfs => s("xfs", "XFS", "CONFIG_XFS_FS", Some("xfs"), Some("xfs")),
        KernelFeature::Loop => s(
            "loop",
            "loop devices",
            "CONFIG_BLK_DEV_LOOP",
            Some("loop"),
            None,
        ),
        KernelFeature::Veth => s("veth", "veth pairs", "CONFIG_VETH", Some("veth"), None),
        KernelFeature::Netns => s("netns", "network namespaces", "CONFIG_NET_NS", None, None),
        KernelFeature::Bridge => s("bridge", "bridges", "CONFIG_BRIDGE", Some("bridge"), None),
        KernelFeature::Vlan => s(
            "vlan",
            "802.1Q VLANs",
            "CONFIG_VLAN_8021Q",
            Some("8021q"),
            None,
        ),
        KernelFeature::Netem => s(
            "netem",
            "netem qdisc",
            "CONFIG_NET_SCH_NETEM",
            Some("sch_netem"),
            None,
        ),
        KernelFeature::Dm => s(
            "dm",
            "device-mapper",
            "CONFIG_BLK_DEV_DM",
            Some("dm_mod"),
            None,
        ),
        KernelFeature::Nftables => s(
            "nftables",
            "nftables",
            "CONFIG_NF_TABLES",
            Some("nf_tables"),
            None,
        ),
        KernelFeature::Fuse => s("fuse", "FUSE", "CONFIG_FUSE_FS", Some("fuse"), Some("fuse")),
        // Present when the NFS client is and this option is *not* set.
        KernelFeature::NfsUdp => s("nfs_udp", "NFS over UDP", NFS_NO_UDP, Some("nfs"), None),
    }
}

/// Set, the NFS client refuses `proto=udp` (mount fails with EPROTONOSUPPORT).
const NFS_NO_UDP: &str = "CONFIG_NFS_DISABLE_UDP_SUPPORT";

/// A parsed kernel config: option → `y` or `m` (options not set are absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelConfig {
    /// Where it was read from, for the SKIP reason.
    pub source: String,
    pub options: BTreeMap<String, char>,
}

impl KernelConfig {
    pub fn parse(source: &str, text: &str) -> KernelConfig {
        let options = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .filter_map(|(k, v)| match v {
                "y" => Some((k.to_string(), 'y')),
                "m" => Some((k.to_string(), 'm')),
                _ => None,
            })
            .collect();
        KernelConfig {
            source: source.into(),
            options,
        }
    }

    pub fn get(&self, option: &str) -> Option<char> {
        self.options.get(option).copied()
    }
}

/// Everything the decision looks at; `None` means the file was unreadable.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    pub release: String,
    pub config: Option<KernelConfig>,
    /// Contents of /proc/filesystems.
    pub filesystems: Option<String>,
    /// Names under /sys/module.
    pub sys_modules: Vec<String>,
    /// Contents of /lib/modules/<release>/modules.builtin.
    pub builtin: Option<String>,
    /// Contents of /lib/modules/<release>/modules.dep.
    pub dep: Option<String>,
}

/// The answer for one feature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    /// In the kernel, or its module is loaded.
    Present,
    /// A module that exists but is not loaded: try loading it, then look again.
    Loadable(&'static str),
    /// Missing; the text says what was looked at.
    Missing(String),
}

impl Evidence {
    /// Reads the running kernel's config and module lists.
    pub fn gather() -> Evidence {
        let release = super::kernel_release();
        let moddir = Path::new("/lib/modules").join(&release);
        Evidence {
            config: read_config(&release),
            filesystems: std::fs::read_to_string("/proc/filesystems").ok(),
            sys_modules: sys_modules(),
            builtin: std::fs::read_to_string(moddir.join("modules.builtin")).ok(),
            dep: std::fs::read_to_string(moddir.join("modules.dep")).ok(),
            release,
        }
    }

    /// Looks again at what loading a module changes.
    pub fn refresh_modules(&mut self) {
        self.sys_modules = sys_modules();
        self.filesystems = std::fs::read_to_string("/proc/filesystems").ok();
    }

    pub fn decide(&self, f: KernelFeature) -> Presence {
        if f == KernelFeature::NfsUdp {
            return self.nfs_udp();
        }
        let s = spec(f);
        let live = s.module.is_some_and(|m| self.module_loaded(m))
            || s.filesystem.is_some_and(|fs| self.has_filesystem(fs));
        if live {
            return Presence::Present;
        }
        if let Some(cfg) = &self.config {
            return match cfg.get(s.config) {
                Some('y') => Presence::Present,
                Some(_) => match s.module {
                    Some(m) if cfg.get("CONFIG_MODULES") == Some('y') => {
                        if self.dep.is_none() || self.module_file(m) {
                            Presence::Loadable(m)
                        } else {
                            Presence::Missing(format!(
                                "{} is =m in {} but /lib/modules/{}/modules.dep has no {m}.ko",
                                s.config, cfg.source, self.release
                            ))
                        }
                    }
                    _ => Presence::Missing(format!(
                        "{} is =m in {} but this kernel cannot load modules",
                        s.config, cfg.source
                    )),
                },
                None => Presence::Missing(format!("{} is not set in {}", s.config, cfg.source)),
            };
        }
        // No config: the module lists are the best evidence left.
        let mut looked = vec!["/sys/module".to_string()];
        if s.filesystem.is_some() {
            looked.push("/proc/filesystems".into());
        }
        if let Some(m) = s.module {
            if self.builtin.is_some() {
                if self.module_builtin(m) {
                    return Presence::Present;
                }
                looked.push(format!("/lib/modules/{}/modules.builtin", self.release));
            }
            if self.dep.is_some() {
                if self.module_file(m) {
                    return Presence::Loadable(m);
                }
                looked.push(format!("/lib/modules/{}/modules.dep", self.release));
            }
        } else if s.name == "netns" && Path::new("/proc/self/ns/net").exists() {
            // Namespaces have no module; /proc/self/ns/net is the proof.
            return Presence::Present;
        }
        Presence::Missing(format!(
            "no /proc/config.gz, and {} not found in {}",
            s.module.or(s.filesystem).unwrap_or(s.config),
            looked.join(", ")
        ))
    }

    /// The NFS client first; then only the config can say whether it was
    /// built without UDP, and without one we do not guess.
    fn nfs_udp(&self) -> Presence {
        let nfs = self.decide(KernelFeature::Nfs);
        if nfs != Presence::Present {
            return nfs;
        }
        match &self.config {
            Some(cfg) if cfg.get(NFS_NO_UDP) == Some('y') => Presence::Missing(format!(
                "{NFS_NO_UDP}=y in {}: the NFS client refuses proto=udp",
                cfg.source
            )),
            Some(_) => Presence::Present,
            None => Presence::Missing(format!(
                "no /proc/config.gz or /boot/config-{} to tell whether {NFS_NO_UDP} is set",
                self.release
            )),
        }
    }

    fn module_loaded(&self, m: &str) -> bool {
        self.sys_modules.iter().any(|n| n == m)
    }

    fn has_filesystem(&self, fs: &str) -> bool {
        self.filesystems
            .as_deref()
            .is_some_and(|t| t.lines().any(|l| l.split_whitespace().last() == Some(fs)))
    }

    fn module_builtin(&self, m: &str) -> bool {
        self.builtin
            .as_deref()
            .is_some_and(|t| t.lines().any(|l| module_name(l) == m))
    }

    fn module_file(&self, m: &str) -> bool {
        self.dep.as_deref().is_some_and(|t| {
            t.lines()
                .filter_map(|l| l.split(':').next())
                .any(|p| module_name(p) == m)
        })
    }
}

/// `kernel/drivers/md/dm-mod.ko.xz` → `dm_mod` (module names use `_`).
fn module_name(path: &str) -> String {
    let file = path.trim().rsplit('/').next().unwrap_or("");
    let stem = file.split(".ko").next().unwrap_or(file);
    stem.replace('-', "_")
}

fn sys_modules() -> Vec<String> {
    std::fs::read_dir("/sys/module")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// /proc/config.gz, else /boot/config-<release>.
fn read_config(release: &str) -> Option<KernelConfig> {
    let gz = PathBuf::from("/proc/config.gz");
    if let Ok(f) = std::fs::File::open(&gz) {
        let mut text = String::new();
        if flate2::read::GzDecoder::new(f)
            .read_to_string(&mut text)
            .is_ok()
        {
            return Some(KernelConfig::parse("/proc/config.gz", &text));
        }
    }
    let boot = format!("/boot/config-{release}");
    std::fs::read_to_string(&boot)
        .ok()
        .map(|t| KernelConfig::parse(&boot, &t))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "\
# comment
CONFIG_NET_NS=y
# CONFIG_MODULES is not set
CONFIG_NF_TABLES=y
# CONFIG_VLAN_8021Q is not set
CONFIG_BLK_DEV_LOOP=y
CONFIG_XFS_FS=y
CONFIG_NFS_FS=m
CONFIG_LOCALVERSION=\"-x\"
";

    fn evidence(config: &str) -> Evidence {
        Evidence {
            release: "6.18.0-test".into(),
            config: Some(KernelConfig::parse("/proc/config.gz", config)),
            ..Default::default()
        }
    }

    #[test]
    fn nfs_over_udp_needs_the_client_and_no_disable_option() {
        let with = |extra: &str| evidence(&format!("CONFIG_NFS_FS=y\n{extra}"));
        assert_eq!(with("").decide(KernelFeature::NfsUdp), Presence::Present);
        assert_eq!(
            with("CONFIG_NFS_DISABLE_UDP_SUPPORT=y\n").decide(KernelFeature::NfsUdp),
            Presence::Missing(
                "CONFIG_NFS_DISABLE_UDP_SUPPORT=y in /proc/config.gz: the NFS client refuses proto=udp"
                    .into()
            )
        );
        // Without the client, the client is what is missing.
        assert_eq!(
            evidence("# CONFIG_NFS_FS is not set\n").decide(KernelFeature::NfsUdp),
            Presence::Missing("CONFIG_NFS_FS is not set in /proc/config.gz".into())
        );
        // A loaded nfs module but no config: no guess.
        let e = Evidence {
            release: "6.1.0-x".into(),
            sys_modules: vec!["nfs".into()],
            ..Default::default()
        };
        assert_eq!(
            e.decide(KernelFeature::NfsUdp),
            Presence::Missing(
                "no /proc/config.gz or /boot/config-6.1.0-x to tell whether \
                 CONFIG_NFS_DISABLE_UDP_SUPPORT is set"
                    .into()
            )
        );
    }

    #[test]
    fn built_in_options_are_present() {
        let e = evidence(CONFIG);
        for f in [
            KernelFeature::Netns,
            KernelFeature::Nftables,
            KernelFeature::Loop,
            KernelFeature::Xfs,
        ] {
            assert_eq!(e.decide(f), Presence::Present, "{f:?}");
        }
    }

    #[test]
    fn unset_options_name_the_option_and_the_file() {
        let e = evidence(CONFIG);
        assert_eq!(
            e.decide(KernelFeature::Vlan),
            Presence::Missing("CONFIG_VLAN_8021Q is not set in /proc/config.gz".into())
        );
        // Absent altogether (its menu is off) reads the same.
        assert_eq!(
            e.decide(KernelFeature::Dm),
            Presence::Missing("CONFIG_BLK_DEV_DM is not set in /proc/config.gz".into())
        );
    }

    #[test]
    fn a_module_without_module_loading_is_missing() {
        let e = evidence(CONFIG);
        assert_eq!(
            e.decide(KernelFeature::Nfs),
            Presence::Missing(
                "CONFIG_NFS_FS is =m in /proc/config.gz but this kernel cannot load modules".into()
            )
        );
    }

    #[test]
    fn a_module_is_loadable_when_modules_dep_lists_it() {
        let mut e = evidence("CONFIG_MODULES=y\nCONFIG_BLK_DEV_DM=m\nCONFIG_NET_SCH_NETEM=m\n");
        e.dep = Some("kernel/drivers/md/dm-mod.ko.xz: kernel/lib/x.ko\n".into());
        assert_eq!(e.decide(KernelFeature::Dm), Presence::Loadable("dm_mod"));
        match e.decide(KernelFeature::Netem) {
            Presence::Missing(why) => assert!(why.contains("modules.dep has no sch_netem.ko")),
            other => panic!("{other:?}"),
        }
        // Loaded already: present whatever the config says.
        e.sys_modules = vec!["sch_netem".into()];
        assert_eq!(e.decide(KernelFeature::Netem), Presence::Present);
    }

    #[test]
    fn without_a_config_the_module_lists_decide() {
        let e = Evidence {
            release: "6.1.0-56-amd64".into(),
            config: None,
            filesystems: Some("nodev\tsysfs\n\txfs\n".into()),
            sys_modules: vec!["veth".into()],
            builtin: Some("kernel/drivers/block/loop.ko\n".into()),
            dep: Some("kernel/net/8021q/8021q.ko: \nkernel/fs/nfs/nfs.ko: a.ko\n".into()),
        };
        assert_eq!(e.decide(KernelFeature::Xfs), Presence::Present);
        assert_eq!(e.decide(KernelFeature::Veth), Presence::Present);
        assert_eq!(e.decide(KernelFeature::Loop), Presence::Present);
        assert_eq!(e.decide(KernelFeature::Vlan), Presence::Loadable("8021q"));
        assert_eq!(e.decide(KernelFeature::Nfs), Presence::Loadable("nfs"));
        match e.decide(KernelFeature::Netem) {
            Presence::Missing(why) => {
                assert!(
                    why.starts_with("no /proc/config.gz, and sch_netem not found in /sys/module")
                );
                assert!(
                    why.contains("/lib/modules/6.1.0-56-amd64/modules.dep"),
                    "{why}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn module_names_use_underscores() {
        assert_eq!(module_name("kernel/drivers/md/dm-mod.ko.zst"), "dm_mod");
        assert_eq!(module_name("kernel/net/8021q/8021q.ko"), "8021q");
    }
}
