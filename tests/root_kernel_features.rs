//! `requires.kernel_features` on this machine's own kernel (6.18 built
//! without NFS, nfsd, 802.1Q, netem or device-mapper, and without module
//! loading): the scenario is a SKIP whose reason names each missing feature,
//! the config option, where it looked, and `--vm`.

#[path = "root_world_support/mod.rs"]
mod support;

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_stackquake");

const ALL: &str = "\
schema_version: 1
id: wants-everything
title: requires every kernel feature stackquake knows
requires:
  kernel_features: [nfs, nfsd, xfs, loop, veth, netns, bridge, vlan, netem, dm, nftables, fuse]
steps:
  - { id: nothing, wait: 10ms }
";

/// The options this test expects absent, read with zcat (not our decoder).
fn config() -> String {
    let out = Command::new("zcat")
        .arg("/proc/config.gz")
        .output()
        .expect("zcat runs");
    assert!(
        out.status.success(),
        "this test describes a kernel with /proc/config.gz"
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn missing_kernel_features_are_a_skip_naming_each_one() {
    support::require_root_and(&["zcat"], &["/proc/config.gz"]);
    let cfg = config();
    for option in [
        "CONFIG_NFS_FS",
        "CONFIG_NFSD",
        "CONFIG_VLAN_8021Q",
        "CONFIG_NET_SCH_NETEM",
        "CONFIG_BLK_DEV_DM",
    ] {
        assert!(
            !cfg.lines().any(|l| l.starts_with(&format!("{option}="))),
            "{option} is set on this kernel: this test describes the dev machines' kernel"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("all.yaml");
    std::fs::write(&file, ALL).unwrap();
    let out = dir.path().join("out");
    let status = Command::new(BIN)
        .args(["run", "--target", "host", "--output"])
        .arg(&out)
        .arg(&file)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0), "a skip is not a failure");
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("journal.json")).unwrap()).unwrap();
    let result = &j["results"][0];
    assert_eq!(result["verdict"], "SKIP", "{result:#}");
    let reason = result["reason"].as_str().unwrap();
    let release = stackquake::engine::kernel_release();
    for (name, option) in [
        ("nfs (NFS client)", "CONFIG_NFS_FS"),
        ("nfsd (NFS server)", "CONFIG_NFSD"),
        ("vlan (802.1Q VLANs)", "CONFIG_VLAN_8021Q"),
        ("netem (netem qdisc)", "CONFIG_NET_SCH_NETEM"),
        ("dm (device-mapper)", "CONFIG_BLK_DEV_DM"),
    ] {
        let expected = format!(
            "kernel feature {name} unavailable on {release}: {option} is not set in /proc/config.gz"
        );
        assert!(reason.contains(&expected), "no `{expected}` in:\n{reason}");
    }
    // What this kernel has is not named.
    for present in ["xfs", "loop", "veth", "netns", "bridge", "nftables", "fuse"] {
        assert!(
            !reason.contains(&format!("kernel feature {present} ")),
            "{present} is built in here, yet: {reason}"
        );
    }
    assert!(
        reason.ends_with("use --vm (--target vm boots a guest kernel that has them)"),
        "{reason}"
    );
    assert_eq!(reason.matches("kernel feature").count(), 5, "{reason}");
}

#[test]
fn present_kernel_features_run() {
    support::require_root_and(&[], &["/proc/config.gz"]);
    let e = stackquake::engine::Evidence::gather();
    let cfg = e.config.as_ref().expect("/proc/config.gz decoded");
    assert_eq!(cfg.source, "/proc/config.gz");
    // Our decoder and zcat agree on every set option.
    let zcat = config();
    let set: Vec<&str> = zcat
        .lines()
        .filter(|l| l.ends_with("=y") || l.ends_with("=m"))
        .collect();
    assert_eq!(cfg.options.len(), set.len());
    use stackquake::plan::KernelFeature as F;
    for f in [
        F::Xfs,
        F::Loop,
        F::Veth,
        F::Netns,
        F::Bridge,
        F::Nftables,
        F::Fuse,
    ] {
        assert_eq!(e.decide(f), stackquake::engine::Presence::Present, "{f:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("some.yaml");
    std::fs::write(
        &file,
        ALL.replace(
            "nfs, nfsd, xfs, loop, veth, netns, bridge, vlan, netem, dm, nftables, fuse",
            "xfs, loop, veth, netns, bridge, nftables, fuse",
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let status = Command::new(BIN)
        .args(["run", "--target", "host", "--output"])
        .arg(&out)
        .arg(&file)
        .status()
        .unwrap();
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("journal.json")).unwrap()).unwrap();
    assert_eq!(j["results"][0]["verdict"], "PASS", "{:#}", j["results"][0]);
    assert_eq!(status.code(), Some(0));
}
