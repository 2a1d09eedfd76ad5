//! Issue 13: a mount that must fail. The export admits only `client`, so
//! `outsider`'s mount is refused at setup with EACCES, recorded as a
//! `mount_refused` event, and the run goes on (the writer on the working
//! mount passes). Where the export admits everyone the mount succeeds and
//! `mount_fails` FAILs ("mounted at setup"): that case is a declared
//! known failure. Fails loudly where QEMU or a kernel is missing.

mod vm_run_support;
use vm_run_support::VmRun;

#[test]
fn a_refused_mount_is_expected_and_a_mount_that_works_fails_the_expectation() {
    let run = VmRun::new(&["--jobs", "1"], "tests/scenarios/vm/mount-refused.yaml");
    let result = |id: &str| run.result(id).clone();
    let refused = result("mount-refused[clients=10.77.0.2/32]");
    assert_eq!(refused["verdict"], "PASS", "{refused:#}");
    let event = refused["journal"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "mount_refused")
        .unwrap_or_else(|| panic!("no mount_refused event\n{refused:#}"))
        .clone();
    assert_eq!(event["mount"], "denied");
    assert_eq!(event["errno"], libc::EACCES);
    assert!(
        event["error"].as_str().unwrap().contains("EACCES"),
        "{event}"
    );

    let open = result("mount-refused[clients=10.77.0.0/24]");
    assert_eq!(open["verdict"], "XFAIL", "{open:#}");
    let outcome = &open["outcomes"][0];
    assert_eq!(outcome["passed"], false, "{outcome}");
    assert_eq!(outcome["detail"], "mounted at setup", "{outcome}");
    assert_eq!(open["outcomes"][1]["passed"], true, "{open:#}");
    assert_eq!(run.code, Some(0), "{}", run.ctx);
}
