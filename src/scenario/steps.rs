//! The timeline as a scenario writes it: steps with ids, ordering
//! (`after:`, `offset:`, `parallel:`), limits, and what each step does.

use super::model::Ref;
use super::nfs_faults::NfsCallMatch;
use super::quantity::Duration;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

pub use crate::plan::{Daemon, LockDownMode};

/// One step. It does exactly one of: `wait`, `fault` (healed after `for`, or
/// at the end of the run), `exec` (ends when the command exits), `pause`
/// (ends when the operator confirms), or `parallel` (ends when all its
/// steps have ended).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    #[schemars(with = "String")]
    pub id: Spanned<String>,
    /// Begin when this step ends; absent means the previous step (inside a
    /// `parallel` group: when the group begins).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub after: Option<Ref>,
    /// Begin this long after that point.
    #[serde(default)]
    pub offset: Option<Duration>,
    /// The step fails the run if it has not ended this long after it began.
    #[serde(default)]
    #[schemars(with = "Option<Duration>")]
    pub timeout: Option<Spanned<Duration>>,
    /// Do nothing for this long.
    #[serde(default)]
    pub wait: Option<Duration>,
    #[serde(default)]
    #[schemars(with = "Option<Fault>")]
    pub fault: Option<Spanned<Fault>>,
    /// Heal the fault after this long; the step lasts as long.
    #[serde(
        default,
        rename = "for",
        deserialize_with = "super::quantity::nonzero_opt"
    )]
    pub for_: Option<Duration>,
    /// `false`: the fault is never healed: it stays through the workloads'
    /// grace and data verification and goes with its namespace at teardown,
    /// as a configuration change would. `net.*` faults only; not with `for`.
    #[serde(default)]
    #[schemars(with = "Option<bool>")]
    pub heal: Option<Spanned<bool>>,
    /// Run a command to completion; its exit code is recorded.
    #[serde(default)]
    pub exec: Option<Exec>,
    /// Steps that all begin when this one does (each after its own `offset`).
    #[serde(default)]
    pub parallel: Option<Vec<Step>>,
    /// Wait for the operator, showing this message: the step ends when
    /// someone presses Enter on the run's terminal, sends stackquake
    /// SIGUSR1, or creates the step's continue file. Bound it with `timeout`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub pause: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Exec {
    /// The host (network namespace) the command runs in.
    #[schemars(with = "String")]
    pub host: Ref,
    /// Program and arguments; not run through a shell unless you ask for one.
    #[schemars(with = "Vec<String>")]
    pub command: Spanned<Vec<String>>,
    /// A step's command is ready once a line of its output matches this
    /// regular expression (`flock -x f sh -c 'echo locked; sleep 6'`): the
    /// workloads that `start` with the step wait for it, and `order` can
    /// name the moment (`{ step: s, at: ready }`). A command that exits
    /// without printing it is an ERROR.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub ready: Option<Spanned<String>>,
}

