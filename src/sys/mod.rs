//! The only place with unsafe: ioctls, setns/unshare and other raw syscalls.
//!
//! Everything here is a thin, typed wrapper over one kernel interface; the
//! owned world objects (`block::LoopDevice`, `net::Netns`, …) and the ledger's
//! cleanup build on these primitives so that both paths tear down the same way.

pub mod fhandle;
pub mod fscreds;
pub mod loopdev;
pub mod mountinfo;
pub mod nice;
pub mod ns;
pub mod pdeathsig;
pub mod procstat;
mod signal;
pub mod umount;
pub mod xfs;

pub use signal::{install_signal_handlers, take_continue, termination_requested};
