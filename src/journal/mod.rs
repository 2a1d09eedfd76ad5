//! The events of one run, in order: what the engine did and what it saw.
//!
//! The engine appends; matchers and reports only read. Times are nanoseconds
//! since the run's timeline began, on CLOCK_MONOTONIC.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A world object was created during setup.
    Setup {
        what: String,
        t_ns: u64,
    },
    StepBegin {
        step: String,
        t_ns: u64,
    },
    StepEnd {
        step: String,
        t_ns: u64,
    },
    FaultInjected {
        step: String,
        fault: String,
        t_ns: u64,
    },
    FaultHealed {
        step: String,
        fault: String,
        t_ns: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A workload op that finished, successfully or not.
    Op {
        workload: String,
        seq: u64,
        start_ns: u64,
        end_ns: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        errno: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stage: Option<String>,
    },
    /// A workload op still running past its deadline, and what its task was doing.
    Indeterminate {
        workload: String,
        seq: u64,
        start_ns: u64,
        t_ns: u64,
        state: String,
        wchan: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stack: Option<String>,
    },
    /// A kernel log record; stackquake's own step markers are among them.
    Kmsg {
        seq: u64,
        level: u8,
        text: String,
    },
    /// A state probe taken when a step ended (filesystem state, mount presence).
    Observed {
        step: String,
        subject: String,
        value: String,
        t_ns: u64,
    },
    /// Something teardown did or failed to do.
    Teardown {
        what: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

/// The events of one run plus the markers that delimit its steps in the kernel log.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Journal {
    pub run_id: String,
    pub events: Vec<Event>,
}

impl Journal {
    pub fn push(&mut self, event: Event) {
        self.events.push(event);
    }

    /// The kmsg text stackquake writes when `step` begins or ends.
    pub fn marker(run_id: &str, step: &str, edge: &str) -> String {
        format!("stackquake[{run_id}]: step {step} {edge}")
    }

    /// Kernel log lines between the begin marker of `first` and the end marker
    /// of `last` (to the end of the log if that marker was never seen).
    /// `None` bounds mean the start/end of the run.
    pub fn kmsg_between(&self, first: Option<&str>, last: Option<&str>) -> Vec<&str> {
        let begin = first.map(|s| Self::marker(&self.run_id, s, "begin"));
        let end = last.map(|s| Self::marker(&self.run_id, s, "end"));
        let mut inside = begin.is_none();
        let mut lines = Vec::new();
        for e in &self.events {
            let Event::Kmsg { text, .. } = e else {
                continue;
            };
            if !inside {
                inside = begin.as_deref() == Some(text.as_str());
                continue;
            }
            if end.as_deref() == Some(text.as_str()) {
                break;
            }
            lines.push(text.as_str());
        }
        lines
    }

    /// When `step` began and ended (end is None while it runs or if it never ended).
    pub fn step_span(&self, step: &str) -> Option<(u64, Option<u64>)> {
        let begin = self.events.iter().find_map(|e| match e {
            Event::StepBegin { step: s, t_ns } if s == step => Some(*t_ns),
            _ => None,
        })?;
        let end = self.events.iter().find_map(|e| match e {
            Event::StepEnd { step: s, t_ns } if s == step => Some(*t_ns),
            _ => None,
        });
        Some((begin, end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kmsg(text: &str) -> Event {
        Event::Kmsg {
            seq: 0,
            level: 6,
            text: text.into(),
        }
    }

    #[test]
    fn kmsg_window_is_bounded_by_step_markers() {
        let mut j = Journal {
            run_id: "r1".into(),
            ..Default::default()
        };
        for t in [
            "before",
            "stackquake[r1]: step a begin",
            "in a",
            "stackquake[r1]: step a end",
            "stackquake[r1]: step b begin",
            "in b",
            "stackquake[r1]: step b end",
            "after",
        ] {
            j.push(kmsg(t));
        }
        assert_eq!(j.kmsg_between(Some("a"), Some("a")), vec!["in a"]);
        assert_eq!(
            j.kmsg_between(Some("a"), Some("b")),
            vec![
                "in a",
                "stackquake[r1]: step a end",
                "stackquake[r1]: step b begin",
                "in b"
            ]
        );
        assert_eq!(j.kmsg_between(Some("b"), None).last(), Some(&"after"));
        assert_eq!(j.kmsg_between(None, Some("a")).first(), Some(&"before"));
        assert!(j.kmsg_between(Some("zzz"), None).is_empty());
    }
}
