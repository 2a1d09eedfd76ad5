//! The timeline on the host target: after/offset/parallel timing, per-step
//! and scenario timeouts, and faults healed however the run ends.

mod engine_support;

use engine_support::{Case, SERVER_WORLD, at, events, require_root};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::time::{Duration, Instant};

fn scenario(id: &str, timeout: &str, steps: &str) -> String {
    format!(
        "schema_version: 1\nid: {id}\ntitle: t\ntimeout: {timeout}\n{SERVER_WORLD}steps:\n{steps}"
    )
}

const LONG_FAULT: &str = "  - { id: steady, wait: 100ms }
  - id: failover
    fault: { nfs.unexport: { server: fs1, export: /export } }
    for: 60s
";

/// The fault was injected and healed, without error, long before its `for`.
fn assert_healed_early(result: &serde_json::Value) {
    let injected = at(result, "fault_injected", "failover");
    let healed = events(result, "fault_healed");
    assert_eq!(healed.len(), 1, "{healed:?}");
    assert!(healed[0]["error"].is_null(), "{healed:?}");
    let t = healed[0]["t_ns"].as_u64().unwrap() as f64 / 1e9;
    assert!(
        t > injected && t < 30.0,
        "healed at {t}s, injected at {injected}s"
    );
}

fn interrupted_by(sig: Signal) {
    require_root();
    let case = Case::new(&scenario("sig", "120s", LONG_FAULT));
    let mut child = case.spawn(&[]);
    // Setup of one netns and a server takes well under 3 s here.
    std::thread::sleep(Duration::from_secs(3));
    kill(Pid::from_raw(child.id() as i32), sig).unwrap();
    let started = Instant::now();
    let status = child.wait().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "teardown took too long"
    );
    assert_eq!(
        status.code(),
        Some(70),
        "an interrupted run is ERROR (exit 70)"
    );
    let r = case.result();
    assert_eq!(r["verdict"], "ERROR");
    assert_eq!(r["reason"], "interrupted by a signal");
    assert_healed_early(&r);
}

#[test]
fn sigint_heals_the_active_fault() {
    interrupted_by(Signal::SIGINT);
}

#[test]
fn sigterm_heals_the_active_fault() {
    interrupted_by(Signal::SIGTERM);
}

#[test]
fn scenario_timeout_heals_the_active_fault() {
    require_root();
    let case = Case::new(&scenario("tmo", "3s", LONG_FAULT));
    let (code, _, r) = case.run();
    assert_eq!(code, 70);
    assert_eq!(r["verdict"], "ERROR");
    assert_eq!(r["reason"], "scenario timeout reached");
    assert_healed_early(&r);
}

#[test]
fn a_step_past_its_timeout_fails_the_run_kills_its_command_and_heals() {
    require_root();
    let steps = "  - id: g
    parallel:
      - id: failover
        fault: { nfs.unexport: { server: fs1, export: /export } }
        for: 60s
      - id: stuck
        exec: { host: srv, command: [sleep, '30'] }
        timeout: 1s
";
    let case = Case::new(&scenario("steptmo", "60s", steps));
    let (code, stdout, r) = case.run();
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(r["verdict"], "FAIL");
    assert_eq!(
        r["reason"],
        "step stuck did not end within its timeout of 1s"
    );
    let timed_out = events(&r, "step_timed_out");
    assert_eq!(timed_out.len(), 1);
    let t = timed_out[0]["t_ns"].as_u64().unwrap() as f64 / 1e9;
    assert!(
        (1.0..2.0).contains(&(t - at(&r, "step_begin", "stuck"))),
        "timed out at {t}"
    );
    let exec = events(&r, "exec");
    assert_eq!(exec[0]["signal"], 9, "the command was killed: {exec:?}");
    let healed = events(&r, "fault_healed");
    assert_eq!(healed.len(), 1);
    assert!(healed[0]["error"].is_null());
}

