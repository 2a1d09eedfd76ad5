//! Starting a child the ledger records: the one way, with one policy when
//! the record fails.

use std::process::{Child, Command};
use std::time::Duration;

use super::{ProcessError, RUN_ENV, kill};
use crate::ledger::{EntryId, Ledger, LedgerError, LedgerObject};
use crate::sys;

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
}
