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
    /// An NFS mount a `mount_fails` expectation names was refused at
    /// setup, as expected; the run went on without it.
    MountRefused {
        mount: String,
        errno: i32,
        /// The whole refusal: source, mount point, options, errno.
        error: String,
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
        /// How many packets (or I/Os) the fault acted on, read just before
        /// it was healed; absent when its kind cannot tell. Zero makes the
        /// scenario ERROR: the fault never fired.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        matched: Option<u64>,
        /// What `matched` counts, e.g. `packet`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unit: Option<String>,
        /// Why the count could not be read although the kind keeps one
        /// (e.g. the counter's table is gone): as bad as a zero.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uncounted: Option<String>,
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
        /// exec ops: the command's exit code (non-zero is a failed op).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        /// mount_storm ops: each mount(2), when it returned and how.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        mounts: Vec<MountCall>,
        /// flock ops that got their lock: when it is known to have been held.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hold: Option<Hold>,
    },
    /// An `exec` step's command ended: its exit code, or the signal that killed it.
    Exec {
        step: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<i32>,
        /// The first KiB of its stdout and stderr.
        output: String,
        t_ns: u64,
    },
    /// An `exec` step's command printed its `ready` line.
    Ready {
        step: String,
        t_ns: u64,
    },
    /// A step ran past its `timeout`; the timeline stopped there.
    StepTimedOut {
        step: String,
        limit_ns: u64,
        t_ns: u64,
    },
    /// An abort probe failed; every fault was healed at once and the
    /// timeline stopped.
    ProbeFailed {
        probe: String,
        reason: String,
        t_ns: u64,
    },
    /// A `pause` step was confirmed: `by` the terminal, SIGUSR1 or its file.
    Continued {
        step: String,
        by: String,
        t_ns: u64,
    },
    /// The timeline stopped early (scenario timeout, signal, a failed injection).
    Aborted {
        reason: String,
        t_ns: u64,
    },
    /// A `data` check read a workload's file back when the timeline ended.
    Verified {
        workload: String,
        /// Acknowledged records the file must hold.
        acknowledged: u64,
        /// Of those, the ones found intact.
        intact: u64,
        /// The first few acknowledged records that are missing or damaged.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        missing: Vec<u64>,
        /// Records in the file that fail their checksum.
        corrupt: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
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
        /// mount_storm ops: each mount(2); those without an end were still
        /// in the kernel when the op was sampled.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        mounts: Vec<MountCall>,
    },
    /// A kernel log record; stackquake's own step markers are among them.
    Kmsg {
        seq: u64,
        level: u8,
        text: String,
        /// When the kernel logged it, by its own timestamp bridged to the
        /// run's clock; absent in journals from before it was recorded, and
        /// for lines logged before the run's first bridge line.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        t_ns: Option<u64>,
    },
    /// A state probe taken when a step ended (filesystem state, mount presence).
    Observed {
        step: String,
        subject: String,
        value: String,
        t_ns: u64,
    },
    /// The calls an in-process NFS server received while a step ran, by
    /// procedure (`nfsv3 WRITE`); empty when it received none.
    RpcCalls {
        step: String,
        server: String,
        calls: std::collections::BTreeMap<String, u64>,
        t_ns: u64,
    },
    /// Something teardown did or failed to do.
    Teardown {
        what: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

/// What a lock op's own record proves about its lock, in run time: held
/// from `acquired_ns` (the lock call had returned) until `released_ns` (the
/// unlock call was about to begin). The kernel granted it somewhat before
/// the first and let it go somewhat after the second, so this is the part
/// of the true hold that is certain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub acquired_ns: u64,
    pub released_ns: u64,
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
        self.kmsg_slice(begin.as_deref(), end.as_deref())
    }

    /// Kernel log lines after the end marker of `step`, to the end of the run.
    pub fn kmsg_after(&self, step: &str) -> Vec<&str> {
        self.kmsg_slice(Some(&Self::marker(&self.run_id, step, "end")), None)
    }

    /// Kernel log lines strictly between two exact lines (`None`: the run's edge).
    fn kmsg_slice(&self, begin: Option<&str>, end: Option<&str>) -> Vec<&str> {
        let mut inside = begin.is_none();
        let mut lines = Vec::new();
        for e in &self.events {
            let Event::Kmsg { text, .. } = e else {
                continue;
            };
            if !inside {
                inside = begin == Some(text.as_str());
                continue;
            }
            if end == Some(text.as_str()) {
                break;
            }
            lines.push(text.as_str());
        }
        lines
    }

    /// The latest time any event carries: the end of the run as recorded.
    pub fn last_t(&self) -> u64 {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::StepBegin { t_ns, .. }
                | Event::StepEnd { t_ns, .. }
                | Event::FaultInjected { t_ns, .. }
                | Event::FaultHealed { t_ns, .. }
                | Event::Indeterminate { t_ns, .. }
                | Event::Observed { t_ns, .. }
                | Event::Exec { t_ns, .. }
                | Event::Ready { t_ns, .. }
                | Event::StepTimedOut { t_ns, .. }
                | Event::ProbeFailed { t_ns, .. }
                | Event::Continued { t_ns, .. }
                | Event::Aborted { t_ns, .. } => Some(*t_ns),
                Event::Op { end_ns, .. } => Some(*end_ns),
                Event::Kmsg { t_ns, .. } => *t_ns,
                _ => None,
            })
            .max()
            .unwrap_or(0)
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

    /// Each op that ran past its deadline within run times `span`, as a
    /// header line (workload, op, when, state, wchan) and its kernel stack:
    /// the text JUnit output and the per-step artifacts both show.
    pub fn hung_ops(&self, span: std::ops::RangeInclusive<u64>) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Indeterminate {
                    workload,
                    seq,
                    t_ns,
                    state,
                    wchan,
                    stack,
                    mounts,
                    ..
                } if span.contains(t_ns) => Some(format!(
                    "{workload} op {seq} at +{:.2}s: state {state} in {wchan}{}\n{}",
                    *t_ns as f64 / 1e9,
                    mount_summary(mounts)
                        .map(|s| format!("; {s}"))
                        .unwrap_or_default(),
                    stack.as_deref().unwrap_or("(no stack)").trim_end()
                )),
                _ => None,
            })
            .collect()
    }
}

