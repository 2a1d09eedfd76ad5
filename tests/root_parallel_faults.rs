//! Issue 13: the faults of one `parallel` group were injected one after
//! another (0.26 s apart) and each healed `for` after its own late begin.
//! Now they go in together, and each heals `for` after the group's faults
//! are in force (never sooner: a slow injection does not cut it short).
//! tests/scenarios/net/parallel-blocks.yaml runs on this machine's kernel:
//! two net.block members in different namespaces, `for: 2s` and `for: 3s`.
//! The skew is printed and lies in the journal (fault_injected and
//! fault_healed times); this test asserts only order and lower bounds,
//! never an upper one (bench/parallel-skew.sh measures that).

#[path = "root_world_support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command;

const S: u64 = 1_000_000_000;

#[test]
fn a_parallel_groups_faults_go_in_together_and_heal_at_their_own_times() {
    support::require_root_and(&["nft", "busybox", "ip", "unshare"], &["/dev/kmsg"]);
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios/net/parallel-blocks.yaml");
    let out = tempfile::tempdir().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_stackquake"))
        .args(["run", "--target", "host", "--output"])
        .arg(out.path())
        .arg(&file)
        .status()
        .unwrap();
    let text = std::fs::read_to_string(out.path().join("journal.json")).unwrap();
    let j: serde_json::Value = serde_json::from_str(&text).unwrap();
    let r = &j["results"][0];
    assert_eq!(r["verdict"], "PASS", "{r:#}");
    assert_eq!(status.code(), Some(0));
    let events = r["journal"]["events"].as_array().unwrap();
    let at = |kind: &str, step: &str| -> (usize, u64) {
        events
            .iter()
            .enumerate()
            .find(|(_, e)| e["event"] == kind && e["step"] == step)
            .map(|(i, e)| (i, e["t_ns"].as_u64().unwrap()))
            .unwrap_or_else(|| panic!("no {kind} of {step}"))
    };
    // The members begin when `before` ends: their planned time.
    let (_, planned) = at("step_end", "before");
    let (inj_b_at, inj_b) = at("fault_injected", "cut-b");
    let (inj_c_at, inj_c) = at("fault_injected", "cut-c");
    let (heal_b_at, heal_b) = at("fault_healed", "cut-b");
    let (heal_c_at, heal_c) = at("fault_healed", "cut-c");
    // Both in before either heals; the shorter heals first.
    assert!(inj_b_at.max(inj_c_at) < heal_b_at.min(heal_c_at));
    assert!(heal_b_at < heal_c_at);
    // Each lasts its whole `for` from when both were in force.
    let in_force = inj_b.max(inj_c);
    assert!(in_force >= planned, "{in_force} < {planned}");
    assert!(heal_b >= in_force + 2 * S, "{heal_b} < {in_force} + 2s");
    assert!(heal_c >= in_force + 3 * S, "{heal_c} < {in_force} + 3s");
    // Both fired: each rule counted packets.
    for step in ["cut-b", "cut-c"] {
        let healed = &events[at("fault_healed", step).0];
        assert!(healed["matched"].as_u64().unwrap() > 0, "{healed}");
    }
    eprintln!(
        "parallel-blocks: injected at +{:.4}s / +{:.4}s (skew {:.2} ms), \
         healed {:.2} ms / {:.2} ms after their planned times",
        inj_b as f64 / 1e9,
        inj_c as f64 / 1e9,
        inj_b.abs_diff(inj_c) as f64 / 1e6,
        (heal_b - planned - 2 * S) as f64 / 1e6,
        (heal_c - planned - 3 * S) as f64 / 1e6,
    );
}
