//! A guest's QEMU runs at our nice value while its timeline runs and ten
//! above it while it boots and after its teardown (vm::priority), on every
//! thread: what the host's scheduler really sees, read from /proc. Fails
//! loudly where QEMU or a kernel is missing.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
mod vm_run_support;

/// The nice value of every thread of `pid`, from /proc; None once it is gone.
fn nice_of_threads(pid: u32) -> Option<Vec<i32>> {
    stackquake::sys::nice::of_all_threads(pid).ok()
}

/// The QEMU that `parent` started, if it runs.
fn qemu_child_of(parent: u32) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.find_map(|e| {
        let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let (comm, rest) = stat.rsplit_once(')')?;
        let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
        (ppid == parent && comm.contains("qemu-system")).then_some(pid)
    })
}

#[test]
fn a_guest_gets_its_full_share_for_its_timeline_only() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "vm tests need root on the host that boots the guest"
    );
    let ours = stackquake::sys::nice::own().unwrap();
    let background = (ours + 10).min(19);
    assert_ne!(ours, background, "the test runs at nice 19 already");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_stackquake"))
        .args(["run", "--vm", "--output"])
        .arg(out.path())
        .arg(root.join("tests/scenarios/vm/timed-hold.yaml"))
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let lines = vm_run_support::lines_of(child.stderr.take().unwrap());
    let until = Instant::now() + Duration::from_secs(120);
    let mut qemu = None;
    // Each sample on which every thread agreed, in order, deduplicated.
    let mut seen: Vec<i32> = Vec::new();
    let mut at_step_begin = None;
    let mut log = Vec::new();
    while child.try_wait().unwrap().is_none() && Instant::now() < until {
        qemu = qemu.or_else(|| qemu_child_of(child.id()));
        let sample = qemu.and_then(nice_of_threads);
        if let Some(s) = &sample
            && s.iter().all(|n| *n == s[0])
            && seen.last() != Some(&s[0])
        {
            seen.push(s[0]);
        }
        while let Ok(line) = lines.try_recv() {
            // The host renices on the stage line, which comes before the
            // step's first progress line: by now the timeline runs timed.
            if line.contains("begin  hold") {
                at_step_begin = qemu.and_then(nice_of_threads);
            }
            log.push(line);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = child.wait().unwrap();
    let ctx = log.join("\n");
    assert!(status.success(), "{status}\n{ctx}");
    assert!(qemu.is_some(), "never saw the guest's qemu\n{ctx}");
    let threads = at_step_begin.unwrap_or_else(|| panic!("no `begin hold` line\n{ctx}"));
    assert!(threads.len() > 1, "qemu runs several threads: {threads:?}");
    assert_eq!(threads, vec![ours; threads.len()], "timed\n{ctx}");
    // Background from QEMU's start (it starts reniced), ours for the
    // timeline, background again after the teardown until it powered off.
    assert_eq!(seen, [background, ours, background], "{ctx}");
}
