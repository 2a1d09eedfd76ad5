//! A terminal's Ctrl-C (SIGINT to the whole foreground process group) or a
//! CI's SIGTERM to `run --vm` stops the guest's job as it would stop a run
//! on a host: the job is interrupted, heals and tears down inside the
//! guest, and its report comes back ERROR naming the signal; the cases
//! after it are not started. Before, SIGTERM killed the host process with
//! no report at all, and Ctrl-C killed QEMU under the job as well. Fails
//! loudly where QEMU or a kernel is missing.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
mod vm_run_support;

#[test]
fn ctrl_c_stops_the_guests_job_which_reports_the_interruption() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "vm tests need root on the host that boots the guest"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    // One guest runs both cases, the two-minute hold first.
    let mut child = Command::new(env!("CARGO_BIN_EXE_stackquake"))
        .args(["run", "--vm", "--jobs", "1", "--output"])
        .arg(out.path())
        .arg(root.join("tests/scenarios/vm/long-hold.yaml"))
        .arg(root.join("bench/scenarios/trivial.yaml"))
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        // A group of its own, as a shell gives a foreground job.
        .process_group(0)
        .spawn()
        .unwrap();
    let lines = vm_run_support::lines_of(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|e| panic!("no `begin hold` ({e}):\n{}", seen.join("\n")));
        let holding = line.contains("begin") && line.ends_with("hold");
        seen.push(line);
        if holding {
            break;
        }
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    // Ctrl-C: SIGINT to every process of the group.
    nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    // The hold has about two minutes left: a run that ignored the signal
    // is still going well after the job's own teardown would have ended.
    let (done_tx, done) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let status = child.wait().unwrap();
        let _ = done_tx.send(());
        status
    });
    if done.recv_timeout(Duration::from_secs(90)).is_err() {
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        panic!("the run did not stop within 90 s of Ctrl-C");
    }
    let status = waiter.join().unwrap();
    seen.extend(lines.try_iter());
    let ctx = seen.join("\n");
    let text = std::fs::read_to_string(out.path().join("journal.json")).expect(&ctx);
    let j: serde_json::Value = serde_json::from_str(&text).unwrap();
    let results = j["results"].as_array().unwrap();
    let hold = results
        .iter()
        .find(|r| r["id"] == "long-hold")
        .unwrap_or_else(|| panic!("no long-hold result\n{j:#}\n{ctx}"));
    assert_eq!(hold["verdict"], "ERROR", "{hold:#}\n{ctx}");
    let reason = hold["reason"].as_str().unwrap();
    assert!(
        reason.contains("interrupted by a signal"),
        "{reason}\n{ctx}"
    );
    // The guest's job tore the world down and reported: the report is the
    // guest's own, not one the host made up for a killed guest.
    assert!(
        j["target"].as_str().unwrap().contains("booted in"),
        "{}\n{ctx}",
        j["target"]
    );
    assert!(
        results
            .iter()
            .all(|r| r["id"] != "trivial" || r["verdict"] != "PASS"),
        "the case after the interrupted one ran:\n{j:#}"
    );
    assert_ne!(status.code(), Some(0), "{ctx}");
}
