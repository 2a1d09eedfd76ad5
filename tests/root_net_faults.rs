//! The network faults end to end on this machine's kernel, through the real
//! binary: net.block through a switch (with per-end MTU and offloads off),
//! net.reject toward one host and protocol, net.mtu and its restore; a
//! block that matches nothing is an ERROR naming fault and step; net.delay
//! is a SKIP naming sch_netem where the kernel lacks it. Each run leaves no
//! namespace, nft table or ledger behind.

#[path = "root_world_support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_stackquake");

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios/net")
        .join(name)
}

/// Runs one scenario on the host; returns its result object and exit code.
fn run(name: &str) -> (serde_json::Value, Option<i32>) {
    support::require_root_and(
        &["nft", "busybox", "ip", "ethtool", "unshare"],
        &["/dev/kmsg"],
    );
    let out = tempfile::tempdir().unwrap();
    let status = Command::new(BIN)
        .args(["run", "--target", "host", "--output"])
        .arg(out.path())
        .arg(scenario(name))
        .status()
        .unwrap();
    let text = std::fs::read_to_string(out.path().join("journal.json")).unwrap();
    let j: serde_json::Value = serde_json::from_str(&text).unwrap();
    (j["results"][0].clone(), status.code())
}

fn events<'r>(result: &'r serde_json::Value, kind: &str) -> Vec<&'r serde_json::Value> {
    result["journal"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == kind)
        .collect()
}

/// Namespaces and nft tables of this run still present, in the root
/// namespace and under /run/netns.
fn leftovers(result: &serde_json::Value) -> Vec<String> {
    let run = result["journal"]["run_id"].as_str().unwrap().to_string();
    let mut left: Vec<String> = std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(&run))
        .collect();
    let tables = Command::new("nft")
        .args(["list", "tables"])
        .output()
        .unwrap();
    let tables = String::from_utf8_lossy(&tables.stdout);
    left.extend(
        tables
            .lines()
            .filter(|l| l.contains(&run))
            .map(str::to_string),
    );
    let ledgers = std::fs::read_dir("/run/stackquake/ledger")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().display().to_string())
        .filter(|p| p.contains(&run));
    left.extend(ledgers);
    left
}

/// The firewall was created lazily and deleted at teardown without error.
fn firewall_deleted(result: &serde_json::Value) {
    let run = result["journal"]["run_id"].as_str().unwrap();
    let teardown = events(result, "teardown");
    let fw: Vec<_> = teardown
        .iter()
        .filter(|e| {
            e["what"]
                .as_str()
                .unwrap()
                .starts_with(&format!("delete firewall sq_{run}"))
        })
        .collect();
    assert_eq!(fw.len(), 1, "{teardown:#?}");
    assert!(fw[0].get("error").is_none(), "{:?}", fw[0]);
}

#[test]
fn block_through_a_switch_cuts_and_heals_and_counts_its_packets() {
    let (r, code) = run("block-ping.yaml");
    assert_eq!(r["verdict"], "PASS", "{:#}", r);
    assert_eq!(code, Some(0));
    let healed = events(&r, "fault_healed");
    assert_eq!(healed.len(), 1, "{healed:?}");
    assert_eq!(healed[0]["fault"], "net.block");
    assert!(
        healed[0]["matched"].as_u64().unwrap() >= 1,
        "{:?}",
        healed[0]
    );
    assert_eq!(healed[0]["unit"], "packet");
    let setup: Vec<&str> = events(&r, "setup")
        .iter()
        .map(|e| e["what"].as_str().unwrap())
        .collect();
    assert!(
        setup
            .iter()
            .any(|s| s.contains("via switch sw") && s.contains("offloads off")),
        "{setup:?}"
    );
    // The cut host's table is made before the timeline, so the cut itself
    // is one nft run.
    assert!(
        setup
            .iter()
            .any(|s| s.starts_with("firewall sq_") && s.ends_with(" in a")),
        "{setup:?}"
    );
    firewall_deleted(&r);
    assert_eq!(leftovers(&r), Vec::<String>::new());
}

