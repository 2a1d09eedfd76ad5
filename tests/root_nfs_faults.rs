//! The `nfs.*` call faults end to end with the real binary on the host
//! target: libnfs's nfs-cp/nfs-cat in a client namespace against the
//! in-process server (tests/scenarios/nfs/call-faults-libnfs.yaml). The
//! verdict checks exit codes; this test also reads the journal for what
//! exit codes cannot show (held until the delay passed or the heal came),
//! and shows that a call fault that matched nothing makes the run an ERROR.

#[path = "root_world_support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_stackquake");

fn find<'a>(events: &'a [serde_json::Value], kind: &str, step: &str) -> &'a serde_json::Value {
    events
        .iter()
        .find(|e| e["event"] == kind && e["step"] == step)
        .unwrap_or_else(|| panic!("no {kind} event for step {step}"))
}

fn t(e: &serde_json::Value) -> u64 {
    e["t_ns"].as_u64().unwrap()
}

/// Runs `tests/scenarios/nfs/<name>` on the host target; its one result
/// from journal.json, and the exit code.
fn run(name: &str) -> (serde_json::Value, Option<i32>) {
    support::require_root_and(&["nfs-cat", "nfs-cp"], &["/dev/kmsg"]);
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios/nfs")
        .join(name);
    let out = tempfile::tempdir().unwrap();
    let status = Command::new(BIN)
        .args(["run", "--target", "host", "--output"])
        .arg(out.path())
        .arg(&file)
        .status()
        .unwrap();
    let text = std::fs::read_to_string(out.path().join("journal.json")).unwrap();
    let mut j: serde_json::Value = serde_json::from_str(&text).unwrap();
    (j["results"][0].take(), status.code())
}

#[test]
fn each_call_fault_shows_its_effect_on_a_libnfs_client() {
    let (result, code) = run("call-faults-libnfs.yaml");
    assert_eq!(result["verdict"], "PASS", "{:#}", result["outcomes"]);
    assert_eq!(code, Some(0));
    let events = result["journal"]["events"].as_array().unwrap();

    // nfs.error READ→NFS3ERR_IO: the mount worked, the read failed.
    let e = find(events, "exec", "read-error");
    assert!(
        e["output"].as_str().unwrap().contains("Failed to read"),
        "{e}"
    );
    // nfs.error MNT→acces: the mount itself is refused with that status.
    let e = find(events, "exec", "read-unmountable");
    assert!(
        e["output"].as_str().unwrap().contains("MNT3ERR_ACCES"),
        "{e}"
    );
    // nfs.delay 1500ms on READ: the read cannot end sooner than that after
    // it began (a lower bound the fault guarantees, not a wall-clock guess).
    let began = t(find(events, "step_begin", "read-delayed"));
    let ended = t(find(events, "exec", "read-delayed"));
    assert!(
        ended - began >= 1_500_000_000,
        "delayed read took {} ms",
        (ended - began) / 1_000_000
    );
    // nfs.stall on READ: the read ends only after the heal.
    let healed = t(find(events, "fault_healed", "stall-fault"));
    let ended = t(find(events, "exec", "read-stalled"));
    assert!(
        ended >= healed,
        "stalled read ended {} ms before the heal",
        (healed - ended) / 1_000_000
    );
    // Every fault was injected and healed without error.
    for step in [
        "error-fault",
        "delay-fault",
        "stall-fault",
        "mnt-fault",
        "restart",
    ] {
        find(events, "fault_injected", step);
        let h = find(events, "fault_healed", step);
        assert!(h.get("error").is_none(), "{h}");
    }
}

#[test]
fn a_call_fault_that_matched_no_call_makes_the_run_an_error() {
    let (result, code) = run("unfired-call-fault.yaml");
    // The expectation held (the read worked): only the unfired fault turns
    // the verdict.
    for o in result["outcomes"].as_array().unwrap() {
        assert_eq!(o["passed"], true, "{o}");
    }
    assert_eq!(result["verdict"], "ERROR", "{result:#}");
    assert_eq!(
        result["reason"],
        "nfs.drop at step rename-fault never fired: it matched no call while active"
    );
    let events = result["journal"]["events"].as_array().unwrap();
    let healed = find(events, "fault_healed", "rename-fault");
    assert_eq!(healed["matched"], 0, "{healed}");
    assert_eq!(healed["unit"], "call", "{healed}");
    assert_eq!(code, Some(70), "ERROR exits 70");
}

#[test]
fn seeded_files_are_served_from_the_first_step() {
    let (result, code) = run("seeded-files-libnfs.yaml");
    // Each exec step checks one file's content or size through NFS; a file
    // not seeded, or seeded wrong, fails its step's exit_code matcher.
    for o in result["outcomes"].as_array().unwrap() {
        assert_eq!(o["passed"], true, "{o}");
    }
    assert_eq!(result["verdict"], "PASS", "{result:#}");
    assert_eq!(code, Some(0));
}