/// The stage in which the workloads run against the timeline's deadlines,
/// and the one that ends it. A guest's host gives the guest its full share
/// of the CPU between the two (`vm` priority), and less before and after.
pub const TIMELINE_STAGE: &str = "timeline";
pub const TEARDOWN_STAGE: &str = "teardown";

/// Watches a run as it happens (the CLI attaches its progress lines). The
/// engine calls it each time it looks at the world; it neither knows nor
/// cares who watches or where the lines go.
pub trait Observer {
    /// Every event so far (the observer remembers how far it got).
    fn catch_up(&mut self, events: &[Event]);
    /// Nothing new; the run is at `t_ns` and waiting.
    fn waiting(&mut self, t_ns: u64);
    /// The timeline is over: leave the output clean for the verdict.
    fn finished(&mut self);
    /// The run moves on to `what` ("setup", "timeline", "verifying data",
    /// "teardown"…); `journal` is everything so far.
    fn stage(&mut self, journal: &Journal, _what: &str) {
        self.catch_up(&journal.events);
    }
}

/// Several observers watching one run, each told everything in turn.
impl Observer for Vec<Box<dyn Observer>> {
    fn catch_up(&mut self, events: &[Event]) {
        self.iter_mut().for_each(|o| o.catch_up(events));
    }

    fn waiting(&mut self, t_ns: u64) {
        self.iter_mut().for_each(|o| o.waiting(t_ns));
    }

    fn finished(&mut self) {
        self.iter_mut().for_each(|o| o.finished());
    }

    fn stage(&mut self, journal: &Journal, what: &str) {
        self.iter_mut().for_each(|o| o.stage(journal, what));
    }
}

/// One mount(2) of a `mount_storm` op.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountCall {
    /// Which of the op's `parallel` mounts (its mount point is `storm-<index>`).
    pub index: u32,
    /// When it returned (run time); None: still in mount(2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_ns: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno: Option<i32>,
}

/// "3 of 8 mounts returned (+0.21s..+0.25s), 1 failed (EACCES); 5 still in
/// mount(2)": a storm's mounts in one line, None for other ops.
pub fn mount_summary(mounts: &[MountCall]) -> Option<String> {
    if mounts.is_empty() {
        return None;
    }
    let ends: Vec<u64> = mounts.iter().filter_map(|m| m.end_ns).collect();
    let mut text = format!("{} of {} mounts returned", ends.len(), mounts.len());
    if let (Some(first), Some(last)) = (ends.iter().min(), ends.iter().max()) {
        text += &format!(
            " (+{:.2}s..+{:.2}s)",
            *first as f64 / 1e9,
            *last as f64 / 1e9
        );
    }
    let failed: Vec<String> = mounts
        .iter()
        .filter_map(|m| {
            m.errno
                .map(|e| format!("#{} {}", m.index, crate::errno::name(e)))
        })
        .collect();
    if !failed.is_empty() {
        text += &format!(", {} failed ({})", failed.len(), failed.join(", "));
    }
    let pending: Vec<String> = mounts
        .iter()
        .filter(|m| m.end_ns.is_none())
        .map(|m| format!("#{}", m.index))
        .collect();
    if !pending.is_empty() {
        text += &format!("; still in mount(2): {}", pending.join(" "));
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_storms_mounts_read_as_one_line() {
        let call = |index, end_ns, errno| MountCall {
            index,
            end_ns,
            errno,
        };
        assert_eq!(mount_summary(&[]), None);
        let mounts = [
            call(0, Some(210_000_000), None),
            call(1, None, None),
            call(2, Some(250_000_000), Some(libc::EACCES)),
            call(3, None, None),
        ];
        assert_eq!(
            mount_summary(&mounts).unwrap(),
            "2 of 4 mounts returned (+0.21s..+0.25s), 1 failed (#2 EACCES); \
             still in mount(2): #1 #3"
        );
    }

    fn kmsg(text: &str) -> Event {
        Event::Kmsg {
            seq: 0,
            level: 6,
            text: text.into(),
            t_ns: None,
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
        assert_eq!(
            j.kmsg_after("a"),
            vec![
                "stackquake[r1]: step b begin",
                "in b",
                "stackquake[r1]: step b end",
                "after"
            ]
        );
    }
}
