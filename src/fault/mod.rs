//! One module per fault kind, each with inject() and heal().
//!
//! Faults own their undo: injecting returns an [`Active`] fault that knows how
//! to heal itself, and the engine heals every one still active at the end of
//! its `for:`, at the end of the run, on failure, on timeout and on signals.

mod lock;
mod nfs;
mod xfs;

use crate::nfs::NfsServer;
use crate::scenario::Fault;
use std::path::Path;

/// What faults may reach in the world; the engine implements it.
pub trait Targets {
    fn nfs_server(&self, name: &str) -> Option<&NfsServer>;
    /// Where an image's filesystem is mounted.
    fn image_mountpoint(&self, image: &str) -> Option<&Path>;
    /// A host's lock daemons (its `statd:` choice), for `proc.kill`.
    fn host_daemons(&self, _host: &str) -> Option<&dyn HostDaemons> {
        None
    }
}

/// The daemons of one host that `proc.kill` can kill and heal restarts.
pub trait HostDaemons {
    fn kill(&self, daemon: crate::scenario::Daemon) -> Result<(), String>;
    fn restart(&self, daemon: crate::scenario::Daemon) -> Result<(), String>;
    /// `host.crash`: the host falls silent.
    fn crash(&self) -> Result<(), String> {
        Err("this host cannot crash".into())
    }
    /// The crashed host comes back and its statd notifies its peers.
    fn reboot(&self) -> Result<(), String> {
        Err("this host cannot reboot".into())
    }
}

/// An injected fault, holding what it needs to heal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Active {
    NfsUnexport {
        server: String,
        export: String,
    },
    /// `nlm.down` / `nsm.down` / `nlm.grace` / `proc.kill`.
    Lock(lock::LockFault),
    /// A fault with no undo (an XFS shutdown stays until unmount).
    Permanent {
        kind: &'static str,
    },
}

impl Active {
    /// The catalogue name of the fault, as scenarios spell it.
    pub fn kind(&self) -> &'static str {
        match self {
            Active::NfsUnexport { .. } => nfs::KIND,
            Active::Lock(l) => l.kind(),
            Active::Permanent { kind } => kind,
        }
    }
}

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
    #[error("{fault}: {detail}")]
    Lock { fault: &'static str, detail: String },
    #[error("{fault}: {source}")]
    Block {
        fault: &'static str,
        source: crate::block::BlockError,
    },
}

pub fn inject(fault: &Fault, world: &dyn Targets) -> Result<Active, FaultError> {
    match fault {
        Fault::NfsUnexport { server, export } => nfs::unexport(world, &server.value, &export.value),
        Fault::XfsShutdown { fs } => xfs::shutdown(world, &fs.value),
        Fault::NlmDown { .. }
        | Fault::NsmDown { .. }
        | Fault::NlmGrace { .. }
        | Fault::ProcKill { .. }
        | Fault::HostCrash { .. } => lock::inject(fault, world).map(Active::Lock),
    }
}

pub fn heal(active: &Active, world: &dyn Targets) -> Result<(), FaultError> {
    match active {
        Active::NfsUnexport { server, export } => nfs::reexport(world, server, export),
        Active::Lock(l) => lock::heal(l, world),
        Active::Permanent { .. } => Ok(()),
    }
}
