//! The kernel log and /proc task sampling, for real.

mod root_world_support;

use std::process::Command;
use std::time::{Duration, Instant};

use root_world_support::require_root_and;
use stackquake::ledger::RunId;
use stackquake::observe::{Kmsg, marker_text, sample_task, write_marker};

#[test]
fn a_marker_written_to_kmsg_is_read_back_once() {
    require_root_and(&[], &["/dev/kmsg"]);
    let run = RunId::generate();
    let mut kmsg = Kmsg::open_at_end().unwrap();
    // Opened at the end: nothing old comes back.
    let before = kmsg.read_available();
    assert!(before.iter().all(|r| !r.text.contains(run.as_str())));

    // More than the per-open ratelimit burst (10), to prove markers use a
    // fresh fd each time and none is dropped.
    for i in 0..15 {
        write_marker(&marker_text(run.as_str(), &format!("s{i}"), "begin")).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut mine = Vec::new();
    while Instant::now() < deadline && mine.len() < 15 {
        mine.extend(
            kmsg.read_available()
                .into_iter()
                .filter(|r| r.text.contains(run.as_str())),
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let texts: Vec<&str> = mine.iter().map(|r| r.text.as_str()).collect();
    assert_eq!(texts.len(), 15, "{texts:?}");
    assert_eq!(texts[0], format!("stackquake[{run}]: step s0 begin"));
    assert_eq!(mine[0].level, 5);
    assert!(
        mine.windows(2)
            .all(|w| w[0].seq < w[1].seq && w[0].usec <= w[1].usec)
    );
    assert_eq!(kmsg.gaps(), 0);
}

#[test]
fn a_sleeping_child_samples_as_state_s_with_a_wchan() {
    require_root_and(&["sleep"], &["/proc/self/stack"]);
    let mut child = Command::new("sleep").arg("30").spawn().unwrap();
    let pid = child.id();
    // Give it time to reach nanosleep: a child still between fork and
    // exec can already sleep (state S) with wchan "0", so wait for the
    // whole picture, not just the state.
    let settled = |s: &stackquake::observe::TaskSample| {
        s.state == 'S'
            && s.wchan != "0"
            && s.stack.as_deref().is_some_and(|k| k.contains("nanosleep"))
    };
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut sample = sample_task(pid).unwrap();
    while !settled(&sample) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        sample = sample_task(pid).unwrap();
    }
    child.kill().unwrap();
    child.wait().unwrap();
    eprintln!("{sample:#?}");
    assert_eq!(sample.pid, pid);
    assert_eq!(sample.state, 'S');
    assert!(
        !sample.wchan.is_empty() && sample.wchan != "0",
        "wchan {:?}",
        sample.wchan
    );
    let stack = sample.stack.expect("root can read /proc/<pid>/stack");
    assert!(stack.contains("nanosleep"), "{stack}");
    assert!(sample_task(pid).is_err(), "a reaped pid cannot be sampled");
}
