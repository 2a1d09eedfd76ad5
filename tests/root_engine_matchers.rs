//! Matchers, workloads and verdicts on the host target with a real XFS
//! image: flock hangs and resumes, data read back, exit codes, the kernel
//! log deny-list, XFAIL and XPASS.

mod engine_support;

use engine_support::{Case, SERVER_WORLD, events, require_root, serial};

const IMAGE_WORLD: &str = "\
requires: { kernel_features: [xfs, loop], tools: [mkfs.xfs, flock] }
hosts:
  local: {}
images:
  - { id: vol, host: local, file: /images/vol.img, size: 512M, mkfs: xfs, at: /mnt/vol }
";

#[test]
fn every_workload_kind_and_matcher_on_an_exclusive_lock_held_by_another() {
    require_root();
    let _serial = serial();
    let yaml = format!(
        "schema_version: 1\nid: locks\ntitle: t\ntimeout: 60s\n{IMAGE_WORLD}{}",
        "workloads:
  - { id: writer, host: local, op: append, path: /mnt/vol/journal, every: 10ms, fsync: true, record_size: 512 }
  - { id: rewriter, host: local, op: write, path: /mnt/vol/slots, every: 10ms, fsync: true, record_size: 1K }
  - { id: reader, host: local, op: read, path: /mnt/vol/slots, every: 50ms }
  - { id: lister, host: local, op: readdir, path: /mnt/vol, every: 50ms }
  - { id: statter, host: local, op: stat, path: /mnt/vol, every: 50ms }
  - { id: locker, host: local, op: flock, lock: ex, path: /mnt/vol/lock, every: 20ms, deadline: 300ms }
  - { id: sharer, host: local, op: flock, lock: sh, hold: 10ms, path: /mnt/vol/lock, every: 20ms, deadline: 300ms }
  - { id: prober, host: local, op: exec, command: [test, -d, mnt/vol], every: 100ms }
  - { id: failing, host: local, op: exec, command: [test, -d, mnt/nothing], count: 2 }
steps:
  - { id: steady, wait: 500ms }
  - id: hold
    exec: { host: local, command: [flock, -x, mnt/vol/lock, sleep, '2'] }
    timeout: 10s
  - { id: after, wait: 1s }
expect:
  - hang: { workload: locker, state: S, wchan: lock, during: [hold] }
  - hang: { workload: sharer, during: [hold] }
  - no_hang: { workload: writer }
  - no_hang: { workload: locker, during: [steady] }
  - stalls_at_least: { workload: locker, duration: 1500ms, during: [hold] }
  - resumes_within: { workload: locker, duration: 500ms, after: hold }
  - no_errors: { workload: writer }
  - no_errors: { workload: rewriter }
  - no_errors: { workload: reader }
  - no_errors: { workload: lister }
  - no_errors: { workload: statter }
  - no_errors: { workload: prober }
  - data: { workload: writer, verify: all_acknowledged }
  - data: { workload: rewriter, verify: all_acknowledged }
  - exit_code: { step: hold, code: 0 }
  - kmsg: { pattern: 'BUG|Oops', absent: true, after: steady }
"
    );
    let case = Case::new(&yaml);
    let (code, stdout, r) = case.run();
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(r["verdict"], "PASS", "{stdout}");
    // The matchers saw real evidence, not empty windows.
    assert!(stdout.contains("locker hangs in state S"), "{stdout}");
    let verified = events(&r, "verified");
    assert_eq!(verified.len(), 2);
    for v in verified {
        assert!(v["acknowledged"].as_u64().unwrap() > 50, "{v}");
        assert_eq!(v["acknowledged"], v["intact"]);
    }
    // A command that fails is a failed op with its exit code.
    let failing: Vec<_> = events(&r, "op")
        .into_iter()
        .filter(|e| e["workload"] == "failing")
        .collect();
    assert_eq!(failing.len(), 2);
    assert_eq!(failing[0]["exit_code"], 1);
    // Per-step artifacts.
    let step_dir = case.out().join("locks").join("hold");
    assert!(step_dir.join("stacks.txt").exists());
    let stacks = std::fs::read_to_string(step_dir.join("stacks.txt")).unwrap();
    assert!(stacks.contains("locker op"), "{stacks}");
    assert!(step_dir.join("mountstats.txt").exists());
    assert!(step_dir.join("kmsg.txt").exists());
}

