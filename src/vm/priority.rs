//! A guest's share of the host's CPU by what its run is doing.
//!
//! `run --jobs` puts six TCG guests on two cores, and a guest's clock runs
//! with the host's: a guest starved of CPU sees its ops take longer. One
//! whose timeline runs has deadlines to meet (an op's 3 s, a wait that must
//! not stretch); one that boots, builds its world or tears it down has
//! none. So a guest's QEMU runs at our own nice value from the timeline to
//! the teardown, and [`BACKGROUND`] above it otherwise: when they contend,
//! the scheduler weighs a timed guest nine times a background one, and
//! either has the whole machine when they do not.

use super::job::STAGE_PREFIX;
use crate::journal::{TEARDOWN_STAGE, TIMELINE_STAGE};

/// How much nicer a guest is outside its timeline: nice 10 weighs 110
/// against nice 0's 1024 (sched_prio_to_weight).
const BACKGROUND: i32 = 10;

/// The nice value one guest's QEMU should have, from its console.
pub(super) struct GuestPriority {
    /// Ours: a user who runs `nice stackquake` keeps the difference.
    base: i32,
    timed: bool,
}

impl GuestPriority {
    /// A guest about to boot: in the background.
    pub(super) fn booting() -> Self {
        let base = crate::sys::nice::own().unwrap_or(0);
        GuestPriority { base, timed: false }
    }

    pub(super) fn nice(&self) -> i32 {
        if self.timed {
            self.base
        } else {
            (self.base + BACKGROUND).min(19)
        }
    }

    /// Follows a console line; returns the new nice value if it changed.
    pub(super) fn follow(&mut self, console_line: &str) -> Option<i32> {
        let (_, stage) = console_line.split_once(STAGE_PREFIX)?;
        let timed = match stage.trim_end() {
            TIMELINE_STAGE => true,
            TEARDOWN_STAGE => false,
            _ => return None,
        };
        (timed != self.timed).then(|| {
            self.timed = timed;
            self.nice()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guest_is_timed_from_its_timeline_to_its_teardown() {
        let mut p = GuestPriority {
            base: 0,
            timed: false,
        };
        assert_eq!(p.nice(), 10);
        let line = |stage: &str| format!("[ 3.1] {STAGE_PREFIX}{stage}\r\n");
        assert_eq!(p.follow(&line("setup")), None);
        assert_eq!(p.follow("stackquake-progress: timeline"), None);
        assert_eq!(p.follow(&line("timeline")), Some(0));
        assert_eq!(p.follow(&line("healing faults")), None);
        assert_eq!(p.follow(&line("timeline")), None, "no change");
        assert_eq!(p.follow(&line("teardown")), Some(10));
        assert_eq!(p.follow(&line("evaluating")), None);
        // Already as nice as can be: the background cannot go lower.
        let p = GuestPriority {
            base: 15,
            timed: false,
        };
        assert_eq!(p.nice(), 19);
    }
}
