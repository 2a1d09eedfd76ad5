//! umount with escalation: plain → MNT_FORCE → MNT_DETACH (NFS: MNT_FORCE
//! first), each attempt in a child process of its own with a deadline,
//! because an NFS umount under a stalled server can sleep in D state
//! forever, and teardown must not — nor may the engine's own exit.
//!
//! Why a process and not a thread: the last reference to a mount tears its
//! superblock down in the task that drops it. For a hard NFS mount whose
//! server is gone, with a READ still pending, that task waits for the
//! locked page for ever, uninterruptibly. A thread of ours stuck there
//! keeps our whole process from exiting (a guest then never powers off);
//! a child stuck there is left to the kernel and we go on.

use std::ffi::CString;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::mount::MntFlags;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, fork};

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

/// The escalation for a filesystem type. NFS starts with MNT_FORCE: its
/// umount_begin kills the mount's pending RPCs (a READ a hard mount retries
/// for ever would otherwise hold a page locked through the teardown), then
/// the umount goes on as a plain one. Elsewhere MNT_FORCE means more (FUSE
/// aborts its connection), so it stays the second step.
pub fn escalation(fstype: Option<&str>) -> &'static [UmountStep] {
    match fstype {
        Some("nfs" | "nfs4") => &[UmountStep::Force, UmountStep::Detach],
        _ => &[UmountStep::Plain, UmountStep::Force, UmountStep::Detach],
    }
}

/// Unmounts `target`, escalating (see [`escalation`]) until one step
/// succeeds. Each step gets `deadline`. EINVAL ("not a mount point") on the
/// first step ends the escalation: there is nothing left to unmount.
pub fn umount_escalating(target: &Path, deadline: Duration) -> UmountOutcome {
    let mut outcome = UmountOutcome {
        target: target.to_path_buf(),
        unmounted_by: None,
        not_mounted: false,
        failures: Vec::new(),
    };
    let steps = escalation(crate::sys::mountinfo::fstype(target).as_deref());
    for (i, &step) in steps.iter().enumerate() {
        match attempt(target, step, deadline) {
            Ok(()) => {
                tracing::info!(target = %target.display(), %step, "unmounted");
                outcome.unmounted_by = Some(step);
                return outcome;
            }
            Err(StepFailure::Errno(Errno::EINVAL)) if i == 0 => {
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

/// One umount2 in a child process, waited for until `deadline`. A child
/// still blocked then is left behind: it sits in the kernel, where no
/// signal reaches it, and is reaped by init whenever it ends.
fn attempt(target: &Path, step: UmountStep, deadline: Duration) -> Result<(), StepFailure> {
    let errno = |e: Errno| StepFailure::Errno(e);
    let path = CString::new(target.as_os_str().as_bytes()).map_err(|_| errno(Errno::EINVAL))?;
    let flags = step.flags().bits();
    // SAFETY: the child runs only umount2(2) and _exit(2), both
    // async-signal-safe, on memory prepared before the fork: safe in a
    // child of a multi-threaded process.
    let child = match unsafe { fork() }.map_err(errno)? {
        // SAFETY: as above; the pointer is the CString's, alive in the copy.
        ForkResult::Child => unsafe {
            let code = if libc::umount2(path.as_ptr(), flags) == 0 {
                0
            } else {
                *libc::__errno_location()
            };
            libc::_exit(code)
        },
        ForkResult::Parent { child } => child,
    };
    let until = Instant::now() + deadline;
    loop {
        match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, 0)) => return Ok(()),
            Ok(WaitStatus::Exited(_, code)) => return Err(errno(Errno::from_raw(code))),
            Ok(WaitStatus::StillAlive) => {}
            Ok(_) => return Err(errno(Errno::ECHILD)),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(errno(e)),
        }
        if Instant::now() >= until {
            return Err(StepFailure::TimedOut(deadline));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
