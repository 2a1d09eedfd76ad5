//! The window an event matcher looks at, in run time and in kernel log markers.

use crate::journal::Journal;

pub struct Window<'s> {
    during: Option<(&'s str, &'s str)>,
    after: Option<&'s str>,
}

impl<'s> Window<'s> {
    pub fn new(window: &'s crate::plan::Window) -> Window<'s> {
        Window {
            during: window
                .during
                .as_ref()
                .map(|(a, b)| (a.as_str(), b.as_str())),
            after: window.after.as_deref(),
        }
    }

    /// In words, e.g. "during failover..after", "after blackhole".
    pub fn describe(&self) -> String {
        match (self.during, self.after) {
            (Some((a, b)), _) if a == b => format!("during {a}"),
            (Some((a, b)), _) => format!("during {a}..{b}"),
            (None, Some(a)) => format!("after {a}"),
            (None, None) => "during the run".into(),
        }
    }

    /// [start, end) in run time; None if the window's first step never ran.
    /// The end is open while a step never ended.
    pub fn span(&self, journal: &Journal) -> Option<(u64, u64)> {
        match (self.during, self.after) {
            (Some((first, last)), _) => {
                let (start, _) = journal.step_span(first)?;
                let end = journal
                    .step_span(last)
                    .and_then(|(_, e)| e)
                    .unwrap_or(u64::MAX);
                Some((start, end))
            }
            (None, Some(a)) => Some((journal.step_span(a)?.1?, u64::MAX)),
            (None, None) => Some((0, u64::MAX)),
        }
    }

    /// The kernel log lines inside the window.
    pub fn kmsg<'j>(&self, journal: &'j Journal) -> Vec<&'j str> {
        match (self.during, self.after) {
            (Some((first, last)), _) => journal.kmsg_between(Some(first), Some(last)),
            (None, Some(a)) => journal.kmsg_after(a),
            (None, None) => journal.kmsg_between(None, None),
        }
    }
}
