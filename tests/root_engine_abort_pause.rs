//! Abort probes and `pause` steps on the host target, with an in-process
//! NFS server's faults (no NFS client needed): a failing probe of each kind
//! heals every fault at once and ends the run ABORTED (exit 3) long before
//! its timeline would have; a pause holds the timeline until the operator
//! confirms by file, by SIGUSR1 or on the terminal, and one nobody
//! confirms fails at its timeout.

mod engine_support;

use engine_support::{Case, at, events, require_root};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// Two exports on one in-process server, so two faults can be in force.
const WORLD: &str = "\
requires: { kernel_features: [netns] }
hosts:
  srv: {}
nfs_servers:
  fs1:
    host: srv
    exports: [{ path: /a }, { path: /b }]
";

/// Both exports withdrawn for 60 s at once: far longer than any probe
/// here takes to fail.
const TWO_LONG_FAULTS: &str = "  - { id: steady, wait: 100ms }
  - id: both
    parallel:
      - { id: cut-a, fault: { nfs.unexport: { server: fs1, export: /a } }, for: 60s }
      - { id: cut-b, fault: { nfs.unexport: { server: fs1, export: /b } }, for: 60s }
";

fn scenario(id: &str, extra: &str, steps: &str, abort: &str) -> String {
    format!(
        "schema_version: 1\nid: {id}\ntitle: t\ntimeout: 120s\n{WORLD}{extra}steps:\n{steps}abort:\n{abort}"
    )
}

