//! One module per fault kind, each with inject() and heal().
//!
//! Faults own their undo: injecting returns an [`Active`] fault that knows how
//! to heal itself, and the engine heals every one still active at the end of
//! its `for:`, at the end of the run, on failure, on timeout and on signals.

mod block;
mod nfs;
mod xfs;

pub use block::{io_count, target_for};

use crate::block::DmVolume;
use crate::nfs::NfsServer;
use crate::scenario::Fault;
use std::path::Path;
use std::sync::Mutex;

/// What faults may reach in the world; the engine implements it.
pub trait Targets {
    fn nfs_server(&self, name: &str) -> Option<&NfsServer>;
    /// Where an image's filesystem is mounted.
    fn image_mountpoint(&self, image: &str) -> Option<&Path>;
    /// The dm volume under an image's filesystem (`dm: true`), if any.
    fn dm_volume(&self, _image: &str) -> Option<&Mutex<DmVolume>> {
        None
    }
}

/// An injected fault, holding what it needs to heal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Active {
    NfsUnexport {
        server: String,
        export: String,
    },
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
            Active::Permanent { kind } | Active::Block { kind, .. } => kind,
        }
    }

    /// How many times the fault acted since it was injected (for block
    /// faults: I/Os that reached the dm volume), or None when this kind
    /// cannot tell. A fault that never fired proves nothing: the engine
    /// should make such a run ERROR (issue 6).
    pub fn fired(&self) -> Option<u64> {
        match self {
            Active::Block {
                device, ios_before, ..
            } => block::fired(device, *ios_before),
            Active::NfsUnexport { .. } | Active::Permanent { .. } => None,
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
        Fault::BlockDetach { .. }
        | Fault::BlockError { .. }
        | Fault::BlockDelay { .. }
        | Fault::BlockFlakey { .. } => block::inject(world, fault),
    }
}

pub fn heal(active: &Active, world: &dyn Targets) -> Result<(), FaultError> {
    match active {
        Active::NfsUnexport { server, export } => nfs::reexport(world, server, export),
        Active::Permanent { .. } => Ok(()),
        Active::Block {
            kind,
            image,
            device,
            ios_before,
        } => block::heal(world, kind, image, device, *ios_before),
    }
}
