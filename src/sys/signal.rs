//! Signals the engine polls as flags: SIGINT/SIGTERM, so an interrupted run
//! still heals its faults and tears its world down instead of dying
//! mid-fault; SIGUSR1, the operator's go at a `pause` step.

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use std::sync::atomic::{AtomicBool, Ordering};

static TERMINATION: AtomicBool = AtomicBool::new(false);
static CONTINUE: AtomicBool = AtomicBool::new(false);

extern "C" fn on_termination(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    TERMINATION.store(true, Ordering::SeqCst);
}

extern "C" fn on_continue(_: libc::c_int) {
    CONTINUE.store(true, Ordering::SeqCst);
}

/// Routes SIGINT and SIGTERM to [`termination_requested`], and SIGUSR1
/// (whose default would kill the run) to [`take_continue`]. A second
/// termination signal is not special: teardown is bounded by its own
/// deadlines.
pub fn install_signal_handlers() {
    let handlers: [(Signal, extern "C" fn(libc::c_int)); 3] = [
        (Signal::SIGINT, on_termination),
        (Signal::SIGTERM, on_termination),
        (Signal::SIGUSR1, on_continue),
    ];
    for (sig, handler) in handlers {
        let action = SigAction::new(
            SigHandler::Handler(handler),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        // SAFETY: each handler only stores to an atomic, which is
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

/// True if SIGUSR1 arrived since the last call.
pub fn take_continue() -> bool {
    CONTINUE.swap(false, Ordering::SeqCst)
}
