//! The timeline as a scenario writes it: steps with ids, ordering
//! (`after:`, `offset:`, `parallel:`), limits, and what each step does.

use super::model::Ref;
use super::nfs_faults::NfsCallMatch;
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
    /// Matching calls are held this long, then served. Heal: rule removed.
    #[serde(rename = "nfs.delay")]
    NfsDelay {
        server: Ref,
        #[serde(default, rename = "match")]
        match_: NfsCallMatch,
        delay: Duration,
    },
    /// Matching calls are held until the fault heals, then served.
    #[serde(rename = "nfs.stall")]
    NfsStall {
        server: Ref,
        #[serde(default, rename = "match")]
        match_: NfsCallMatch,
    },
    /// Matching calls are served but their replies dropped (the client
    /// retransmits). Heal: rule removed.
    #[serde(rename = "nfs.drop")]
    NfsDrop {
        server: Ref,
        #[serde(default, rename = "match")]
        match_: NfsCallMatch,
    },
    /// A matching call closes its connection unserved. Heal: rule removed.
    #[serde(rename = "nfs.close")]
    NfsClose {
        server: Ref,
        #[serde(default, rename = "match")]
        match_: NfsCallMatch,
    },
    /// Matching calls are answered, unserved, with this status
    /// (`NFS3ERR_IO`, `io`, `jukebox`, or a number). Heal: rule removed.
    #[serde(rename = "nfs.error")]
    NfsError {
        server: Ref,
        #[serde(default, rename = "match")]
        match_: NfsCallMatch,
        status: Spanned<String>,
    },
    /// The server reboots at once: connections closed, new write verifier,
    /// reply cache lost; with `lose_handles` every handle turns STALE.
    /// Heal: none (a reboot cannot be undone).
    #[serde(rename = "nfs.restart")]
    NfsRestart {
        server: Ref,
        #[serde(default)]
        lose_handles: bool,
    },
}

impl Fault {
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::NfsUnexport { .. } => "nfs.unexport",
            Fault::XfsShutdown { .. } => "xfs.shutdown",
            Fault::NfsDelay { .. } => "nfs.delay",
            Fault::NfsStall { .. } => "nfs.stall",
            Fault::NfsDrop { .. } => "nfs.drop",
            Fault::NfsClose { .. } => "nfs.close",
            Fault::NfsError { .. } => "nfs.error",
            Fault::NfsRestart { .. } => "nfs.restart",
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
