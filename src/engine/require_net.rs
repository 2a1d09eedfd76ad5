//! Probes for the kernel's VLAN and netem support: a throwaway network
//! namespace (`unshare -n`) where the feature is tried for real, since
//! neither leaves a reliable trace in /proc or /sys when built in.

use std::process::{Command, Stdio};

/// Runs `script` with `sh -c` in a fresh network namespace that vanishes
/// with the process; true if it exits 0.
fn try_in_scratch_netns(script: &str) -> bool {
    Command::new("unshare")
        .args(["-n", "sh", "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn load(module: &str) {
    // Best effort: a kernel without module loading simply fails here.
    let _ = Command::new("modprobe")
        .args(["-q", module])
        .stderr(Stdio::null())
        .status();
}

/// 802.1Q: a VLAN on a veth.
pub(super) fn vlan() -> Result<(), String> {
    load("8021q");
    let ok = try_in_scratch_netns(
        "ip link add sqa type veth peer name sqb && ip link add link sqa name sqa.2 type vlan id 2",
    );
    if ok {
        Ok(())
    } else {
        Err("kernel lacks 802.1Q VLANs (8021q); use --vm".into())
    }
}

/// netem: a netem qdisc on loopback.
pub(super) fn netem() -> Result<(), String> {
    load("sch_netem");
    if try_in_scratch_netns("tc qdisc add dev lo root netem delay 1ms") {
        Ok(())
    } else {
        Err("kernel lacks sch_netem; use --vm".into())
    }
}
