//! One module per fault kind, each with inject() and heal().
//!
//! Faults own their undo: injecting returns an [`Active`] fault that knows how
//! to heal itself, and the engine heals every one still active at the end of
//! its `for:`, at the end of the run, on failure, on timeout and on signals.

mod block;
mod lock;
mod net;
mod nfs;
mod nfs_call;
mod xfs;

use crate::block::DmVolume;
use crate::net::{ExpiringFirewall, Firewall, Netns, Rule, RuleId};
use crate::nfs::NfsServer;
use crate::nfs::knfsd::KnfsdError;
use crate::plan::{Daemon, Fault};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

pub use net::NetGuards;

/// What faults may reach in the world; the engine implements it.
pub trait Targets {
    fn nfs_server(&self, name: &str) -> Option<&NfsServer>;
    /// A `kind: knfsd` server.
    fn knfsd(&self, _name: &str) -> Option<&dyn KernelNfsd> {
        None
    }
    /// Where an image's filesystem is mounted.
    fn image_mountpoint(&self, image: &str) -> Option<&Path>;
    /// The network namespace of a host.
    fn host_netns(&self, _host: &str) -> Option<&Netns> {
        None
    }
    /// The interface of `host`'s end of its link to `peer`: the veth end,
    /// or the interface of VLAN `vlan` on it.
    fn link_iface(&self, _host: &str, _peer: &str, _vlan: Option<u16>) -> Option<String> {
        None
    }
    /// The run's firewall in `host`'s namespace, created on first use.
    fn firewall(&self, host: &str) -> Result<Arc<Mutex<Firewall>>, FaultError> {
        Err(FaultError::UnknownTarget {
            fault: "net.block",
            what: "firewall of host",
            name: host.to_string(),
        })
    }
    /// The staging rehearsal's expiring firewall, when `host` is the
    /// client a rehearsal runs on: its cuts become timed set elements
    /// there instead of rules of [`Targets::firewall`].
    fn expiring_firewall(&self, _host: &str) -> Option<&ExpiringFirewall> {
        None
    }
    /// Where `net.*` faults keep their undo guards.
    fn net_guards(&self) -> Option<MutexGuard<'_, NetGuards>> {
        None
    }
    /// The dm volume under an image's filesystem (`dm: true`), if any.
    fn dm_volume(&self, _image: &str) -> Option<&Mutex<DmVolume>> {
        None
    }
    /// A host's lock daemons (its `statd:` choice), for `proc.kill`.
    fn host_daemons(&self, _host: &str) -> Option<&dyn HostDaemons> {
        None
    }
}

/// What `nfs.unexport` and `nfs.restart` can do to the guest kernel's nfsd
/// (`kind: knfsd`), which has no fault hook for the call faults.
pub trait KernelNfsd {
    /// `exportfs -u` the scenario export `export`, or export it again with
    /// its options.
    fn set_exported(&self, export: &str, exported: bool) -> Result<(), KnfsdError>;
    /// Stop every nfsd thread and start them again (`Knfsd::restart`).
    fn restart(&self) -> Result<(), KnfsdError>;
}

/// The daemons of one host that `proc.kill` can kill and heal restarts.
pub trait HostDaemons {
    /// `lasts`: the fault's `for:`. A daemon that is not the run's own (a
    /// staging client's) must come back by then even if stackquake dies.
    fn kill(&self, daemon: Daemon, lasts: Option<std::time::Duration>) -> Result<(), HostError>;
    fn restart(&self, daemon: Daemon) -> Result<(), HostError>;
    /// `host.crash`: the host falls silent.
    fn crash(&self) -> Result<(), HostError> {
        Err(HostError::Unsupported("this host cannot crash"))
    }
    /// The crashed host comes back and its statd notifies its peers.
    fn reboot(&self) -> Result<(), HostError> {
        Err(HostError::Unsupported("this host cannot reboot"))
    }
}

