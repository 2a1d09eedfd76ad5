//! Faults as the engine injects them: every name resolved, addresses and
//! NFS call matches already in the types the firewall and the server's
//! fault hook take.

use crate::block::DmTarget;
use crate::net::Match;
use crate::nfs::{FaultAction, FaultRule};
use schemars::JsonSchema;
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Clone)]
pub enum Fault {
    NfsUnexport {
        server: String,
        export: String,
    },
    XfsShutdown {
        image: String,
    },
    /// `net.block` (drop) or `net.reject`: a firewall rule in `host`'s namespace.
    NetCut {
        reject: bool,
        host: String,
        matching: Match,
    },
    NetMtu {
        link: NetLink,
        mtu: u32,
    },
    NetDelay {
        link: NetLink,
        delay: Duration,
        jitter: Option<Duration>,
    },
    /// `net.delay { toward }` on a staging client: what `host` sends that
    /// `matching` matches waits `delay` in the run's expiring table.
    DelayToward {
        host: String,
        matching: Match,
        delay: Duration,
    },
    NetLoss {
        link: NetLink,
        percent: f64,
    },
    /// `block.detach`: every I/O of the image's dm volume fails.
    BlockDetach {
        image: String,
    },
    /// `block.error`, `block.delay`, `block.flakey`: the volume's new table.
    BlockTable {
        image: String,
        target: DmTarget,
    },
    /// `nfs.delay`, `nfs.stall`, `nfs.drop`, `nfs.close`, `nfs.error`: a
    /// rule for the in-process server's fault hook.
    NfsCall {
        server: String,
        rule: FaultRule,
    },
    NfsRestart {
        server: String,
        lose_handles: bool,
    },
    /// `nfs.expire_lease`: the clients that registered from `client`
    /// (every client when None).
    NfsExpireLease {
        server: String,
        client: Option<std::net::IpAddr>,
    },
    /// `nfs.sequence_flags`: RFC 8881 §18.46.3 sr_status_flags bits.
    NfsSequenceFlags {
        server: String,
        flags: u32,
    },
    NlmDown {
        server: String,
        mode: LockDownMode,
    },
    NsmDown {
        server: String,
        mode: LockDownMode,
    },
    NlmGrace {
        server: String,
    },
    ProcKill {
        host: String,
        daemon: Daemon,
    },
    HostCrash {
        host: String,
    },
}

/// One host's end of its link to `peer` (or the VLAN `vlan` on it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetLink {
    pub host: String,
    pub peer: String,
    pub vlan: Option<u16>,
}

impl Fault {
    /// The catalogue name, as scenarios spell it.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::NfsUnexport { .. } => "nfs.unexport",
            Fault::XfsShutdown { .. } => "xfs.shutdown",
            Fault::NetCut { reject: false, .. } => "net.block",
            Fault::NetCut { reject: true, .. } => "net.reject",
            Fault::NetMtu { .. } => "net.mtu",
            Fault::NetDelay { .. } | Fault::DelayToward { .. } => "net.delay",
            Fault::NetLoss { .. } => "net.loss",
            Fault::BlockDetach { .. } => "block.detach",
            Fault::BlockTable { target, .. } => match target {
                DmTarget::Delay { .. } => "block.delay",
                DmTarget::Flakey { .. } => "block.flakey",
                DmTarget::Linear | DmTarget::Error | DmTarget::ErrorRange { .. } => "block.error",
            },
            Fault::NfsCall { rule, .. } => match rule.action {
                FaultAction::Delay(_) => "nfs.delay",
                FaultAction::StallUntilHealed => "nfs.stall",
                FaultAction::DropReply => "nfs.drop",
                FaultAction::CloseConnection => "nfs.close",
                FaultAction::ReplyStatus(_) => "nfs.error",
            },
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

    /// The dm table a `block.*` fault loads.
    pub fn dm_target(&self) -> Option<(&str, DmTarget)> {
        match self {
            Fault::BlockDetach { image } => Some((image, DmTarget::Error)),
            Fault::BlockTable { image, target } => Some((image, target.clone())),
            _ => None,
        }
    }
}

/// How `nlm.down` / `nsm.down` take a lock service down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LockDownMode {
    /// Calls are held unanswered until the heal, then answered.
    #[default]
    Stall,
    /// Gone from the portmapper: GETPORT answers 0.
    Unregister,
}

/// A daemon `proc.kill` can kill on a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Daemon {
    /// The host's status monitor (`hosts.<h>.statd`).
    Statd,
    /// The host's portmapper (rpcbind, or our stand-in with its statd).
    Rpcbind,
}

impl Daemon {
    /// The program (its comm) of the system's daemon of this kind.
    pub fn program(self) -> &'static str {
        match self {
            Daemon::Statd => "rpc.statd",
            Daemon::Rpcbind => "rpcbind",
        }
    }
}
