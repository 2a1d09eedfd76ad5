//! Rate-limited warnings for floods: the first event of a kind is logged,
//! the ones after it within the interval are only counted, and the next
//! line says how many were left out. Issue 11 measured 4,171 warnings in
//! 35 s from one flood of idle connections; a log like that buries the one
//! line that says what happened.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most one line per kind of event in this long: long enough that a
/// flood costs a handful of lines a minute, short enough that a summary
/// arrives while someone is still looking.
pub(super) const INTERVAL: Duration = Duration::from_secs(10);

/// Events not logged since the last line of their kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Suppressed {
    pub count: u64,
    /// Since the last line of this kind.
    pub over: Duration,
}

impl fmt::Display for Suppressed {
    /// Empty when nothing was suppressed, so a call site can append it to
    /// its message unconditionally.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.count == 0 {
            return Ok(());
        }
        write!(
            f,
            " ({} more suppressed in the last {}s)",
            self.count,
            self.over.as_secs_f64().round() as u64
        )
    }
}

#[derive(Debug, Default)]
struct State {
    last_line: Option<Instant>,
    suppressed: u64,
}

/// One kind of repeated warning (`what` names it in the summary line).
#[derive(Debug)]
pub(super) struct LogThrottle {
    what: &'static str,
    interval: Duration,
    state: Mutex<State>,
}

impl LogThrottle {
    pub(super) fn new(what: &'static str, interval: Duration) -> LogThrottle {
        LogThrottle {
            what,
            interval,
            state: Mutex::new(State::default()),
        }
    }

    pub(super) fn what(&self) -> &'static str {
        self.what
    }

    /// An event happened at `now`: `Some` (with what was suppressed before
    /// it) if it is to be logged, `None` if it is only counted.
    pub(super) fn admit(&self, now: Instant) -> Option<Suppressed> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let over = match st.last_line {
            Some(t) if now.saturating_duration_since(t) < self.interval => {
                st.suppressed += 1;
                return None;
            }
            Some(t) => now.saturating_duration_since(t),
            None => Duration::ZERO,
        };
        let count = std::mem::take(&mut st.suppressed);
        st.last_line = Some(now);
        Some(Suppressed { count, over })
    }

    /// The summary of events suppressed since the last line, once the
    /// interval has passed: without it, the count of a flood that stopped
    /// would never be reported. Called periodically; counts as a line.
    pub(super) fn flush(&self, now: Instant) -> Option<Suppressed> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let last = st.last_line?;
        let over = now.saturating_duration_since(last);
        if st.suppressed == 0 || over < self.interval {
            return None;
        }
        let count = std::mem::take(&mut st.suppressed);
        st.last_line = Some(now);
        Some(Suppressed { count, over })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn first_event_is_logged_then_counted_until_the_interval_ends() {
        let t = LogThrottle::new("accept failed", 10 * S);
        let t0 = Instant::now();
        assert_eq!(
            t.admit(t0),
            Some(Suppressed {
                count: 0,
                over: Duration::ZERO
            })
        );
        for i in 1..=4170 {
            assert_eq!(t.admit(t0 + Duration::from_millis(i)), None);
        }
        // The first event after the interval carries the count.
        let s = t.admit(t0 + 12 * S).unwrap();
        assert_eq!(
            s,
            Suppressed {
                count: 4170,
                over: 12 * S
            }
        );
        assert_eq!(s.to_string(), " (4170 more suppressed in the last 12s)");
        assert_eq!(t.admit(t0 + 13 * S), None);
    }

    #[test]
    fn nothing_suppressed_appends_nothing() {
        let s = Suppressed {
            count: 0,
            over: 3 * S,
        };
        assert_eq!(s.to_string(), "");
    }

    #[test]
    fn flush_reports_a_flood_that_stopped_once_and_only_after_the_interval() {
        let t = LogThrottle::new("connection refused", 10 * S);
        let t0 = Instant::now();
        assert_eq!(t.flush(t0), None, "nothing happened yet");
        t.admit(t0).unwrap();
        assert_eq!(t.flush(t0 + 20 * S), None, "nothing was suppressed");
        let t1 = t0 + 30 * S;
        t.admit(t1).unwrap();
        t.admit(t1 + S);
        t.admit(t1 + 2 * S);
        assert_eq!(t.flush(t1 + 5 * S), None, "before the interval");
        assert_eq!(
            t.flush(t1 + 11 * S),
            Some(Suppressed {
                count: 2,
                over: 11 * S
            })
        );
        assert_eq!(t.flush(t1 + 30 * S), None, "already reported");
        // The summary counts as a line: the next event waits its interval.
        assert_eq!(t.admit(t1 + 12 * S), None);
    }

    #[test]
    fn a_clock_that_goes_backwards_does_not_panic() {
        let t = LogThrottle::new("x", 10 * S);
        let t0 = Instant::now() + 100 * S;
        t.admit(t0).unwrap();
        assert_eq!(t.admit(t0 - 50 * S), None);
        assert_eq!(t.flush(t0 - 60 * S), None);
    }
}