/// Why a host's daemons could not be killed, restarted, crashed or rebooted.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("{0}")]
    Unsupported(&'static str),
    #[error(transparent)]
    Net(#[from] crate::net::NetError),
    #[error(transparent)]
    Nfs(#[from] crate::nfs::NfsError),
    #[error(transparent)]
    Daemon(#[from] crate::nfs::daemon_ns::DaemonError),
    #[error(transparent)]
    OwnDaemon(#[from] crate::process::own_daemon::OwnDaemonError),
    #[error("listen on port {port}: {source}")]
    Listen { port: u16, source: std::io::Error },
    #[error("enter the host's namespace: {0}")]
    EnterNetns(std::io::Error),
    #[error("SM_NOTIFY to {to}: {source}")]
    Notify {
        to: std::net::IpAddr,
        source: crate::nfs::peer::PeerError,
    },
}

/// An injected fault, holding what it needs to heal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Active {
    NfsUnexport {
        server: String,
        export: String,
    },
    /// A firewall rule of `net.block` / `net.reject` in `host`'s namespace.
    NetRule {
        kind: &'static str,
        host: String,
        rule: RuleId,
    },
    /// A `net.block` / `net.reject` of a staging rehearsal: an element of
    /// `host`'s expiring firewall that the kernel removes after the step's
    /// `for:` if nothing heals it first. `packets_before`: what the rules
    /// of its set had counted when it went in.
    ExpiringCut {
        kind: &'static str,
        host: String,
        rule: Rule,
        packets_before: u64,
    },
    /// A `net.mtu` change; the guard that restores it is in [`NetGuards`].
    NetMtu {
        host: String,
        ifname: String,
        guard: u32,
    },
    /// A netem qdisc of `net.delay` / `net.loss`.
    Netem {
        kind: &'static str,
        host: String,
        ifname: String,
        guard: u32,
    },
    /// A rule in an in-process server's FaultHook (`nfs.delay`, `nfs.stall`,
    /// `nfs.drop`, `nfs.close`, `nfs.error`); heal removes it.
    NfsRule {
        kind: &'static str,
        server: String,
        rule: crate::nfs::RuleId,
    },
    /// `nfs.sequence_flags`: the server's SEQUENCE replies carry flags
    /// until heal clears them; `replies_before` is how many had carried
    /// flags when it went in.
    SequenceFlags {
        server: String,
        replies_before: u64,
    },
    /// `nlm.down` / `nsm.down` / `nlm.grace` / `proc.kill`.
    Lock(lock::LockFault),
    /// A fault with no undo (an XFS shutdown stays until unmount).
    Permanent {
        kind: &'static str,
    },
    /// A `block.*` fault: image's dm volume (kernel name `device`, dm-N)
    /// carries another table; `ios_before` is its I/O count at injection.
    Block {
        kind: &'static str,
        image: String,
        device: String,
        ios_before: u64,
    },
}

impl Active {
    /// The catalogue name of the fault, as scenarios spell it.
    pub fn kind(&self) -> &'static str {
        match self {
            Active::NfsUnexport { .. } => nfs::KIND,
            Active::NetRule { kind, .. }
            | Active::ExpiringCut { kind, .. }
            | Active::Netem { kind, .. } => kind,
            Active::NetMtu { .. } => net::MTU,
            Active::NfsRule { kind, .. } => kind,
            Active::SequenceFlags { .. } => nfs_call::SEQUENCE_FLAGS,
            Active::Lock(l) => l.kind(),
            Active::Permanent { kind } | Active::Block { kind, .. } => kind,
        }
    }

    /// What [`fired`] counts for this fault, in the singular ("packet").
    pub fn unit(&self) -> &'static str {
        match self {
            Active::NetRule { .. }
            | Active::ExpiringCut { .. }
            | Active::Netem { .. }
            | Active::NetMtu { .. } => "packet",
            // Bios the dm volume completed or held while its table was
            // swapped: a workload's many failed writes may be a few of these
            // (the page cache merges them), so say which layer counts.
            Active::Block { .. } => "I/O at the dm device",
            Active::NfsRule { .. } => "call",
            Active::SequenceFlags { .. } => "answer carrying the flags",
            _ => "operation",
        }
    }
}

/// The kinds that become [`Active::Permanent`]: nothing undoes them (an
/// XFS shutdown stays until unmount, a restart happened). The engine still
/// records the end of their step as `fault_healed`; what people read must
/// not say they were healed.
pub const WITHOUT_HEAL: [&str; 3] = [nfs_call::RESTART, nfs_call::EXPIRE_LEASE, xfs::KIND];

#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    #[error("{fault}: no {what} named `{name}` in this world")]
    UnknownTarget {
        fault: &'static str,
        what: &'static str,
        name: String,
    },
    #[error("{fault}: {source}")]
    Nfs {
        fault: &'static str,
        source: crate::nfs::NfsError,
    },
    #[error("{fault}: {source}")]
    Net {
        fault: &'static str,
        source: crate::net::NetError,
    },
    #[error("{fault}: {source}")]
    Knfsd {
        fault: &'static str,
        source: KnfsdError,
    },
    /// A staging cut without a time to live: its element would never
    /// expire (validation requires `for:`, so this is a caller's bug).
    #[error("{fault}: a cut on a staging client needs a duration (`for:`)")]
    Unbounded { fault: &'static str },
    #[error("{fault}: {detail}")]
    Lock { fault: &'static str, detail: String },
    #[error("{fault}: {source}")]
    Host {
        fault: &'static str,
        source: HostError,
    },
    #[error("{fault}: {source}")]
    Block {
        fault: &'static str,
        source: crate::block::BlockError,
    },
}

/// The in-process server `name`, or the error naming `fault` and the name.
fn server<'w>(
    world: &'w dyn Targets,
    fault: &'static str,
    name: &str,
) -> Result<&'w NfsServer, FaultError> {
    world
        .nfs_server(name)
        .ok_or_else(|| FaultError::UnknownTarget {
            fault,
            what: "nfs server",
            name: name.to_string(),
        })
}

