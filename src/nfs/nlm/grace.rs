//! The grace period: after a restart, only reclaims of locks held before it
//! are granted (XNFS "grace period"; knfsd: 90 s). Explicit and settable,
//! because a silent 90 s of LCK_DENIED_GRACE_PERIOD looks like a hang.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub struct Grace {
    until: Mutex<Option<Instant>>,
}

impl Grace {
    pub fn new() -> Grace {
        Grace::default()
    }

    /// Starts (or restarts) a grace period of `d` from now; zero ends it.
    pub fn start(&self, d: Duration) {
        let mut u = self.until.lock().unwrap_or_else(|e| e.into_inner());
        *u = (!d.is_zero()).then(|| Instant::now() + d);
        if !d.is_zero() {
            tracing::info!(grace = ?d, "nlm grace period begins");
        }
    }

    pub fn end(&self) {
        self.start(Duration::ZERO);
    }

    /// What is left of the grace period, if one is running.
    pub fn remaining(&self) -> Option<Duration> {
        let u = *self.until.lock().unwrap_or_else(|e| e.into_inner());
        u.and_then(|t| t.checked_duration_since(Instant::now()))
            .filter(|d| !d.is_zero())
    }

    pub fn active(&self) -> bool {
        self.remaining().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_runs_out_and_can_be_ended() {
        let g = Grace::new();
        assert!(!g.active());
        g.start(Duration::from_millis(80));
        assert!(g.active());
        std::thread::sleep(Duration::from_millis(120));
        assert!(!g.active());
        g.start(Duration::from_secs(60));
        assert!(g.remaining().unwrap() > Duration::from_secs(59));
        g.end();
        assert!(!g.active());
    }
}
