//! Requirement checks before anything is built: an unmet one is a SKIP with
//! a reason that says how to get it (often: run with `--target vm`).

use crate::scenario::{KernelFeature, Scenario, Target};
use std::path::Path;
use std::process::Command;

/// Why the scenario cannot run here, or None if it can.
pub fn unmet(s: &Scenario, target: Target) -> Option<String> {
    if !s.requires.target.is_empty() && !s.requires.target.contains(&target) {
        let allowed: Vec<String> = s.requires.target.iter().map(Target::to_string).collect();
        return Some(format!(
            "scenario runs on target {} only, not {target}",
            allowed.join("/")
        ));
    }
    let mut missing = Vec::new();
    let mut features = s.requires.kernel_features.clone();
    // What the world and the faults imply, so no scenario forgets to ask;
    // an image on a dm volume cannot even be built without device-mapper.
    for (needed, f) in [
        (crate::scenario::needs_vlan(s), KernelFeature::Vlan),
        (crate::scenario::needs_netem(s), KernelFeature::Netem),
        (s.images.iter().any(|i| i.dm), KernelFeature::Dm),
    ] {
        if needed && !features.contains(&f) {
            features.push(f);
        }
    }
    for f in &features {
        if let Err(why) = kernel_feature(*f) {
            missing.push(why);
        }
    }
    for tool in &s.requires.tools {
        if which(tool).is_none() {
            missing.push(format!("tool `{tool}` not found on PATH"));
        }
    }
    if missing.is_empty() {
        None
    } else if missing.iter().all(|m| m.ends_with("use --vm")) {
        Some(missing.join("; "))
    } else {
        let hint = if target == Target::Host {
            " (the vm target boots a kernel that has them: --target vm)"
        } else {
            ""
        };
        Some(format!("{}{hint}", missing.join("; ")))
    }
}

/// Checks a kernel feature, loading its module first when the kernel can.
fn kernel_feature(f: KernelFeature) -> Result<(), String> {
    match f {
        KernelFeature::Vlan => return super::require_net::vlan(),
        KernelFeature::Netem => return super::require_net::netem(),
        _ => {}
    }
    let (what, modules, present): (&str, &[&str], fn() -> bool) = match f {
        KernelFeature::Nfs => ("NFS client (nfs, nfsv3)", &["nfs", "nfsv3"], || {
            filesystem("nfs")
        }),
        KernelFeature::Xfs => ("XFS", &["xfs"], || filesystem("xfs")),
        KernelFeature::Loop => ("loop devices", &["loop"], || {
            Path::new("/dev/loop-control").exists()
        }),
        KernelFeature::Veth => ("veth", &["veth"], || {
            Path::new("/sys/module/veth").exists() || !cfg_disabled("CONFIG_VETH")
        }),
        KernelFeature::Netns => ("network namespaces", &[], || {
            Path::new("/proc/self/ns/net").exists()
        }),
        KernelFeature::Vlan | KernelFeature::Netem => unreachable!("checked above"),
        // dm-mod registers the misc device "device-mapper"; the delay and
        // flakey targets are loaded along, best effort (the kernel would
        // also request them when a table names them).
        KernelFeature::Dm => (
            "device-mapper (dm-mod; block.* faults run with --vm)",
            &["dm_mod", "dm_delay", "dm_flakey"],
            || {
                std::fs::read_to_string("/proc/misc")
                    .is_ok_and(|t| t.lines().any(|l| l.ends_with(" device-mapper")))
            },
        ),
    };
    if present() {
        return Ok(());
    }
    for m in modules {
        // Best effort: a kernel without module loading simply fails here.
        let _ = Command::new("modprobe").arg("-q").arg(m).status();
    }
    if present() {
        Ok(())
    } else {
        Err(format!(
            "kernel feature {what} unavailable on {}",
            kernel_release()
        ))
    }
}

fn filesystem(name: &str) -> bool {
    std::fs::read_to_string("/proc/filesystems")
        .map(|t| t.lines().any(|l| l.split_whitespace().last() == Some(name)))
        .unwrap_or(false)
}

/// True only when the running kernel's config says the option is off; an
/// unreadable config says nothing.
fn cfg_disabled(option: &str) -> bool {
    let path = format!("/boot/config-{}", kernel_release());
    match std::fs::read_to_string(path) {
        Ok(cfg) => !cfg
            .lines()
            .any(|l| l == format!("{option}=y") || l == format!("{option}=m")),
        Err(_) => false,
    }
}

/// `uname -r`.
pub fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// The path of `tool` on PATH.
pub fn which(tool: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}