#[test]
fn after_offset_and_parallel_schedule_steps() {
    require_root();
    let steps = "  - { id: steady, wait: 300ms }
  - id: block
    fault: { nfs.unexport: { server: fs1, export: /export } }
    for: 1s
  - { id: inner, after: steady, offset: 200ms, wait: 300ms }
  - id: group
    after: block
    parallel:
      - { id: x, wait: 400ms }
      - { id: y, offset: 300ms, wait: 600ms }
  - { id: last, wait: 100ms }
";
    let case = Case::new(&scenario("sched", "60s", steps));
    let (code, stdout, r) = case.run();
    assert_eq!(code, 0, "{stdout}");
    let close = |got: f64, want: f64, what: &str| {
        assert!(
            (got - want).abs() < 0.15,
            "{what}: {got:.3}s, want {want:.3}s"
        );
    };
    let steady_end = at(&r, "step_end", "steady");
    close(
        at(&r, "step_begin", "block"),
        steady_end,
        "block follows steady",
    );
    close(
        at(&r, "step_begin", "inner"),
        steady_end + 0.2,
        "inner: after steady, offset 200ms",
    );
    let block_end = at(&r, "step_end", "block");
    close(
        block_end - at(&r, "step_begin", "block"),
        1.0,
        "block lasts its `for`",
    );
    close(
        at(&r, "fault_healed", "block"),
        block_end,
        "healed as the step ends",
    );
    close(
        at(&r, "step_begin", "group"),
        block_end,
        "group after block",
    );
    close(at(&r, "step_begin", "x"), block_end, "x with the group");
    close(
        at(&r, "step_begin", "y"),
        block_end + 0.3,
        "y at its offset",
    );
    close(
        at(&r, "step_end", "group"),
        block_end + 0.9,
        "group ends with y",
    );
    close(
        at(&r, "step_begin", "last"),
        block_end + 0.9,
        "last follows group",
    );
}

/// (start, end) of each op of `workload`, in seconds.
fn ops_of(result: &serde_json::Value, workload: &str) -> Vec<(f64, f64)> {
    events(result, "op")
        .into_iter()
        .filter(|e| e["workload"] == workload)
        .map(|e| {
            let s = |k: &str| e[k].as_u64().unwrap() as f64 / 1e9;
            (s("start_ns"), s("end_ns"))
        })
        .collect()
}

#[test]
fn a_workload_runs_from_its_start_step_to_its_stop_step() {
    require_root();
    let yaml = format!(
        "schema_version: 1\nid: wl-steps\ntitle: t\ntimeout: 60s\n{SERVER_WORLD}{}",
        "workloads:
  - { id: inside, host: srv, op: stat, path: /, every: 20ms, start: middle, stop: middle }
  - { id: later, host: srv, op: stat, path: /, every: 20ms, start: last }
  - { id: always, host: srv, op: stat, path: /, every: 20ms }
steps:
  - { id: first, wait: 1s }
  - { id: middle, wait: 1s }
  - { id: last, wait: 1s }
"
    );
    let (code, stdout, r) = Case::new(&yaml).run();
    assert_eq!(code, 0, "{stdout}");
    let middle = (at(&r, "step_begin", "middle"), at(&r, "step_end", "middle"));
    let last = at(&r, "step_begin", "last");

    let inside = ops_of(&r, "inside");
    assert!(inside.len() >= 3, "{inside:?}");
    assert!(
        inside.iter().all(|o| o.0 >= middle.0),
        "{inside:?} {middle:?}"
    );
    // SIGTERM follows the step's end by microseconds: at most one op may
    // begin in between; every later one would mean it was never stopped.
    let past_end = inside.iter().filter(|o| o.0 > middle.1).count();
    assert!(past_end <= 1, "{inside:?} {middle:?}");
    let stopped = events(&r, "teardown")
        .into_iter()
        .filter(|e| e["what"] == "stop workload inside")
        .count();
    assert_eq!(stopped, 1, "reaped once, at the end of the run");

    let later = ops_of(&r, "later");
    assert!(!later.is_empty());
    assert!(later.iter().all(|o| o.0 >= last), "{later:?} {last}");

    // Without `start`, a workload begins with the timeline, before `middle`.
    let always = ops_of(&r, "always");
    assert!(always.iter().any(|o| o.0 < middle.0), "{always:?}");
}
