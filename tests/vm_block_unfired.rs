//! A block fault proves it fired by the I/Os that reached its dm volume, in
//! a QEMU guest (the dev hosts have no device-mapper): a scenario whose
//! volume sits idle while its table is swapped is an ERROR naming the
//! fault, not a PASS; one whose only I/O comes after a detach, and fails
//! there, is a PASS with that I/O counted. Also the one VM run of
//! `block.error` with a sector range (a three-line table loaded through
//! dmsetup's stdin). Fails loudly where QEMU or a kernel is missing.

mod vm_run_support;
use vm_run_support::VmRun;

/// Runs one scenario in a guest, as `run --vm` does for a user.
fn run_in_guest(scenario: &str) -> VmRun {
    let run = VmRun::new(&[], scenario);
    let target = run.journal["target"].as_str().unwrap();
    assert!(target.starts_with("vm"), "{}", run.ctx);
    run
}

#[test]
fn a_block_fault_that_saw_no_io_makes_the_run_error() {
    let run = run_in_guest("tests/scenarios/unfired/block-fault-no-io.yaml");
    let (r, ctx) = (&run.results()[0], &run.ctx);
    assert_eq!(r["verdict"], "ERROR", "{r:#}\n{ctx}");
    let reason = r["reason"].as_str().unwrap();
    assert!(
        reason.contains("block.error")
            && reason.contains("idle_error")
            && reason.contains("never fired"),
        "{reason}"
    );
    // The fault was injected and healed (the range table loaded and
    // replaced), and the expectation itself held: only the unfired fault
    // turned the verdict.
    let events = r["journal"]["events"].as_array().unwrap();
    let healed = events
        .iter()
        .find(|e| e["event"] == "fault_healed")
        .expect("fault healed");
    assert!(healed["error"].is_null(), "{healed}");
    for o in r["outcomes"].as_array().unwrap() {
        assert_eq!(o["passed"], true, "{o}");
    }
    assert_eq!(run.code, Some(70), "ERROR exits 70\n{ctx}");
}

/// dm counts no bio that its `error` target fails at once; a detach whose
/// only I/O came after the swap was an ERROR, "never fired", although that
/// I/O failed there. Its failing sectors now map onto a device that fails
/// them one level down, so the volume counts each.
#[test]
fn io_a_detached_volume_fails_is_counted() {
    let run = run_in_guest("tests/scenarios/vm/block-detach-io-after.yaml");
    let (r, ctx) = (&run.results()[0], &run.ctx);
    assert_eq!(r["verdict"], "PASS", "{r:#}\n{ctx}");
    let events = r["journal"]["events"].as_array().unwrap();
    let healed = events
        .iter()
        .find(|e| e["event"] == "fault_healed" && e["fault"] == "block.detach")
        .expect("the detach's fault_healed event");
    let matched = healed["matched"].as_u64().expect("a count");
    // At least the log write that `sync -f` sent.
    assert!(matched >= 1, "{healed}");
    assert_eq!(run.code, Some(0), "{ctx}");
}
