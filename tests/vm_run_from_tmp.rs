//! A scenario saved right in /tmp runs in the guest like any other. The
//! guest shows the host's paths that its own scratch tmpfs hides, and it
//! used to show a file's whole directory: the host's /tmp, read-only, over
//! the guest's, so every such run was an ERROR ("create /tmp/stackquake/…:
//! Read-only file system"). Fails loudly where QEMU or a kernel is missing.

mod vm_run_support;
use vm_run_support::VmRun;

#[test]
fn a_scenario_right_in_tmp_runs_and_the_guest_keeps_its_scratch() {
    let file = std::path::PathBuf::from(format!(
        "/tmp/stackquake-test-{}-in-tmp.yaml",
        std::process::id()
    ));
    // The step writes to the guest's /tmp: it must still be the guest's
    // own, writable scratch, not the host's /tmp shown read-only.
    std::fs::write(
        &file,
        "schema_version: 1\nid: in-tmp\ntitle: A scenario saved in /tmp\nhosts: { a: {} }\n\
         steps:\n  - { id: scratch, exec: { host: a, command: [sh, -c, 'echo x > /tmp/w && cat /tmp/w'] } }\n",
    )
    .unwrap();
    let run = VmRun::new(&[], file.to_str().unwrap());
    let _ = std::fs::remove_file(&file);
    let r = run.result("in-tmp");
    assert_eq!(r["verdict"], "PASS", "{r:#}\n{}", run.ctx);
    let exec = r["journal"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "exec")
        .unwrap_or_else(|| panic!("no exec event\n{r:#}"));
    assert_eq!(exec["code"], 0, "{exec:#}");
    assert_eq!(exec["output"].as_str().unwrap().trim(), "x", "{exec:#}");
}
