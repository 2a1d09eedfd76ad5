//! Processes a run starts, and the one way to end one: a recorded process
//! is killed by [`kill`], from its owner's teardown and from `stackquake
//! cleanup` alike. Every process of a run is also found by the
//! `STACKQUAKE_RUN=<run id>` variable its children inherit: the ledger names
//! a workload or an exec step's direct child, but the commands those run
//! (`flock -x f sleep 2`) fork grandchildren that no ledger line names and
//! that keep mounts busy.

use crate::ledger::{EntryId, Ledger, LedgerError, LedgerObject};
use crate::sys;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

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

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot run `{command}`")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("cannot read the start time of `{command}` (pid {pid}); killed it")]
    StartTime {
        command: String,
        pid: u32,
        source: std::io::Error,
    },
    #[error("cannot record `{command}` (pid {pid}) in the ledger; killed it")]
    Ledger {
        command: String,
        pid: u32,
        source: LedgerError,
    },
}

/// A child started by [`spawn_recorded`]; its owner reaps it and then calls
/// [`Recorded::reaped`].
#[derive(Debug)]
pub struct Recorded {
    pub child: Child,
    starttime: u64,
    entry: Option<(Ledger, EntryId)>,
}

/// Marks `cmd`'s child as the run's: it carries the run id (so cleanup
/// finds it and every descendant, which no ledger line names) and dies with
/// the thread that spawns it (pdeathsig: a SIGKILLed engine takes its
/// children along, even before they are recorded). Not for nfs-utils
/// daemons: the engine kills every process of the run before the world's
/// teardown, and knfsd's needs its daemons then.
pub fn tie_to_run(cmd: &mut Command, ledger: &Ledger) {
    cmd.env(RUN_ENV, ledger.run().as_str());
    sys::pdeathsig::kill_with_parent(cmd);
}

/// Spawns `cmd` and records the child in `ledger` (when there is one): the
/// one way to start a process the ledger must know of. A pid exists only
/// after the spawn, so the record follows it.
///
/// If the record fails, the child is killed and reaped and the spawn fails.
/// That is the ledger's rule for every object (no entry, no object) and what
/// keeps "a run never leaves processes behind, even when killed" true for
/// every child: pdeathsig covers the moment between spawn and record, but
/// a child that lived on unrecorded could be found afterwards only by the
/// run id in its environment, which daemons do not carry.
pub fn spawn_recorded(cmd: &mut Command, ledger: Option<&Ledger>) -> Result<Recorded, SpawnError> {
    let command = crate::tools::command_line(cmd);
    let child = cmd.spawn().map_err(|source| SpawnError::Spawn {
        command: command.clone(),
        source,
    })?;
    let pid = child.id();
    let give_up = |mut child: Child, e: SpawnError| {
        let _ = child.kill();
        let _ = child.wait();
        Err(e)
    };
    // Our own unreaped child: its stat is readable even if it has exited.
    let starttime = match sys::procstat::read(pid) {
        Ok(s) => s.starttime,
        Err(source) => {
            return give_up(
                child,
                SpawnError::StartTime {
                    command,
                    pid,
                    source,
                },
            );
        }
    };
    let entry = match ledger.map(|l| (l, l.record(LedgerObject::Process { pid, starttime }))) {
        None => None,
        Some((l, Ok(entry))) => Some((l.clone(), entry)),
        Some((_, Err(source))) => {
            return give_up(
                child,
                SpawnError::Ledger {
                    command,
                    pid,
                    source,
                },
            );
        }
    };
    Ok(Recorded {
        child,
        starttime,
        entry,
    })
}

impl Recorded {
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILLs the child with [`kill`], the removal cleanup uses too, and
    /// waits up to `patience` until it is a zombie; the owner reaps it.
    pub fn kill(&self, patience: Duration) -> Result<bool, ProcessError> {
        kill(self.child.id(), self.starttime, patience)
    }

    /// Marks the ledger entry done. Call once the child is reaped: from then
    /// on its pid may name another process.
    pub fn reaped(&mut self) {
        if let Some((ledger, entry)) = self.entry.take()
            && let Err(e) = ledger.done(entry)
        {
            tracing::warn!(pid = self.child.id(), error = %e, "cannot mark process done in the ledger");
        }
    }
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
    fn a_recorded_child_is_in_the_ledger_until_killed_and_reaped() {
        let dir = tempfile::tempdir().unwrap();
        let run = crate::ledger::RunId::generate();
        let ledger = Ledger::create(dir.path(), &run, std::path::Path::new("t.yaml")).unwrap();
        let mut cmd = Command::new("sleep");
        cmd.arg("60");
        let mut child = spawn_recorded(&mut cmd, Some(&ledger)).unwrap();
        assert_eq!(ledger.open_entries(), 1);
        assert!(child.kill(Duration::from_secs(3)).unwrap());
        child.child.wait().unwrap();
        child.reaped();
        assert_eq!(ledger.open_entries(), 0);
        // Gone (reaped): nothing left to kill.
        assert!(!child.kill(Duration::from_secs(3)).unwrap());
        let mut missing = Command::new("no-such-tool-stackquake");
        assert!(matches!(
            spawn_recorded(&mut missing, Some(&ledger)),
            Err(SpawnError::Spawn { .. })
        ));
        assert_eq!(ledger.open_entries(), 0);
    }

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