#[test]
fn workloads_start_together_so_a_reader_finds_the_file_a_later_writer_creates() {
    require_root();
    let _serial = serial();
    // The reader is listed (so spawned) first and reads once, at once: it
    // passes only if no workload starts before the writer has created its file.
    let yaml = format!(
        "schema_version: 1\nid: ready\ntitle: t\ntimeout: 30s\n{IMAGE_WORLD}{}",
        "workloads:
  - { id: reader, host: local, op: read, path: /mnt/vol/late, count: 1 }
  - { id: writer, host: local, op: write, path: /mnt/vol/late, every: 10ms, count: 3 }
steps:
  - { id: settle, wait: 300ms }
expect:
  - no_errors: { workload: reader }
  - no_errors: { workload: writer }
"
    );
    let (code, stdout, r) = Case::new(&yaml).run();
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(r["verdict"], "PASS", "{stdout}");
    let reads = events(&r, "op")
        .into_iter()
        .filter(|e| e["workload"] == "reader")
        .count();
    assert_eq!(reads, 1, "{stdout}");
}

#[test]
fn a_failing_matcher_fails_and_names_its_evidence() {
    require_root();
    let _serial = serial();
    let yaml = format!(
        "schema_version: 1\nid: nohang\ntitle: t\ntimeout: 60s\n{IMAGE_WORLD}{}",
        "workloads:
  - { id: locker, host: local, op: flock, lock: ex, path: /mnt/vol/lock, every: 20ms, deadline: 300ms }
steps:
  - id: hold
    exec: { host: local, command: [flock, -x, mnt/vol/lock, sleep, '1'] }
expect:
  - no_hang: { workload: locker }
  - exit_code: { step: hold, code: 3 }
"
    );
    let (code, stdout, r) = Case::new(&yaml).run();
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(r["verdict"], "FAIL");
    let outcomes = r["outcomes"].as_array().unwrap();
    assert_eq!(outcomes[0]["passed"], false);
    assert!(
        outcomes[0]["detail"]
            .as_str()
            .unwrap()
            .contains("past its deadline"),
        "{stdout}"
    );
    assert_eq!(outcomes[1]["detail"], "exited with 0");
}

fn exec_case(id: &str, command: &str, extra: &str) -> String {
    format!(
        "schema_version: 1\nid: {id}\ntitle: t\ntimeout: 30s\n{SERVER_WORLD}{extra}steps:
  - id: probe
    exec: {{ host: srv, command: {command} }}
expect:
  - exit_code: {{ step: probe, code: 0 }}
"
    )
}

const XFAIL: &str = "xfail: { reason: probe is broken, link: 'https://example.invalid/1', kernel: { from: '2.6' } }\n";

#[test]
fn xfail_turns_a_failure_into_xfail_and_a_pass_into_xpass() {
    require_root();
    let _serial = serial();
    let (code, stdout, r) = Case::new(&exec_case("xf", "[sh, -c, 'exit 4']", XFAIL)).run();
    assert_eq!(
        (code, r["verdict"].as_str()),
        (0, Some("XFAIL")),
        "{stdout}"
    );
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .starts_with("known failure: probe is broken")
    );
    let (code, stdout, r) = Case::new(&exec_case("xp", "[true]", XFAIL)).run();
    assert_eq!(
        (code, r["verdict"].as_str()),
        (1, Some("XPASS")),
        "{stdout}"
    );
    // Outside the kernel range the failure is an ordinary FAIL.
    let old_only = "xfail: { reason: old kernels only, kernel: { until: '3.0' } }\n";
    let (code, stdout, r) = Case::new(&exec_case("xo", "[sh, -c, 'exit 4']", old_only)).run();
    assert_eq!((code, r["verdict"].as_str()), (1, Some("FAIL")), "{stdout}");
}

#[test]
fn the_kmsg_deny_list_fails_a_run_unless_the_line_is_allowed() {
    require_root();
    let _serial = serial();
    let warn = "[sh, -c, 'echo \"WARNING: stackquake deny-list test\" > /dev/kmsg']";
    let (code, stdout, r) = Case::new(&exec_case("deny", warn, "")).run();
    assert_eq!((code, r["verdict"].as_str()), (1, Some("FAIL")), "{stdout}");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("WARNING: WARNING: stackquake deny-list test"),
        "{r}"
    );
    let allow = "kmsg_allow: ['stackquake deny-list test']\n";
    let (code, stdout, r) = Case::new(&exec_case("allow", warn, allow)).run();
    assert_eq!((code, r["verdict"].as_str()), (0, Some("PASS")), "{stdout}");
}

#[test]
fn unmet_requirements_skip_with_the_reason() {
    require_root();
    let _serial = serial();
    let yaml = "schema_version: 1\nid: skip\ntitle: t\nrequires: { tools: [no-such-tool-sq] }\nsteps: [{ id: a, wait: 1s }]\n";
    let (code, stdout, r) = Case::new(yaml).run();
    assert_eq!((code, r["verdict"].as_str()), (0, Some("SKIP")), "{stdout}");
    assert_eq!(
        r["reason"],
        "tool `no-such-tool-sq` not found on PATH; use --vm (--target vm boots a guest kernel that has them)"
    );
}
