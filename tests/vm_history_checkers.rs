//! Issue 13's checkers over the whole history, on a real NLM lock in the
//! guest (tests/scenarios/vm/flock-contention-one-host.yaml): three flock
//! workers on one client record each hold (flock(2) returned .. unlock
//! began) in the journal; `mutual_exclusion` finds them disjoint and says
//! how close the closest handoff came; `order` puts the first grant at
//! least 8 s after the outside holder began and within 3 s of its end.
//! The test reads the holds back itself, so a checker that passed without
//! looking would be caught. Fails loudly where QEMU or a kernel is missing.

use std::path::Path;
use std::process::Command;

#[test]
fn three_lock_workers_never_overlap_and_are_granted_after_the_holder() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "vm tests need root on the host that boots the guest"
    );
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios/vm/flock-contention-one-host.yaml");
    let out = tempfile::tempdir().unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_stackquake"))
        .args(["run", "--vm", "--jobs", "1", "--output"])
        .arg(out.path())
        .arg(&file)
        .output()
        .unwrap();
    let ctx = format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let text = std::fs::read_to_string(out.path().join("journal.json")).expect(&ctx);
    let j: serde_json::Value = serde_json::from_str(&text).unwrap();
    let result = &j["results"][0];
    assert_eq!(result["verdict"], "PASS", "{result:#}\n{ctx}");
    let outcome = |prefix: &str| {
        result["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["expectation"].as_str().unwrap().starts_with(prefix))
            .unwrap_or_else(|| panic!("no outcome `{prefix}`\n{result:#}"))
            .clone()
    };
    let exclusion = outcome("no two of php1, php2, php3 hold the lock at once");
    let detail = exclusion["detail"].as_str().unwrap();
    assert!(
        detail.contains("holds by php1, php2, php3, none overlapping; closest handoff"),
        "{detail}"
    );
    let later = outcome("php1 acquired at least 8s after step holder begin");
    assert_eq!(later["passed"], true, "{later}");
    let prompt = outcome("php1 acquired at most 3s after step holder end");
    assert_eq!(prompt["passed"], true, "{prompt}");

    // The holds themselves: every worker held the lock, no two at once.
    let mut holds: Vec<(u64, u64, String)> = result["journal"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "op" && !e["hold"].is_null())
        .map(|e| {
            (
                e["hold"]["acquired_ns"].as_u64().unwrap(),
                e["hold"]["released_ns"].as_u64().unwrap(),
                e["workload"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    holds.sort();
    for w in ["php1", "php2", "php3"] {
        assert!(
            holds.iter().filter(|h| h.2 == w).count() >= 3,
            "{w} held the lock fewer than 3 times: {holds:?}"
        );
    }
    for pair in holds.windows(2) {
        assert!(pair[0].0 <= pair[0].1, "{pair:?}");
        assert!(pair[1].0 >= pair[0].1, "overlapping holds {pair:?}");
    }
}
