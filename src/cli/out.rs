//! A command's lines on stdout. Rust ignores SIGPIPE, so when the reader
//! goes away (`stackquake plan … | head`) a write fails with EPIPE, and
//! `println!` panics on it. Like other Unix tools we stop writing quietly
//! instead; the command still ends with its own exit code.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once stdout failed: nothing more is written.
static CLOSED: AtomicBool = AtomicBool::new(false);

/// `println!` that stops at a closed stdout instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::out::line(format_args!($($arg)*))
    };
}
pub(super) use out;

pub fn line(args: std::fmt::Arguments) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    if let Err(e) = writeln!(std::io::stdout().lock(), "{args}") {
        CLOSED.store(true, Ordering::Relaxed);
        // A reader that left is no error; anything else is worth a log line.
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            tracing::warn!(error = %e, "cannot write to stdout");
        }
    }
}