/// Every fault knows its own undo; the engine heals whatever is still active.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub enum Fault {
    /// The server withdraws an export: calls on its handles answer
    /// NFS3ERR_STALE and MNT is refused. Heal: re-export, same handles.
    #[serde(rename = "nfs.unexport")]
    NfsUnexport {
        #[schemars(with = "String")]
        server: Ref,
        #[schemars(with = "String")]
        export: Ref,
    },
    /// Force an XFS shutdown of an image's filesystem (XFS_IOC_GOINGDOWN),
    /// as a log I/O error would. Heal: none; the filesystem stays down.
    #[serde(rename = "xfs.shutdown")]
    XfsShutdown {
        #[schemars(with = "String")]
        fs: Ref,
    },
    /// Drop packets (the peer sees silence) in the run's firewall table.
    /// Heal: delete the rule.
    #[serde(rename = "net.block")]
    NetBlock(super::network::NetCut),
    /// Refuse packets: TCP reset, ICMP host-unreachable otherwise. Heal:
    /// delete the rule.
    #[serde(rename = "net.reject")]
    NetReject(super::network::NetCut),
    /// Set one interface's MTU. Heal: restore the old one.
    #[serde(rename = "net.mtu")]
    NetMtu(super::network::NetMtu),
    /// netem delay on what one interface sends. Heal: remove the qdisc.
    #[serde(rename = "net.delay")]
    NetDelay(super::network::NetDelay),
    /// netem loss on what one interface sends. Heal: remove the qdisc.
    #[serde(rename = "net.loss")]
    NetLoss(super::network::NetLoss),
    /// The volume under a mounted filesystem disappears: its dm table is
    /// swapped to `error`. Heal: the linear table again (XFS stays down).
    #[serde(rename = "block.detach")]
    BlockDetach {
        #[schemars(with = "String")]
        image: Ref,
    },
    /// I/O to the volume fails with EIO: all of it, or `sectors` sectors
    /// from `start`. Heal: the linear table.
    #[serde(rename = "block.error")]
    BlockError {
        #[schemars(with = "String")]
        image: Ref,
        #[serde(default)]
        #[schemars(with = "Option<u64>")]
        start: Option<Spanned<u64>>,
        #[serde(default)]
        #[schemars(with = "Option<u64>")]
        sectors: Option<Spanned<u64>>,
    },
    /// Every I/O to the volume waits `delay` (writes `write_delay`, if given).
    /// Heal: the linear table.
    #[serde(rename = "block.delay")]
    BlockDelay {
        #[schemars(with = "String")]
        image: Ref,
        #[schemars(with = "Duration")]
        delay: Spanned<Duration>,
        #[serde(default)]
        #[schemars(with = "Option<Duration>")]
        write_delay: Option<Spanned<Duration>>,
    },
    /// The volume works for `up`, then fails every I/O for `down`, and again
    /// (whole seconds: dm-flakey's unit). Heal: the linear table.
    #[serde(rename = "block.flakey")]
    BlockFlakey {
        #[schemars(with = "String")]
        image: Ref,
        #[schemars(with = "Duration")]
        up: Spanned<Duration>,
        #[schemars(with = "Duration")]
        down: Spanned<Duration>,
    },
    /// Matching calls are held this long, then served. Heal: rule removed.
    #[serde(rename = "nfs.delay")]
    NfsDelay {
        #[schemars(with = "String")]
        server: Ref,
        #[serde(default, rename = "match")]
        match_: NfsCallMatch,
        #[serde(deserialize_with = "super::quantity::nonzero")]
        delay: Duration,
    },
    /// Matching calls are held until the fault heals, then served.
    #[serde(rename = "nfs.stall")]
    NfsStall {
        #[schemars(with = "String")]
        server: Ref,
        #[serde(default, rename = "match")]
        match_: NfsCallMatch,
    },
    /// Matching calls are served but their replies dropped (the client
    /// retransmits). Heal: rule removed.
    #[serde(rename = "nfs.drop")]
    NfsDrop {
        #[schemars(with = "String")]
        server: Ref,
        #[serde(default, rename = "match")]
        match_: NfsCallMatch,
    },
    /// A matching call closes its connection unserved. Heal: rule removed.
    #[serde(rename = "nfs.close")]
    NfsClose {
        #[schemars(with = "String")]
        server: Ref,
        #[serde(default, rename = "match")]
        match_: NfsCallMatch,
    },
    /// Matching calls are answered, unserved, with this status
    /// (`NFS3ERR_IO`, `io`, `jukebox`, or a number). Heal: rule removed.
    #[serde(rename = "nfs.error")]
    NfsError {
        #[schemars(with = "String")]
        server: Ref,
        #[serde(default, rename = "match")]
        match_: NfsCallMatch,
        #[schemars(with = "String")]
        status: Spanned<String>,
    },
    /// The server reboots at once: connections closed, new write verifier,
    /// reply cache lost; with `lose_handles` every handle turns STALE.
    /// Heal: none (a reboot cannot be undone).
    #[serde(rename = "nfs.restart")]
    NfsRestart {
        #[schemars(with = "String")]
        server: Ref,
        #[serde(default)]
        lose_handles: bool,
    },
    /// The NFSv4 leases of the clients on host `client` (every client when
    /// absent) run out now, as if they had stopped renewing: the server
    /// releases their opens and locks, and their next call finds their
    /// session or client id gone. Heal: none (a lease cannot come back).
    #[serde(rename = "nfs.expire_lease")]
    NfsExpireLease {
        #[schemars(with = "String")]
        server: Ref,
        #[serde(default)]
        #[schemars(with = "Option<String>")]
        client: Option<Ref>,
    },
    /// Every NFSv4.1+ SEQUENCE reply carries these status flags (RFC 8881
    /// §18.46.3: `restart_reclaim_needed`, `cb_path_down`,
    /// `expired_some_state_revoked`…), each of which sends the client into
    /// a recovery. Heal: the flags stop.
    #[serde(rename = "nfs.sequence_flags")]
    NfsSequenceFlags {
        #[schemars(with = "String")]
        server: Ref,
        #[schemars(with = "Vec<String>")]
        flags: Vec<Spanned<String>>,
    },
    /// The server's lock manager (NLM) stops answering (`stall`: calls are
    /// held, then answered at heal) or leaves its portmapper (`unregister`).
    #[serde(rename = "nlm.down")]
    NlmDown {
        #[schemars(with = "String")]
        server: Ref,
        #[serde(default)]
        mode: LockDownMode,
    },
    /// The same for a server's status monitor (NSM).
    #[serde(rename = "nsm.down")]
    NsmDown {
        #[schemars(with = "String")]
        server: Ref,
        #[serde(default)]
        mode: LockDownMode,
    },
    /// The server enters a grace period: only reclaims are granted, new
    /// locks get LCK_DENIED_GRACE_PERIOD. Heal: the grace period ends.
    #[serde(rename = "nlm.grace")]
    NlmGrace {
        #[schemars(with = "String")]
        server: Ref,
    },
    /// A host's daemon is killed (SIGKILL, or our stand-in stopped). Heal:
    /// it is started again.
    #[serde(rename = "proc.kill")]
    ProcKill {
        #[schemars(with = "String")]
        host: Ref,
        daemon: Daemon,
    },
    /// A client host crashes: its links go down, so nothing it sends (its
    /// lockd's UNLOCKs) arrives. Heal: it "reboots": links up, its statd
    /// (`statd: stackquake`) takes a new state and sends SM_NOTIFY to every
    /// server it monitors, which releases the host's locks.
    #[serde(rename = "host.crash")]
    HostCrash {
        #[schemars(with = "String")]
        host: Ref,
    },
}

