//! Processes a run starts: a recorded process is started by
//! [`spawn_recorded`] and ended by [`kill`], the one removal its owner's
//! teardown and `stackquake cleanup` both use. Every process of a run is
//! also found by the `STACKQUAKE_RUN=<run id>` variable its children
//! inherit: the ledger names a workload or an exec step's direct child, but
//! the commands those run (`flock -x f sleep 2`) fork grandchildren that no
//! ledger line names and that keep mounts busy.

pub mod own_daemon;
mod spawn;

use crate::sys;
use std::time::{Duration, Instant};

pub use spawn::{Recorded, SpawnError, spawn_recorded, tie_to_run};

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot signal process {pid}")]
    Signal { pid: u32, source: nix::errno::Errno },
    #[error("process {pid} still alive {patience:?} after SIGKILL (state {state})")]
    Unkillable {
        pid: u32,
        patience: Duration,
        state: char,
    },
}

/// SIGKILLs `pid` if it is still the process that started at `starttime`
/// (field 22 of its stat: a recycled pid is left alone), and waits up to
/// `patience` until it is gone or a zombie. Ok(false): it was already gone.
/// Works on other processes' children too (it polls, never wait(2)s): an
/// owner reaps its own child afterwards.
pub fn kill(pid: u32, starttime: u64, patience: Duration) -> Result<bool, ProcessError> {
    if !sys::procstat::is_same_process_alive(pid, starttime) {
        return Ok(false);
    }
    let target = nix::unistd::Pid::from_raw(pid as i32);
    match nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGKILL) {
        Ok(()) => {}
        // Exited between the check and the signal.
        Err(nix::errno::Errno::ESRCH) => return Ok(false),
        Err(source) => return Err(ProcessError::Signal { pid, source }),
    }
    let until = Instant::now() + patience;
    loop {
        if !sys::procstat::is_same_process_alive(pid, starttime) {
            return Ok(true);
        }
        if Instant::now() >= until {
            let state = sys::procstat::read(pid).map(|s| s.state).unwrap_or('?');
            return Err(ProcessError::Unkillable {
                pid,
                patience,
                state,
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The environment variable carrying the run id into every child.
pub const RUN_ENV: &str = "STACKQUAKE_RUN";

/// Pids of live processes (not zombies) whose environment names `run`.
pub fn run_processes(run: &str) -> Vec<u32> {
    let needle = format!("{RUN_ENV}={run}");
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|&pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == needle.as_bytes()))
        })
        .filter(|&pid| sys::procstat::read(pid).is_ok_and(|s| s.state != 'Z'))
        .collect()
}

/// SIGKILLs every process of `run` and waits (up to 3 s) until each is gone
/// or a zombie. Returns the pids killed, or what would not die.
pub fn kill_run_processes(run: &str) -> Result<Vec<u32>, String> {
    let mut killed = Vec::new();
    // A dying parent may still fork; a few rounds catch its last children.
    for _ in 0..5 {
        let pids = run_processes(run);
        if pids.is_empty() {
            return Ok(killed);
        }
        for &pid in &pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            if !killed.contains(&pid) {
                killed.push(pid);
            }
        }
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until && pids.iter().any(|p| run_processes(run).contains(p)) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let left = run_processes(run);
    if left.is_empty() {
        Ok(killed)
    } else {
        let states: Vec<String> = left
            .iter()
            .map(|p| {
                let st = sys::procstat::read(*p).map(|s| s.state).unwrap_or('?');
                format!("{p} (state {st})")
            })
            .collect();
        Err(format!(
            "processes of run {run} still alive after SIGKILL: {}",
            states.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_with_the_run_variable_is_found_and_killed() {
        let run = format!("test{}", std::process::id());
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .env(RUN_ENV, &run)
            .spawn()
            .unwrap();
        let mut other = std::process::Command::new("sleep")
            .arg("60")
            .env(RUN_ENV, format!("{run}x"))
            .spawn()
            .unwrap();
        // spawn() returns once the child's execve released us, which is
        // before the kernel has laid out the new environment: until then
        // /proc/<pid>/environ reads empty. Wait (bounded) for both to show
        // one, as any later cleanup would find them.
        for pid in [child.id(), other.id()] {
            let deadline = Instant::now() + Duration::from_secs(5);
            while std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|e| e.is_empty())
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        assert_eq!(run_processes(&run), vec![child.id()]);
        // Our child becomes a zombie until reaped; reap it on a thread.
        let pid = child.id();
        let reaper = std::thread::spawn(move || child.wait());
        assert_eq!(kill_run_processes(&run), Ok(vec![pid]));
        reaper.join().unwrap().unwrap();
        assert!(run_processes(&run).is_empty());
        assert_eq!(run_processes(&format!("{run}x")), vec![other.id()]);
        other.kill().unwrap();
        other.wait().unwrap();
    }
}