pub fn inject(fault: &Fault, world: &dyn Targets) -> Result<Active, FaultError> {
    inject_for(fault, None, world)
}

/// Injects `fault` for the step's `for:` (`lasts`), which a staging cut
/// hands to the kernel as its element's timeout.
pub fn inject_for(
    fault: &Fault,
    lasts: Option<std::time::Duration>,
    world: &dyn Targets,
) -> Result<Active, FaultError> {
    match fault {
        Fault::NfsUnexport { server, export } => nfs::unexport(world, server, export),
        Fault::XfsShutdown { image } => xfs::shutdown(world, image),
        Fault::NetCut {
            reject,
            host,
            matching,
        } => net::cut(world, host, matching, *reject, lasts),
        Fault::NetMtu { link, mtu } => net::mtu(world, link, *mtu),
        Fault::NetDelay {
            link,
            delay,
            jitter,
        } => net::delay(world, link, *delay, *jitter),
        Fault::NetLoss { link, percent } => net::loss(world, link, *percent),
        Fault::DelayToward {
            host,
            matching,
            delay,
        } => net::delay_toward(world, host, matching, *delay, lasts),
        Fault::BlockDetach { .. } | Fault::BlockTable { .. } => block::inject(world, fault),
        Fault::NfsRestart {
            server,
            lose_handles,
        } => nfs_call::restart(world, server, *lose_handles),
        Fault::NfsCall { server, rule } => nfs_call::add_rule(world, fault.kind(), server, rule),
        Fault::NfsExpireLease { server, client } => nfs_call::expire_lease(world, server, *client),
        Fault::NfsSequenceFlags { server, flags } => {
            nfs_call::sequence_flags(world, server, *flags)
        }
        Fault::NlmDown { .. }
        | Fault::NsmDown { .. }
        | Fault::NlmGrace { .. }
        | Fault::ProcKill { .. }
        | Fault::HostCrash { .. } => lock::inject(fault, lasts, world).map(Active::Lock),
    }
}

pub fn heal(active: &Active, world: &dyn Targets) -> Result<(), FaultError> {
    match active {
        Active::NfsUnexport { server, export } => nfs::reexport(world, server, export),
        Active::NfsRule { kind, server, rule } => nfs_call::remove_rule(world, kind, server, *rule),
        Active::SequenceFlags { server, .. } => {
            nfs_call::sequence_flags(world, server, 0).map(|_| ())
        }
        Active::Lock(l) => lock::heal(l, world),
        Active::Permanent { .. } => Ok(()),
        Active::NetRule { .. }
        | Active::ExpiringCut { .. }
        | Active::NetMtu { .. }
        | Active::Netem { .. } => net::heal(active, world),
        Active::Block {
            kind,
            image,
            device,
            ios_before,
        } => block::heal(world, kind, image, device, *ios_before),
    }
}

/// Whether an active fault acted on anything: how many packets or I/Os it
/// matched so far, read before [`heal`] removes it. None: this kind cannot
/// tell. Zero makes the scenario ERROR — a fault that never fired tested
/// nothing.
pub fn fired(active: &Active, world: &dyn Targets) -> Option<Result<u64, FaultError>> {
    match active {
        Active::NetRule { .. }
        | Active::ExpiringCut { .. }
        | Active::Netem { .. }
        | Active::NetMtu { .. } => net::fired(active, world),
        Active::Block {
            device, ios_before, ..
        } => block::fired(device, *ios_before).map(Ok),
        // The hook's count survives the rule's removal, so this also works
        // after heal.
        Active::NfsRule { server, rule, .. } => nfs_call::acted(world, server, *rule).map(Ok),
        Active::SequenceFlags {
            server,
            replies_before,
        } => nfs_call::flagged_since(world, server, *replies_before).map(Ok),
        Active::NfsUnexport { .. } | Active::Permanent { .. } | Active::Lock(_) => None,
    }
}
