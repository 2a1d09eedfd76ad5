//! SIGINT/SIGTERM → a flag the engine polls, so an interrupted run still heals
//! its faults and tears its world down instead of dying mid-fault.

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use std::sync::atomic::{AtomicBool, Ordering};

static TERMINATION: AtomicBool = AtomicBool::new(false);

extern "C" fn on_termination(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    TERMINATION.store(true, Ordering::SeqCst);
}

/// Routes SIGINT and SIGTERM to [`termination_requested`]. A second signal
/// is not special: teardown is bounded by its own deadlines.
pub fn install_termination_handler() {
    let action = SigAction::new(
        SigHandler::Handler(on_termination),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe, and replaces no handler the program relies on.
        if let Err(e) = unsafe { sigaction(sig, &action) } {
            tracing::warn!("cannot install {sig} handler: {e}");
        }
    }
}

/// True once SIGINT or SIGTERM arrived.
pub fn termination_requested() -> bool {
    TERMINATION.load(Ordering::SeqCst)
}
