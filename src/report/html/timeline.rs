//! What the page draws for one scenario, read out of its journal: step
//! spans, fault windows, one lane per workload, kernel lines with the times
//! they can be placed at.

use super::scale::run_time;
use crate::journal::{Event, Journal};
use regex::Regex;

#[derive(Debug, Clone, PartialEq)]
pub struct StepSpan {
    pub step: String,
    pub begin_ns: u64,
    /// None: the step never ended (timed out, aborted); drawn to the axis end.
    pub end_ns: Option<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FaultWindow {
    pub step: String,
    pub fault: String,
    pub injected_ns: u64,
    /// None: never healed (the run was killed first); drawn to the axis end.
    pub healed_ns: Option<u64>,
    /// Packets or I/Os the fault acted on, with their unit, when it can tell.
    pub matched: Option<(u64, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OpMark {
    pub seq: u64,
    pub start_ns: u64,
    pub latency_ns: u64,
    pub errno: Option<i32>,
    pub stage: Option<String>,
    pub exit_code: Option<i32>,
    /// mount_storm: its mounts in one line (`journal::mount_summary`).
    pub mounts: Option<String>,
}

impl OpMark {
    pub fn failed(&self) -> bool {
        self.errno.is_some() || self.exit_code.is_some_and(|c| c != 0)
    }
}

/// An op that ran past its deadline: from its start to its end (if it ever
/// finished) or the axis end, with what its task was doing when sampled.
#[derive(Debug, Clone, PartialEq)]
pub struct HangBar {
    pub seq: u64,
    pub start_ns: u64,
    pub sampled_ns: u64,
    pub end_ns: Option<u64>,
    pub state: String,
    pub wchan: String,
    /// mount_storm: which of its mounts had returned when it was sampled.
    pub mounts: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Lane {
    pub workload: String,
    pub ops: Vec<OpMark>,
    pub hangs: Vec<HangBar>,
}

/// A kernel log line, at the time the kernel stamped it (the journal has
/// it bridged to the run's clock). A journal from before those stamps were
/// recorded places each line in the window it must lie in: after the last
/// step marker the kernel logged before it (the engine writes a marker as
/// each step begins and ends, at the time its StepBegin/StepEnd carries),
/// and before the first event the engine recorded, clock in hand, after it
/// read the line.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelLine {
    pub seq: u64,
    pub level: u8,
    pub text: String,
    pub earliest_ns: u64,
    pub latest_ns: u64,
    /// The deny-list entry it matches (BUG, Oops, …), if any.
    pub denied: Option<&'static str>,
    /// One of stackquake's own step markers.
    pub marker: bool,
}

impl KernelLine {
    /// When it was logged, for people: one time when the kernel stamped
    /// it, else the span it lies in.
    pub fn when(&self) -> String {
        let (from, to) = (run_time(self.earliest_ns), run_time(self.latest_ns));
        if from == to {
            from
        } else {
            format!("{from}..{to}")
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExecMark {
    pub step: String,
    pub t_ns: u64,
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

/// A moment the run was told something: a pause confirmed by the
/// operator, or an abort probe that failed and stopped the run.
#[derive(Debug, Clone, PartialEq)]
pub struct Moment {
    /// `continued`, `ready` or `probe-failed`: the mark's class and data-kind.
    pub kind: &'static str,
    pub t_ns: u64,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    /// The axis end: the latest time any event carries.
    pub end_ns: u64,
    pub steps: Vec<StepSpan>,
    pub faults: Vec<FaultWindow>,
    pub lanes: Vec<Lane>,
    pub kernel: Vec<KernelLine>,
    pub execs: Vec<ExecMark>,
    pub moments: Vec<Moment>,
    /// What setup built (all at time 0) and what teardown did (after the
    /// axis end): events without a time of their own, listed beside it.
    pub setup: Vec<String>,
    pub teardown: Vec<String>,
}

impl Timeline {
    pub fn of(journal: &Journal) -> Timeline {
        let end_ns = journal.last_t();
        let mut t = Timeline {
            end_ns,
            steps: Vec::new(),
            faults: Vec::new(),
            lanes: Vec::new(),
            kernel: Vec::new(),
            execs: Vec::new(),
            moments: Vec::new(),
            setup: Vec::new(),
            teardown: Vec::new(),
        };
        let deny: Vec<(&'static str, Regex)> = crate::expect::DENY_LIST
            .iter()
            .map(|(name, p)| (*name, Regex::new(p).expect("deny-list patterns are valid")))
            .collect();
        let mut earliest = 0;
        // Kernel lines read since the engine last recorded a time.
        let mut unbounded: Vec<usize> = Vec::new();
        for e in &journal.events {
            if let Some(now) = engine_clock(e) {
                for i in unbounded.drain(..) {
                    t.kernel[i].latest_ns = now.max(t.kernel[i].earliest_ns);
                }
            }
            match e {
                Event::Setup { what, .. } => t.setup.push(what.clone()),
                Event::Teardown { what, error } => t.teardown.push(match error {
                    Some(err) => format!("{what}: {err}"),
                    None => what.clone(),
                }),
                Event::StepBegin { step, t_ns } => t.steps.push(StepSpan {
                    step: step.clone(),
                    begin_ns: *t_ns,
                    end_ns: None,
                }),
                Event::StepEnd { step, t_ns } => {
                    if let Some(s) = t.steps.iter_mut().rev().find(|s| &s.step == step) {
                        s.end_ns = Some(*t_ns);
                    }
                }
                Event::FaultInjected { step, fault, t_ns } => t.faults.push(FaultWindow {
                    step: step.clone(),
                    fault: fault.clone(),
                    injected_ns: *t_ns,
                    healed_ns: None,
                    matched: None,
                }),
                Event::FaultHealed {
                    step,
                    fault,
                    t_ns,
                    matched,
                    unit,
                    ..
                } => {
                    if let Some(f) = t
                        .faults
                        .iter_mut()
                        .find(|f| &f.step == step && &f.fault == fault && f.healed_ns.is_none())
                    {
                        f.healed_ns = Some(*t_ns);
                        f.matched = matched.map(|n| (n, unit.clone().unwrap_or_default()));
                    }
                }
                Event::Op {
                    workload,
                    seq,
                    start_ns,
                    end_ns,
                    errno,
                    stage,
                    exit_code,
                    mounts,
                    ..
                } => {
                    let lane = lane(&mut t.lanes, workload);
                    lane.ops.push(OpMark {
                        seq: *seq,
                        start_ns: *start_ns,
                        latency_ns: end_ns.saturating_sub(*start_ns),
                        errno: *errno,
                        stage: stage.clone(),
                        exit_code: *exit_code,
                        mounts: crate::journal::mount_summary(mounts),
                    });
                    if let Some(h) = lane.hangs.iter_mut().find(|h| h.seq == *seq) {
                        h.end_ns = Some(*end_ns);
                    }
                }
                Event::Indeterminate {
                    workload,
                    seq,
                    start_ns,
                    t_ns,
                    state,
                    wchan,
                    mounts,
                    ..
                } => {
                    let lane = lane(&mut t.lanes, workload);
                    let end_ns = lane
                        .ops
                        .iter()
                        .find(|o| o.seq == *seq)
                        .map(|o| o.start_ns + o.latency_ns);
                    lane.hangs.push(HangBar {
                        seq: *seq,
                        start_ns: *start_ns,
                        sampled_ns: *t_ns,
                        end_ns,
                        state: state.clone(),
                        wchan: wchan.clone(),
                        mounts: crate::journal::mount_summary(mounts),
                    });
                }
                Event::Kmsg {
                    seq,
                    level,
                    text,
                    t_ns,
                } => {
                    let marker = marker_time(journal, &t.steps, text);
                    // The kernel's own stamp when the journal has it; else
                    // the line lies between the last thing known to come
                    // before it and the next thing known to come after.
                    let exact = t_ns.or(marker);
                    if let Some(at) = exact {
                        earliest = at;
                    } else {
                        unbounded.push(t.kernel.len());
                    }
                    t.kernel.push(KernelLine {
                        seq: *seq,
                        level: *level,
                        text: text.clone(),
                        earliest_ns: exact.unwrap_or(earliest),
                        latest_ns: exact.unwrap_or(end_ns),
                        denied: deny.iter().find(|(_, re)| re.is_match(text)).map(|d| d.0),
                        marker: marker.is_some(),
                    });
                }
                Event::Exec {
                    step,
                    code,
                    signal,
                    t_ns,
                    ..
                } => t.execs.push(ExecMark {
                    step: step.clone(),
                    t_ns: *t_ns,
                    code: *code,
                    signal: *signal,
                }),
                Event::Ready { step, t_ns } => t.moments.push(Moment {
                    kind: "ready",
                    t_ns: *t_ns,
                    text: format!("{step}: its command said it is ready"),
                }),
                Event::Continued { step, by, t_ns } => t.moments.push(Moment {
                    kind: "continued",
                    t_ns: *t_ns,
                    text: format!("{step}: the operator confirmed ({by})"),
                }),
                Event::ProbeFailed {
                    probe,
                    reason,
                    t_ns,
                } => t.moments.push(Moment {
                    kind: "probe-failed",
                    t_ns: *t_ns,
                    text: format!("abort probe {probe} failed: {reason}; every fault healed"),
                }),
                _ => {}
            }
        }
        for i in unbounded {
            t.kernel[i].latest_ns = end_ns.max(t.kernel[i].earliest_ns);
        }
        t
    }

    /// The slowest op of any lane, for the latency scale's ceiling.
    pub fn max_latency_ns(&self) -> u64 {
        self.lanes
            .iter()
            .flat_map(|l| l.ops.iter().map(|o| o.latency_ns))
            .max()
            .unwrap_or(0)
    }
}

fn lane<'t>(lanes: &'t mut Vec<Lane>, workload: &str) -> &'t mut Lane {
    let i = match lanes.iter().position(|l| l.workload == workload) {
        Some(i) => i,
        None => {
            lanes.push(Lane {
                workload: workload.to_string(),
                ops: Vec::new(),
                hangs: Vec::new(),
            });
            lanes.len() - 1
        }
    };
    &mut lanes[i]
}

/// The time an event carries when the engine took it from its clock as it
/// recorded the event: any kernel line it had read by then was logged
/// before. Ops and hang samples come from the workloads' own reports,
/// which may be read late, so they bound nothing.
fn engine_clock(e: &Event) -> Option<u64> {
    match e {
        Event::StepBegin { t_ns, .. }
        | Event::StepEnd { t_ns, .. }
        | Event::FaultInjected { t_ns, .. }
        | Event::FaultHealed { t_ns, .. }
        | Event::Observed { t_ns, .. }
        | Event::StepTimedOut { t_ns, .. }
        | Event::ProbeFailed { t_ns, .. }
        | Event::Continued { t_ns, .. }
        | Event::Ready { t_ns, .. }
        | Event::Aborted { t_ns, .. } => Some(*t_ns),
        _ => None,
    }
}

/// If `text` is one of the run's step markers, when it was written: the
/// time of the step edge it marks.
fn marker_time(journal: &Journal, steps: &[StepSpan], text: &str) -> Option<u64> {
    let prefix = format!("stackquake[{}]: step ", journal.run_id);
    let rest = text.strip_prefix(&prefix)?;
    let (step, edge) = rest.rsplit_once(' ')?;
    let span = steps.iter().rev().find(|s| s.step == step)?;
    match edge {
        "begin" => Some(span.begin_ns),
        "end" => span.end_ns,
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kmsg(text: &str) -> Event {
        Event::Kmsg {
            seq: 0,
            level: 1,
            text: text.into(),
            t_ns: None,
        }
    }

    fn op(seq: u64, start_ns: u64, end_ns: u64, errno: Option<i32>) -> Event {
        Event::Op {
            workload: "w".into(),
            seq,
            start_ns,
            end_ns,
            errno,
            stage: None,
            exit_code: None,
            mounts: Vec::new(),
            hold: None,
        }
    }

    fn journal(events: Vec<Event>) -> Journal {
        Journal {
            run_id: "r1".into(),
            events,
        }
    }

    #[test]
    fn kernel_lines_lie_between_their_marker_and_the_next_engine_time() {
        let j = journal(vec![
            kmsg("before any step"),
            Event::StepBegin {
                step: "a".into(),
                t_ns: 100,
            },
            Event::StepEnd {
                step: "a".into(),
                t_ns: 200,
            },
            Event::StepBegin {
                step: "b".into(),
                t_ns: 300,
            },
            kmsg("stackquake[r1]: step a begin"),
            kmsg("stackquake[r1]: step a end"),
            kmsg("stackquake[r1]: step b begin"),
            kmsg("XFS (loop0): shut down"),
            op(1, 310, 320, Some(5)),
            Event::StepEnd {
                step: "b".into(),
                t_ns: 400,
            },
            kmsg("read after the last engine time"),
            op(2, 500, 600, None),
        ]);
        let t = Timeline::of(&j);
        let at = |text: &str| {
            let k = t.kernel.iter().find(|k| k.text == text).unwrap();
            (k.earliest_ns, k.latest_ns, k.marker)
        };
        assert_eq!(at("before any step"), (0, 100, false));
        // A marker is placed at the step edge it marks.
        assert_eq!(at("stackquake[r1]: step a end"), (200, 200, true));
        assert_eq!(at("XFS (loop0): shut down"), (300, 400, false));
        assert_eq!(at("read after the last engine time"), (300, 600, false));
        assert_eq!(t.end_ns, 600);
    }

    #[test]
    fn a_kernel_line_with_its_own_time_is_placed_at_it_and_bounds_the_lines_after() {
        let stamped = |text: &str, t_ns: u64| Event::Kmsg {
            seq: 0,
            level: 4,
            text: text.into(),
            t_ns: Some(t_ns),
        };
        let j = journal(vec![
            Event::StepBegin {
                step: "a".into(),
                t_ns: 100,
            },
            stamped("nfs: server 10.0.0.1 not responding", 150),
            kmsg("an older journal's line"),
            Event::StepEnd {
                step: "a".into(),
                t_ns: 400,
            },
            stamped("nfs: server 10.0.0.1 OK", 450),
        ]);
        let t = Timeline::of(&j);
        let at = |text: &str| {
            let k = t.kernel.iter().find(|k| k.text == text).unwrap();
            (k.earliest_ns, k.latest_ns)
        };
        assert_eq!(at("nfs: server 10.0.0.1 not responding"), (150, 150));
        assert_eq!(at("an older journal's line"), (150, 400));
        assert_eq!(at("nfs: server 10.0.0.1 OK"), (450, 450));
        assert_eq!(t.end_ns, 450, "a stamped line can be the run's last event");
    }

    #[test]
    fn faults_pair_injection_with_healing_and_steps_with_their_ends() {
        let j = journal(vec![
            Event::StepBegin {
                step: "cut".into(),
                t_ns: 10,
            },
            Event::FaultInjected {
                step: "cut".into(),
                fault: "net.cut".into(),
                t_ns: 11,
            },
            Event::StepEnd {
                step: "cut".into(),
                t_ns: 50,
            },
            Event::FaultHealed {
                step: "cut".into(),
                fault: "net.cut".into(),
                t_ns: 60,
                error: None,
                matched: Some(7),
                unit: Some("packet".into()),
                uncounted: None,
            },
            Event::FaultInjected {
                step: "never".into(),
                fault: "nfs.stall".into(),
                t_ns: 70,
            },
        ]);
        let t = Timeline::of(&j);
        assert_eq!(t.faults[0].healed_ns, Some(60));
        assert_eq!(t.faults[0].matched, Some((7, "packet".into())));
        assert_eq!(t.faults[1].healed_ns, None);
        assert_eq!(t.steps[0].end_ns, Some(50));
    }

    #[test]
    fn a_hung_op_ends_where_it_finally_finished() {
        let j = journal(vec![
            Event::Indeterminate {
                workload: "w".into(),
                seq: 3,
                start_ns: 100,
                t_ns: 400,
                state: "D".into(),
                wchan: "folio_wait_bit".into(),
                stack: None,
                mounts: Vec::new(),
            },
            op(3, 100, 900, None),
            Event::Indeterminate {
                workload: "w".into(),
                seq: 4,
                start_ns: 950,
                t_ns: 1300,
                state: "S".into(),
                wchan: "flock_lock_inode_wait".into(),
                stack: None,
                mounts: Vec::new(),
            },
        ]);
        let t = Timeline::of(&j);
        let lane = &t.lanes[0];
        assert_eq!(lane.hangs[0].end_ns, Some(900));
        assert_eq!(lane.hangs[1].end_ns, None);
        assert_eq!(lane.ops[0].latency_ns, 800);
    }

    #[test]
    fn deny_listed_lines_are_named() {
        let t = Timeline::of(&journal(vec![kmsg("BUG: unable to handle page fault")]));
        assert_eq!(t.kernel[0].denied, Some("BUG"));
    }
}
