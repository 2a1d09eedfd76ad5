//! One module per fault kind, each with inject() and heal().
//!
//! Faults own their undo: injecting returns an [`Active`] fault that knows how
//! to heal itself, and the engine heals every one still active at the end of
//! its `for:`, at the end of the run, on failure, on timeout and on signals.

mod nfs;
mod nfs_call;
mod xfs;

use crate::nfs::NfsServer;
use crate::scenario::Fault;
use std::path::Path;

/// What faults may reach in the world; the engine implements it.
pub trait Targets {
    fn nfs_server(&self, name: &str) -> Option<&NfsServer>;
    /// Where an image's filesystem is mounted.
    fn image_mountpoint(&self, image: &str) -> Option<&Path>;
}

/// An injected fault, holding what it needs to heal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Active {
    NfsUnexport {
        server: String,
        export: String,
    },
    /// A rule in an in-process server's FaultHook (`nfs.delay`, `nfs.stall`,
    /// `nfs.drop`, `nfs.close`, `nfs.error`); heal removes it.
    NfsRule {
        kind: &'static str,
        server: String,
        rule: crate::nfs::RuleId,
    },
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
            Active::NfsRule { kind, .. } => kind,
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
    #[error("{fault}: cannot match {what}")]
    BadMatch { fault: &'static str, what: String },
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
        Fault::NfsRestart {
            server,
            lose_handles,
        } => nfs_call::restart(world, &server.value, *lose_handles),
        Fault::NfsDelay { .. }
        | Fault::NfsStall { .. }
        | Fault::NfsDrop { .. }
        | Fault::NfsClose { .. }
        | Fault::NfsError { .. } => nfs_call::add_rule(fault, world),
    }
}

pub fn heal(active: &Active, world: &dyn Targets) -> Result<(), FaultError> {
    match active {
        Active::NfsUnexport { server, export } => nfs::reexport(world, server, export),
        Active::NfsRule { kind, server, rule } => nfs_call::remove_rule(world, kind, server, *rule),
        Active::Permanent { .. } => Ok(()),
    }
}

/// How many calls an active (or healed) fault's rule matched so far: the
/// evidence that a call fault fired. `None` for faults that match no calls
/// (unexport, restart, xfs) or whose server is gone.
pub fn matched(active: &Active, world: &dyn Targets) -> Option<u64> {
    match active {
        Active::NfsRule { server, rule, .. } => nfs_call::matched(world, server, *rule),
        _ => None,
    }
}
