//! Issue 13: a scenario whose end-of-run heal breaks the path its data
//! check then reads over (tests/scenarios/vm/heal-breaks-verify.yaml) hung
//! the guest until the host killed it, and every result was lost: journal
//! `"events": []`, `"kernel": "unknown"`. Now the scenario timeout holds
//! for the read back too — the run ends in ERROR saying so, with its
//! events, the kernel and its outcomes, long before the host's limit —
//! and the events were streamed out as they happened (stream.jsonl), so a
//! killed guest would have left them too. With `data_check: before_heal`
//! the same world passes. The hung read is a child process the engine
//! kills, and the NFS mount comes off with MNT_FORCE first, so no task of
//! the engine waits in the kernel and the guest powers off by itself.
//! Fails loudly where QEMU or a kernel is missing.

mod vm_run_support;
use vm_run_support::VmRun;

#[test]
fn a_data_check_hung_by_the_final_heal_ends_at_the_scenario_timeout_with_its_results() {
    // One guest runs both cases (`--jobs 1`): its stream must hold both.
    let run = VmRun::new(
        &["--jobs", "1"],
        "tests/scenarios/vm/heal-breaks-verify.yaml",
    );
    let (j, ctx, out) = (&run.journal, &run.ctx, &run.out);
    // The guest finished by itself: it was not killed.
    let target = j["target"].as_str().unwrap();
    assert!(target.starts_with("vm (booted in"), "{target}\n{ctx}");
    assert_ne!(j["kernel"], "unknown", "{ctx}");

    let case = |check: &str| {
        let id = format!("heal-breaks-verify[check={check}]");
        j["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id.as_str())
            .unwrap_or_else(|| panic!("no result {id}\n{ctx}"))
            .clone()
    };
    let after = case("after_heal");
    assert_eq!(after["verdict"], "ERROR", "{after:#}");
    let reason = after["reason"].as_str().unwrap();
    assert!(
        reason.contains("scenario timeout reached while reading back the file of workload big"),
        "{reason}"
    );
    let events = after["journal"]["events"].as_array().unwrap();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    for kind in [
        "step_begin",
        "fault_injected",
        "fault_healed",
        "op",
        "verified",
        "aborted",
    ] {
        assert!(kinds.contains(&kind), "no {kind} event in {kinds:?}");
    }
    let verified = events.iter().find(|e| e["event"] == "verified").unwrap();
    assert!(
        verified["error"]
            .as_str()
            .unwrap()
            .contains("did not return"),
        "{verified}"
    );
    // The hung read was killed and its pending RPC with it: the mount came
    // off whole (umount -f), not detached with a superblock left hanging,
    // which is what kept the guest from powering off (CI, 2026-12-04).
    let teardown: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "teardown")
        .filter_map(|e| e["what"].as_str())
        .collect();
    assert!(
        teardown.contains(&"unmount bulkshare (umount -f)"),
        "{teardown:?}"
    );
    // Writes over the lowered MTU worked; the data check is the one FAIL.
    let outcomes = after["outcomes"].as_array().unwrap();
    assert_eq!(outcomes[0]["passed"], true, "{outcomes:#?}");
    assert_eq!(outcomes[1]["passed"], false, "{outcomes:#?}");

    let before = case("before_heal");
    assert_eq!(before["verdict"], "PASS", "{before:#}");

    // Both scenarios' events went out as they happened.
    let stream = std::fs::read_to_string(out.path().join("stream.jsonl")).expect(ctx);
    let records: Vec<serde_json::Value> = stream
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records[0]["record"], "run", "{}", records[0]);
    assert_eq!(records[0]["kernel"], j["kernel"]);
    let streamed = |record: &str| records.iter().filter(|r| r["record"] == record).count();
    assert_eq!(streamed("scenario"), 2);
    assert_eq!(streamed("result"), 2);
    assert!(streamed("event") >= events.len(), "{stream}");
    assert!(
        records
            .iter()
            .any(|r| r["record"] == "stage" && r["stage"] == "verifying data"),
        "{stream}"
    );
}
