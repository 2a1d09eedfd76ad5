//! The window an event matcher looks at, in run time and in kernel log markers.

use crate::journal::Journal;
use crate::scenario::{During, Ref};

pub struct Window<'s> {
    during: Option<(&'s str, &'s str)>,
    after: Option<&'s str>,
}

impl<'s> Window<'s> {
    pub fn new(during: &'s During, after: Option<&'s Ref>) -> Window<'s> {
        Window {
            during: during
                .as_deref()
                .and_then(|d| Some((d.first()?.value.as_str(), d.last()?.value.as_str()))),
            after: after.map(|a| a.value.as_str()),
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
