//! An exec step's `ready:` line on the host target: the workloads that
//! start with the step wait for the line, not for the spawn, `order` can
//! measure from it, and a command that exits without it stops the run.

mod engine_support;

use engine_support::{Case, at, events, require_root};

/// A holder that takes the lock, waits a second, says so, and keeps it 2 s.
fn scenario(holder_says: &str) -> String {
    format!(
        "schema_version: 1
id: ready
title: t
timeout: 60s
requires: {{ tools: [flock] }}
hosts:
  local: {{}}
workloads:
  - {{ id: locker, host: local, op: flock, lock: ex, path: /app.lock, every: 20ms,
      deadline: 10s, start: holder }}
steps:
  - {{ id: steady, wait: 200ms }}
  - id: holder
    exec: {{ host: local, command: [flock, -x, app.lock, sh, -c, 'sleep 1; echo {holder_says}; exec sleep 2'],
            ready: '^locked$' }}
    timeout: 20s
  - {{ id: after, wait: 500ms }}
expect:
  - order: {{ first: {{ step: holder, at: ready }}, then: {{ workload: locker, op: acquired }},
             at_least: 1500ms }}
"
    )
}

#[test]
fn a_workload_starts_when_the_command_says_it_is_ready() {
    require_root();
    let case = Case::new(&scenario("locked"));
    let (code, _, r) = case.run();
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["verdict"], "PASS", "{r:#}");
    let begun = at(&r, "step_begin", "holder");
    let ready = at(&r, "ready", "holder");
    // The line comes a second after the spawn, and is read within a tick.
    assert!(
        ready >= begun + 1.0 && ready < begun + 2.0,
        "holder began at {begun}s, ready at {ready}s"
    );
    // Started at the spawn, the locker's first op would have begun a
    // second before the line; it began after it and waited out the hold.
    let ops = events(&r, "op");
    let first = ops[0]["start_ns"].as_u64().unwrap() as f64 / 1e9;
    assert!(first >= ready, "first op at {first}s, ready at {ready}s");
    let acquired = ops[0]["hold"]["acquired_ns"].as_u64().unwrap() as f64 / 1e9;
    assert!(acquired >= ready + 1.5, "acquired at {acquired}s");
}

#[test]
fn a_command_that_never_says_it_is_ready_is_an_error() {
    require_root();
    let case = Case::new(&scenario("taken"));
    let (code, _, r) = case.run();
    assert_eq!(code, 70, "an ERROR exits 70: {r:#}");
    assert_eq!(r["verdict"], "ERROR", "{r:#}");
    let reason = r["reason"].as_str().unwrap();
    assert!(
        reason.contains("step holder's command exited without printing a line matching /^locked$/"),
        "{reason}"
    );
    assert!(events(&r, "ready").is_empty(), "{r:#}");
    // Its workload never started.
    assert!(events(&r, "op").is_empty(), "{r:#}");
}