#[test]
fn reject_toward_one_protocol_refuses_it_until_healed() {
    let (r, code) = run("reject-toward.yaml");
    assert_eq!(r["verdict"], "PASS", "{:#}", r);
    assert_eq!(code, Some(0));
    let healed = events(&r, "fault_healed");
    assert_eq!(healed[0]["fault"], "net.reject");
    assert!(
        healed[0]["matched"].as_u64().unwrap() >= 1,
        "{:?}",
        healed[0]
    );
    firewall_deleted(&r);
    assert_eq!(leftovers(&r), Vec::<String>::new());
}

#[test]
fn mtu_changes_and_heal_restores_it() {
    let (r, code) = run("mtu.yaml");
    assert_eq!(r["verdict"], "PASS", "{:#}", r);
    assert_eq!(code, Some(0));
    let healed = events(&r, "fault_healed");
    assert_eq!(healed[0]["fault"], "net.mtu");
    // net.mtu cannot tell whether it fired: no count, and no ERROR for it.
    assert!(healed[0].get("matched").is_none(), "{:?}", healed[0]);
    assert!(healed[0].get("error").is_none(), "{:?}", healed[0]);
    assert_eq!(leftovers(&r), Vec::<String>::new());
}

#[test]
fn a_block_that_matches_nothing_is_an_error_naming_fault_and_step() {
    let (r, code) = run("block-unmatched.yaml");
    assert_eq!(r["verdict"], "ERROR", "{:#}", r);
    assert_eq!(
        r["reason"],
        "net.block at step cut never fired: it matched no packet while active"
    );
    assert_ne!(code, Some(0));
    let healed = events(&r, "fault_healed");
    assert_eq!(healed[0]["matched"], 0, "{:?}", healed[0]);
    firewall_deleted(&r);
    assert_eq!(leftovers(&r), Vec::<String>::new());
}

#[test]
fn delay_without_netem_is_a_skip_that_says_so() {
    let netem = Command::new("unshare")
        .args([
            "-n", "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms",
        ])
        .output()
        .unwrap();
    let (r, code) = run("delay.yaml");
    if netem.status.success() {
        // A kernel with netem: the fault runs and delays real packets.
        assert_eq!(r["verdict"], "PASS", "{:#}", r);
        let healed = events(&r, "fault_healed");
        assert!(
            healed[0]["matched"].as_u64().unwrap() >= 1,
            "{:?}",
            healed[0]
        );
    } else {
        assert_eq!(r["verdict"], "SKIP", "{:#}", r);
        let reason = r["reason"].as_str().unwrap();
        assert!(
            reason.starts_with("kernel feature netem (netem qdisc) unavailable on")
                && reason.contains("CONFIG_NET_SCH_NETEM")
                && reason.contains("--vm"),
            "{reason}"
        );
        assert_eq!(code, Some(0));
    }
}

#[test]
fn an_mtu_change_with_heal_false_outlasts_the_timeline() {
    let (r, code) = run("mtu-kept.yaml");
    // The probe's every op saw MTU 1280, those during the grace too.
    assert_eq!(r["verdict"], "PASS", "{:#}", r);
    assert_eq!(code, Some(0));
    assert_eq!(events(&r, "fault_healed").len(), 0, "never healed");
    let end = events(&r, "step_end")
        .iter()
        .map(|e| e["t_ns"].as_u64().unwrap())
        .max()
        .unwrap();
    let in_grace = events(&r, "op")
        .iter()
        .filter(|e| e["start_ns"].as_u64().unwrap() > end)
        .count();
    assert!(in_grace >= 1, "no probe ran after the timeline: {:#}", r);
    assert_eq!(leftovers(&r), Vec::<String>::new());
}