/// The run was ABORTED by `probe`, whose failure says `why`; both faults
/// were healed after the probe failed and long before their `for:`.
fn assert_aborted_by(code: i32, r: &Value, probe: &str, why: &str) {
    assert_eq!(code, 3, "an aborted run exits 3: {r}");
    assert_eq!(r["verdict"], "ABORTED", "{r}");
    let reason = r["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(&format!("abort probe {probe} failed: ")) && reason.contains(why),
        "{reason}"
    );
    let failed = events(r, "probe_failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["probe"], probe);
    let t_failed = failed[0]["t_ns"].as_u64().unwrap();
    let healed = events(r, "fault_healed");
    assert_eq!(healed.len(), 2, "{healed:?}");
    for h in healed {
        assert!(h["error"].is_null(), "{h}");
        let t = h["t_ns"].as_u64().unwrap();
        assert!(t >= t_failed, "healed before the probe failed: {h}");
        let injected = at(r, "fault_injected", h["step"].as_str().unwrap());
        assert!(
            (t as f64 / 1e9) - injected < 30.0,
            "healed at its for: rather than at the abort: {h}"
        );
    }
}

#[test]
fn a_failing_exec_probe_heals_every_fault_at_once_and_aborts_the_run() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let trip = dir.path().join("trip");
    let steps = format!(
        "{TWO_LONG_FAULTS}  - id: trip
    after: steady
    offset: 1500ms
    exec: {{ host: srv, command: [touch, {}] }}
",
        trip.display()
    );
    let abort = format!(
        "  - id: no-trip
    exec: {{ host: srv, command: [sh, -c, 'test ! -e {}'] }}
    every: 200ms
    within: 5s
",
        trip.display()
    );
    let case = Case::new(&scenario("abort-exec", "", &steps, &abort));
    let (code, _, r) = case.run();
    assert_aborted_by(code, &r, "no-trip", "exited 1");
    // It ran (and passed) until the trip file appeared.
    let t_failed = events(&r, "probe_failed")[0]["t_ns"].as_u64().unwrap() as f64 / 1e9;
    assert!(t_failed > at(&r, "step_begin", "trip"), "{r}");
    // The junit says which failure it was.
    let junit = std::fs::read_to_string(case.out().join("junit.xml")).unwrap();
    assert!(junit.contains(r#"type="aborted""#), "{junit}");
}

#[test]
fn a_file_that_stops_being_readable_aborts_the_run() {
    require_root();
    // The writer makes /data before the timeline; a step replaces it with
    // a directory, which reads fail with EISDIR.
    let extra = "workloads:\n  - { id: writer, host: srv, op: append, path: /data, every: 50ms }\n";
    let steps = format!(
        "{TWO_LONG_FAULTS}  - id: replace
    after: steady
    offset: 1s
    exec: {{ host: srv, command: [sh, -c, 'rm -f data && mkdir data'] }}
"
    );
    let abort = "  - { id: data, readable: /data, every: 200ms, within: 5s }\n";
    let case = Case::new(&scenario("abort-read", extra, &steps, abort));
    let (code, _, r) = case.run();
    assert_aborted_by(code, &r, "data", "/data cannot be read: EISDIR in read");
}

#[test]
fn a_workload_op_past_its_bound_aborts_the_run_while_it_still_hangs() {
    require_root();
    // The locker takes and drops the lock every 100 ms until a step holds
    // it for 60 s: its next flock waits, and the probe bounds that wait.
    let extra = "workloads:
  - { id: locker, host: srv, op: flock, path: /lockfile, lock: ex, hold: 50ms, every: 100ms, deadline: 30s }
";
    let steps = format!(
        "{TWO_LONG_FAULTS}  - id: hold
    after: steady
    offset: 1s
    exec: {{ host: srv, command: [flock, lockfile, sleep, '60'] }}
"
    );
    let abort = "  - { id: lock-wait, workload: locker, within: 2s }\n";
    let case = Case::new(&scenario("abort-latency", extra, &steps, abort));
    let started = Instant::now();
    let (code, _, r) = case.run();
    assert!(started.elapsed() < Duration::from_secs(40), "{r}");
    assert_aborted_by(
        code,
        &r,
        "lock-wait",
        "of workload locker has not returned after",
    );
    assert!(
        r["reason"].as_str().unwrap().ends_with("(bound 2s)"),
        "{}",
        r["reason"]
    );
}

/// A run whose timeline is a pause between two waits.
fn paused_case(timeout: &str) -> Case {
    let steps = format!(
        "  - {{ id: steady, wait: 100ms }}
  - {{ id: confirm, pause: 'fail the filer over now', timeout: {timeout} }}
  - {{ id: after, wait: 100ms }}
"
    );
    Case::new(&format!(
        "schema_version: 1\nid: paused\ntitle: t\ntimeout: 120s\n{WORLD}steps:\n{steps}"
    ))
}

/// Waits for the pause to be announced in the scenario's output directory.
fn await_paused(case: &Case) -> String {
    let paused = case.out().join("paused").join("paused");
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        if let Ok(text) = std::fs::read_to_string(&paused) {
            return text;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no {} within 30 s", paused.display());
}

/// The pause held the timeline for at least `held`, was confirmed `by`,
/// and the run passed.
fn assert_confirmed(case: &Case, code: i32, held: Duration, by: &str) {
    let r = case.result();
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["verdict"], "PASS", "{r}");
    let continued = events(&r, "continued");
    assert_eq!(continued.len(), 1, "{continued:?}");
    assert_eq!(continued[0]["step"], "confirm");
    assert!(
        continued[0]["by"].as_str().unwrap().starts_with(by),
        "{continued:?}"
    );
    let lasted = at(&r, "step_end", "confirm") - at(&r, "step_begin", "confirm");
    assert!(lasted >= held.as_secs_f64(), "the pause lasted {lasted}s");
    assert!(at(&r, "step_begin", "after") >= at(&r, "step_end", "confirm"));
    // The announcement goes with the pause.
    assert!(!case.out().join("paused").join("paused").exists());
}

#[test]
fn a_pause_holds_the_timeline_until_its_continue_file_appears() {
    require_root();
    let case = paused_case("60s");
    let child = case.spawn(&[]);
    let said = await_paused(&case);
    assert!(
        said.starts_with("confirm\nfail the filer over now\n"),
        "{said}"
    );
    assert!(said.contains("kill -USR1"), "{said}");
    let continue_file = case.out().join("paused").join("continue");
    assert!(
        said.contains(&continue_file.display().to_string()),
        "{said}"
    );
    std::thread::sleep(Duration::from_secs(2));
    std::fs::write(&continue_file, "").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_confirmed(
        &case,
        out.status.code().unwrap(),
        Duration::from_secs(2),
        "file ",
    );
    assert!(!continue_file.exists(), "the confirmation is taken");
}

#[test]
fn sigusr1_confirms_a_pause() {
    require_root();
    let case = paused_case("60s");
    let child = case.spawn(&[]);
    await_paused(&case);
    std::thread::sleep(Duration::from_secs(1));
    kill(Pid::from_raw(child.id() as i32), Signal::SIGUSR1).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_confirmed(
        &case,
        out.status.code().unwrap(),
        Duration::from_secs(1),
        "SIGUSR1",
    );
}

#[test]
fn enter_on_the_runs_terminal_confirms_a_pause() {
    require_root();
    assert!(
        Path::new("/usr/bin/script").exists(),
        "script(1) (util-linux) gives the run a terminal; run ci/setup"
    );
    let case = paused_case("60s");
    // script(1) runs stackquake on a pseudo-terminal and types what it
    // reads from its own stdin: a line, once the pause has begun (a line
    // typed before it would be dropped).
    let command = format!(
        "{} run --target host --output {} {}",
        env!("CARGO_BIN_EXE_stackquake"),
        case.out().display(),
        case.file.display()
    );
    let mut child = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    await_paused(&case);
    std::thread::sleep(Duration::from_secs(1));
    use std::io::Write;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"\n").unwrap();
    let status = child.wait().unwrap();
    drop(stdin);
    assert_confirmed(
        &case,
        status.code().unwrap(),
        Duration::from_secs(1),
        "terminal",
    );
}

#[test]
fn a_pause_nobody_confirms_fails_at_its_timeout() {
    require_root();
    let case = paused_case("2s");
    let (code, _, r) = case.run();
    assert_eq!(code, 1, "{r}");
    assert_eq!(r["verdict"], "FAIL", "{r}");
    assert_eq!(
        r["reason"],
        "step confirm did not end within its timeout of 2s"
    );
    assert!(events(&r, "continued").is_empty());
    assert!(!case.out().join("paused").join("paused").exists());
}