impl Fault {
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::NfsUnexport { .. } => "nfs.unexport",
            Fault::XfsShutdown { .. } => "xfs.shutdown",
            Fault::NetBlock(_) => "net.block",
            Fault::NetReject(_) => "net.reject",
            Fault::NetMtu(_) => "net.mtu",
            Fault::NetDelay(_) => "net.delay",
            Fault::NetLoss(_) => "net.loss",
            Fault::BlockDetach { .. } => "block.detach",
            Fault::BlockError { .. } => "block.error",
            Fault::BlockDelay { .. } => "block.delay",
            Fault::BlockFlakey { .. } => "block.flakey",
            Fault::NfsDelay { .. } => "nfs.delay",
            Fault::NfsStall { .. } => "nfs.stall",
            Fault::NfsDrop { .. } => "nfs.drop",
            Fault::NfsClose { .. } => "nfs.close",
            Fault::NfsError { .. } => "nfs.error",
            Fault::NfsRestart { .. } => "nfs.restart",
            Fault::NfsExpireLease { .. } => "nfs.expire_lease",
            Fault::NfsSequenceFlags { .. } => "nfs.sequence_flags",
            Fault::NlmDown { .. } => "nlm.down",
            Fault::NsmDown { .. } => "nsm.down",
            Fault::NlmGrace { .. } => "nlm.grace",
            Fault::ProcKill { .. } => "proc.kill",
            Fault::HostCrash { .. } => "host.crash",
        }
    }

    /// The image whose dm volume a `block.*` fault acts on.
    pub fn block_image(&self) -> Option<&Ref> {
        match self {
            Fault::BlockDetach { image }
            | Fault::BlockError { image, .. }
            | Fault::BlockDelay { image, .. }
            | Fault::BlockFlakey { image, .. } => Some(image),
            _ => None,
        }
    }
}
