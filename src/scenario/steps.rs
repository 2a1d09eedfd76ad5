//! The timeline as a scenario writes it: steps with ids, ordering
//! (`after:`, `offset:`, `parallel:`), limits, and what each step does.

use super::model::Ref;
use super::quantity::Duration;
use serde::Deserialize;
use serde_saphyr::Spanned;

/// One step. It does exactly one of: `wait`, `fault` (healed after `for`, or
/// at the end of the run), `exec` (ends when the command exits), or
/// `parallel` (ends when all its steps have ended).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub id: Spanned<String>,
    /// Begin when this step ends; absent means the previous step (inside a
    /// `parallel` group: when the group begins).
    #[serde(default)]
    pub after: Option<Ref>,
    /// Begin this long after that point.
    #[serde(default)]
    pub offset: Option<Duration>,
    /// The step fails the run if it has not ended this long after it began.
    #[serde(default)]
    pub timeout: Option<Spanned<Duration>>,
    /// Do nothing for this long.
    #[serde(default)]
    pub wait: Option<Duration>,
    #[serde(default)]
    pub fault: Option<Spanned<Fault>>,
    /// Heal the fault after this long; the step lasts as long.
    #[serde(default, rename = "for")]
    pub for_: Option<Duration>,
    /// Run a command to completion; its exit code is recorded.
    #[serde(default)]
    pub exec: Option<Exec>,
    /// Steps that all begin when this one does (each after its own `offset`).
    #[serde(default)]
    pub parallel: Option<Vec<Step>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exec {
    /// The host (network namespace) the command runs in.
    pub host: Ref,
    /// Program and arguments; not run through a shell unless you ask for one.
    pub command: Spanned<Vec<String>>,
}

/// Every fault knows its own undo; the engine heals whatever is still active.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Fault {
    /// The server withdraws an export: calls on its handles answer
    /// NFS3ERR_STALE and MNT is refused. Heal: re-export, same handles.
    #[serde(rename = "nfs.unexport")]
    NfsUnexport { server: Ref, export: Ref },
    /// Force an XFS shutdown of an image's filesystem (XFS_IOC_GOINGDOWN),
    /// as a log I/O error would. Heal: none; the filesystem stays down.
    #[serde(rename = "xfs.shutdown")]
    XfsShutdown { fs: Ref },
    /// The server's lock manager (NLM) stops answering (`stall`: calls are
    /// held, then answered at heal) or leaves its portmapper (`unregister`).
    #[serde(rename = "nlm.down")]
    NlmDown {
        server: Ref,
        #[serde(default)]
        mode: LockDownMode,
    },
    /// The same for a server's status monitor (NSM).
    #[serde(rename = "nsm.down")]
    NsmDown {
        server: Ref,
        #[serde(default)]
        mode: LockDownMode,
    },
    /// The server enters a grace period: only reclaims are granted, new
    /// locks get LCK_DENIED_GRACE_PERIOD. Heal: the grace period ends.
    #[serde(rename = "nlm.grace")]
    NlmGrace { server: Ref },
    /// A host's daemon is killed (SIGKILL, or our stand-in stopped). Heal:
    /// it is started again.
    #[serde(rename = "proc.kill")]
    ProcKill { host: Ref, daemon: Daemon },
    /// A client host crashes: its links go down, so nothing it sends (its
    /// lockd's UNLOCKs) arrives. Heal: it "reboots": links up, its statd
    /// (`statd: stackquake`) takes a new state and sends SM_NOTIFY to every
    /// server it monitors, which releases the host's locks.
    #[serde(rename = "host.crash")]
    HostCrash { host: Ref },
}

/// How `nlm.down` / `nsm.down` take a lock service down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockDownMode {
    /// Calls are held unanswered until the heal, then answered.
    #[default]
    Stall,
    /// Gone from the portmapper: GETPORT answers 0.
    Unregister,
}

/// A daemon `proc.kill` can kill on a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Daemon {
    /// The host's status monitor (`hosts.<h>.statd`).
    Statd,
    /// The host's portmapper (rpcbind, or our stand-in with its statd).
    Rpcbind,
}

impl Fault {
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::NfsUnexport { .. } => "nfs.unexport",
            Fault::XfsShutdown { .. } => "xfs.shutdown",
            Fault::NlmDown { .. } => "nlm.down",
            Fault::NsmDown { .. } => "nsm.down",
            Fault::NlmGrace { .. } => "nlm.grace",
            Fault::ProcKill { .. } => "proc.kill",
            Fault::HostCrash { .. } => "host.crash",
        }
    }
}

impl Step {
    /// What the step does, in one word.
    pub fn action(&self) -> &'static str {
        if self.parallel.is_some() {
            "parallel"
        } else if self.exec.is_some() {
            "exec"
        } else if self.fault.is_some() {
            "fault"
        } else {
            "wait"
        }
    }
}
