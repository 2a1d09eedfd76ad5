//! The only place with unsafe: ioctls, setns/unshare and other raw syscalls.

mod signal;

pub use signal::{install_termination_handler, termination_requested};
