//! umount with escalation: plain → MNT_FORCE → MNT_DETACH, each attempt on a
//! helper thread with a deadline, because an NFS umount under a stalled
//! server can sleep in D state forever and teardown must not.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use nix::errno::Errno;
use nix::mount::{MntFlags, umount2};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UmountStep {
    Plain,
    Force,
    Detach,
}

impl UmountStep {
    fn flags(self) -> MntFlags {
        match self {
            UmountStep::Plain => MntFlags::empty(),
            UmountStep::Force => MntFlags::MNT_FORCE,
            UmountStep::Detach => MntFlags::MNT_DETACH,
        }
    }
}

impl fmt::Display for UmountStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UmountStep::Plain => "umount",
            UmountStep::Force => "umount -f",
            UmountStep::Detach => "umount -l",
        })
    }
}

/// Why one escalation step did not unmount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepFailure {
    Errno(Errno),
    /// The syscall was still blocked at the deadline; its thread is left
    /// behind (it cannot be cancelled) and we escalate.
    TimedOut(Duration),
}

impl fmt::Display for StepFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepFailure::Errno(e) => write!(f, "{e}"),
            StepFailure::TimedOut(d) => write!(f, "still blocked after {d:?}"),
        }
    }
}

/// What happened to one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UmountOutcome {
    pub target: PathBuf,
    /// The step that unmounted it; None if it was not mounted (EINVAL on the
    /// first step) or if every step failed.
    pub unmounted_by: Option<UmountStep>,
    /// The first step answered EINVAL: the target was not a mount point.
    pub not_mounted: bool,
    pub failures: Vec<(UmountStep, StepFailure)>,
}

impl UmountOutcome {
    /// True when the target is no longer mounted (or never was).
    pub fn is_gone(&self) -> bool {
        self.unmounted_by.is_some() || self.not_mounted
    }
}

/// Unmounts `target`, escalating until one step succeeds. Each step gets
/// `deadline`. EINVAL ("not a mount point") on the plain step ends the
/// escalation: there is nothing left to unmount.
pub fn umount_escalating(target: &Path, deadline: Duration) -> UmountOutcome {
    let mut outcome = UmountOutcome {
        target: target.to_path_buf(),
        unmounted_by: None,
        not_mounted: false,
        failures: Vec::new(),
    };
    for step in [UmountStep::Plain, UmountStep::Force, UmountStep::Detach] {
        match attempt(target, step, deadline) {
            Ok(()) => {
                tracing::info!(target = %target.display(), %step, "unmounted");
                outcome.unmounted_by = Some(step);
                return outcome;
            }
            Err(StepFailure::Errno(Errno::EINVAL)) if step == UmountStep::Plain => {
                tracing::debug!(target = %target.display(), "not mounted");
                outcome.not_mounted = true;
                return outcome;
            }
            Err(failure) => {
                tracing::warn!(target = %target.display(), %step, %failure, "umount step failed, escalating");
                outcome.failures.push((step, failure));
            }
        }
    }
    tracing::error!(target = %target.display(), "every umount step failed");
    outcome
}

fn attempt(target: &Path, step: UmountStep, deadline: Duration) -> Result<(), StepFailure> {
    let (tx, rx) = mpsc::channel();
    let path = target.to_path_buf();
    let spawned = std::thread::Builder::new()
        .name("sq-umount".into())
        .spawn(move || {
            let _ = tx.send(umount2(&path, step.flags()));
        });
    if let Err(e) = spawned {
        return Err(StepFailure::Errno(Errno::from_raw(
            e.raw_os_error().unwrap_or(libc::EAGAIN),
        )));
    }
    match rx.recv_timeout(deadline) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(StepFailure::Errno(e)),
        Err(_) => Err(StepFailure::TimedOut(deadline)),
    }
}
