//! Checkers over the whole history, as Jepsen has them: mutual exclusion
//! from the lock workloads' own records, order and timing between two
//! moments of the journal, and a workload that never succeeds again.
//!
//! What a record proves: a flock op's `hold` is stamped by the workload
//! child after flock(2) returned and before the unlock call began. The
//! kernel granted the lock before the first stamp and dropped it after
//! the second, so the recorded span lies inside the true hold. Two
//! recorded spans that overlap are therefore a proven violation; spans
//! that merely touch (or are ordered) prove nothing wrong. An op that never
//! ended (cut short, or hung past the run's end) left no record of its
//! hold and is not judged: the outcome counts such ops.

use super::{Outcome, secs};
use crate::journal::{Event, Hold, Journal};
use crate::plan::{Edge, EventRef, LockMode, OpEvent};
use std::time::Duration;

/// One recorded hold of the lock.
struct Held<'j> {
    workload: &'j str,
    seq: u64,
    mode: LockMode,
    hold: Hold,
}

fn span(h: &Held) -> String {
    format!(
        "+{}..+{}",
        secs(h.hold.acquired_ns),
        secs(h.hold.released_ns)
    )
}

pub fn mutual_exclusion(journal: &Journal, workloads: &[(String, LockMode)]) -> Outcome {
    let names: Vec<&str> = workloads.iter().map(|(w, _)| w.as_str()).collect();
    let expectation = format!("no two of {} hold the lock at once", names.join(", "));
    let mut holds: Vec<Held> = journal
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Op {
                workload,
                seq,
                hold: Some(hold),
                ..
            } => {
                let (_, mode) = workloads.iter().find(|(w, _)| w == workload)?;
                Some(Held {
                    workload,
                    seq: *seq,
                    mode: *mode,
                    hold: *hold,
                })
            }
            _ => None,
        })
        .collect();
    holds.sort_by_key(|h| (h.hold.acquired_ns, h.hold.released_ns));
    let unended = unended_ops(journal, &names);
    let unended = if unended == 0 {
        String::new()
    } else {
        format!("; {unended} op(s) never ended and are not judged")
    };
    let mut holders: Vec<&str> = holds.iter().map(|h| h.workload).collect();
    holders.sort_unstable();
    holders.dedup();
    if holders.len() < 2 {
        return Outcome::new(
            expectation,
            false,
            format!(
                "never put to the test: {} hold(s) recorded, by {} of the workloads{unended}",
                holds.len(),
                holders.len()
            ),
        );
    }
    // Sorted by acquisition, a hold overlaps a later one exactly when the
    // later one was acquired before it was released.
    let mut overlaps = Vec::new();
    // The closest handoff between two workloads: the smallest gap from a
    // release to another workload's next acquisition.
    let mut closest: Option<(u64, &Held, &Held)> = None;
    for (i, a) in holds.iter().enumerate() {
        for b in &holds[i + 1..] {
            if b.hold.acquired_ns >= a.hold.released_ns {
                if b.workload != a.workload {
                    let gap = b.hold.acquired_ns - a.hold.released_ns;
                    if closest.is_none_or(|(g, ..)| gap < g) {
                        closest = Some((gap, a, b));
                    }
                }
                break;
            }
            let shared = a.mode == LockMode::Sh && b.mode == LockMode::Sh;
            if b.workload != a.workload && !shared {
                overlaps.push((a, b));
            }
        }
    }
    if let Some((a, b)) = overlaps.first() {
        let end = a.hold.released_ns.min(b.hold.released_ns);
        return Outcome::new(
            expectation,
            false,
            format!(
                "{} op {} held it {} while {} op {} held it {}: both at +{}..+{} ({}); \
                 {} overlapping pair(s) among {} holds{unended}",
                a.workload,
                a.seq,
                span(a),
                b.workload,
                b.seq,
                span(b),
                secs(b.hold.acquired_ns),
                secs(end),
                secs(end - b.hold.acquired_ns),
                overlaps.len(),
                holds.len()
            ),
        );
    }
    let handoff = closest.map_or(String::new(), |(gap, a, b)| {
        format!(
            "; closest handoff {}: {} op {} released at +{}, {} op {} acquired at +{}",
            secs(gap),
            a.workload,
            a.seq,
            secs(a.hold.released_ns),
            b.workload,
            b.seq,
            secs(b.hold.acquired_ns)
        )
    });
    Outcome::new(
        expectation,
        true,
        format!(
            "{} holds by {}, none overlapping{handoff}{unended}",
            holds.len(),
            holders.join(", ")
        ),
    )
}

/// Ops of `workloads` sampled past their deadline that never ended.
fn unended_ops(journal: &Journal, workloads: &[&str]) -> usize {
    journal
        .events
        .iter()
        .filter(|e| match e {
            Event::Indeterminate { workload, seq, .. } => {
                workloads.contains(&workload.as_str())
                    && !journal.events.iter().any(|o| {
                        matches!(o, Event::Op { workload: w, seq: s, .. } if w == workload && s == seq)
                    })
            }
            _ => false,
        })
        .count()
}

/// Each time `r` happened, in run time, with the op it belongs to.
fn occurrences(journal: &Journal, r: &EventRef) -> Vec<(u64, Option<u64>)> {
    let mut times: Vec<(u64, Option<u64>)> = journal
        .events
        .iter()
        .filter_map(|e| match (r, e) {
            (
                EventRef::Op { workload, op },
                Event::Op {
                    workload: w,
                    seq,
                    end_ns,
                    errno,
                    exit_code,
                    hold,
                    ..
                },
            ) if w == workload => {
                let failed = errno.is_some() || exit_code.is_some_and(|c| c != 0);
                let t = match op {
                    OpEvent::Acquired => hold.map(|h| h.acquired_ns),
                    OpEvent::Released => hold.map(|h| h.released_ns),
                    OpEvent::Succeeded => (!failed).then_some(*end_ns),
                    OpEvent::Failed => failed.then_some(*end_ns),
                };
                Some((t?, Some(*seq)))
            }
            (EventRef::Step { step, edge }, Event::StepBegin { step: s, t_ns })
                if s == step && *edge == Edge::Begin =>
            {
                Some((*t_ns, None))
            }
            (EventRef::Step { step, edge }, Event::Ready { step: s, t_ns })
                if s == step && *edge == Edge::Ready =>
            {
                Some((*t_ns, None))
            }
            (EventRef::Step { step, edge }, Event::StepEnd { step: s, t_ns })
                if s == step && *edge == Edge::End =>
            {
                Some((*t_ns, None))
            }
            (EventRef::Fault { step, edge }, Event::FaultInjected { step: s, t_ns, .. })
                if s == step && *edge == Edge::Injected =>
            {
                Some((*t_ns, None))
            }
            (EventRef::Fault { step, edge }, Event::FaultHealed { step: s, t_ns, .. })
                if s == step && *edge == Edge::Healed =>
            {
                Some((*t_ns, None))
            }
            _ => None,
        })
        .collect();
    times.sort_unstable();
    times
}

fn moment(r: &EventRef, (t, seq): (u64, Option<u64>)) -> String {
    match seq {
        Some(seq) => format!("{r} (op {seq}) at +{}", secs(t)),
        None => format!("{r} at +{}", secs(t)),
    }
}

pub fn order(
    journal: &Journal,
    first: &EventRef,
    then: &EventRef,
    at_least: Option<Duration>,
    at_most: Option<Duration>,
) -> Outcome {
    let fmt = |d: Duration| humantime::format_duration(d).to_string();
    let bounds = match (at_least, at_most) {
        (Some(lo), Some(hi)) => format!(" {} to {} after", fmt(lo), fmt(hi)),
        (Some(lo), None) => format!(" at least {} after", fmt(lo)),
        (None, Some(hi)) => format!(" at most {} after", fmt(hi)),
        (None, None) => " after".into(),
    };
    let expectation = format!("{then}{bounds} {first}");
    let Some(&a) = occurrences(journal, first).first() else {
        return Outcome::new(expectation, false, format!("{first} never happened"));
    };
    let later = occurrences(journal, then);
    let Some(&b) = later.iter().find(|(t, _)| *t >= a.0) else {
        let before = later.last().map_or(String::new(), |&b| {
            format!(" (only before it: {})", moment(then, b))
        });
        return Outcome::new(
            expectation,
            false,
            format!(
                "{}; {then} never happened after it{before}",
                moment(first, a)
            ),
        );
    };
    let gap = b.0 - a.0;
    let ns = |d: Duration| d.as_nanos() as u64;
    let passed = at_least.is_none_or(|lo| gap >= ns(lo)) && at_most.is_none_or(|hi| gap <= ns(hi));
    Outcome::new(
        expectation,
        passed,
        format!(
            "{}; {}: {} later",
            moment(first, a),
            moment(then, b),
            secs(gap)
        ),
    )
}

pub fn never_resumes(journal: &Journal, workload: &str, after: &str) -> Outcome {
    let expectation = format!("{workload} never succeeds again after {after}");
    let Some((_, Some(from))) = journal.step_span(after) else {
        return Outcome::new(expectation, false, format!("step {after} never ended"));
    };
    // The timeline's end: what the end-of-run heal and the workloads'
    // grace let through afterwards is not the scenario's outcome.
    let until = journal
        .events
        .iter()
        .filter_map(|e| match e {
            Event::StepEnd { t_ns, .. } => Some(*t_ns),
            _ => None,
        })
        .max()
        .unwrap_or(from);
    // An op already in the kernel when the fault took effect may have got
    // past the point that fails (XFS checks for shutdown on entry), so its
    // success says nothing of the world after the fault: only ops begun
    // after it are judged. A step without a fault takes effect at its end.
    let took_effect = journal
        .events
        .iter()
        .find_map(|e| match e {
            Event::FaultInjected { step, t_ns, .. } if step == after => Some(*t_ns),
            _ => None,
        })
        .unwrap_or(from);
    let (mut failed, mut in_flight) = (0, 0);
    for e in &journal.events {
        let Event::Op {
            workload: w,
            seq,
            start_ns,
            end_ns,
            errno,
            exit_code,
            ..
        } = e
        else {
            continue;
        };
        if w != workload || *end_ns < from || *end_ns > until {
            continue;
        }
        if *start_ns < took_effect {
            in_flight += 1;
            continue;
        }
        if errno.is_some() || exit_code.is_some_and(|c| c != 0) {
            failed += 1;
        } else {
            return Outcome::new(
                expectation,
                false,
                format!(
                    "op {seq} succeeded at +{}, {} after {after} ended (+{})",
                    secs(*end_ns),
                    secs(end_ns - from),
                    secs(from)
                ),
            );
        }
    }
    let hung = journal
        .events
        .iter()
        .filter(|e| {
            matches!(e, Event::Indeterminate { workload: w, t_ns, .. }
                if w == workload && *t_ns >= from && *t_ns <= until)
        })
        .count();
    Outcome::new(
        expectation,
        true,
        format!(
            "no op succeeded from +{} ({after} ended) to +{} (the timeline's end): \
             {failed} failed, {hung} past their deadline, \
             {in_flight} begun before the fault took effect (+{}) not judged",
            secs(from),
            secs(until),
            secs(took_effect)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn journal(events: Vec<Event>) -> Journal {
        Journal {
            run_id: "r".into(),
            events,
        }
    }

    fn op(
        workload: &str,
        seq: u64,
        end: u64,
        errno: Option<i32>,
        hold: Option<(u64, u64)>,
    ) -> Event {
        Event::Op {
            workload: workload.into(),
            seq,
            start_ns: hold.map_or(end, |(a, _)| a.saturating_sub(1)),
            end_ns: end,
            errno,
            stage: errno.map(|_| "flock".into()),
            exit_code: None,
            hold: hold.map(|(acquired_ns, released_ns)| Hold {
                acquired_ns,
                released_ns,
            }),
            mounts: Vec::new(),
        }
    }

    /// A flock op holding [a, r), ending just after its release.
    fn held(workload: &str, seq: u64, a: u64, r: u64) -> Event {
        op(workload, seq, r + 1, None, Some((a, r)))
    }

    fn step(begin: bool, step: &str, t_ns: u64) -> Event {
        let step = step.into();
        if begin {
            Event::StepBegin { step, t_ns }
        } else {
            Event::StepEnd { step, t_ns }
        }
    }

    fn ex(names: &[&str]) -> Vec<(String, LockMode)> {
        names
            .iter()
            .map(|n| (n.to_string(), LockMode::Ex))
            .collect()
    }

    #[test]
    fn disjoint_holds_pass_and_name_the_closest_handoff() {
        let j = journal(vec![
            held("a", 0, S, 2 * S),
            held("b", 0, 2 * S + 5_000_000, 3 * S),
            held("c", 0, 3 * S + 40_000_000, 4 * S),
            held("a", 1, 4 * S + 1, 5 * S),
        ]);
        let o = mutual_exclusion(&j, &ex(&["a", "b", "c"]));
        assert!(o.passed, "{o:?}");
        assert_eq!(o.expectation, "no two of a, b, c hold the lock at once");
        assert!(
            o.detail
                .starts_with("4 holds by a, b, c, none overlapping; closest handoff 0.00s"),
            "{}",
            o.detail
        );
        assert!(
            o.detail.contains("c op 0 released at +4.00s, a op 1"),
            "{}",
            o.detail
        );
    }

    #[test]
    fn holds_that_only_touch_are_no_violation() {
        // b's flock returned at the very nanosecond a's unlock began: the
        // records prove nothing overlapped.
        let j = journal(vec![held("a", 0, S, 2 * S), held("b", 0, 2 * S, 3 * S)]);
        assert!(mutual_exclusion(&j, &ex(&["a", "b"])).passed);
    }

    #[test]
    fn an_overlap_names_the_pair_and_when() {
        let j = journal(vec![
            held("a", 3, S, 3 * S),
            held("b", 7, 2 * S, 4 * S),
            held("c", 1, 5 * S, 6 * S),
        ]);
        let o = mutual_exclusion(&j, &ex(&["a", "b", "c"]));
        assert!(!o.passed, "{o:?}");
        assert_eq!(
            o.detail,
            "a op 3 held it +1.00s..+3.00s while b op 7 held it +2.00s..+4.00s: \
             both at +2.00s..+3.00s (1.00s); 1 overlapping pair(s) among 3 holds"
        );
        // One nanosecond of overlap is enough.
        let j = journal(vec![held("a", 0, S, 2 * S), held("b", 0, 2 * S - 1, 3 * S)]);
        assert!(!mutual_exclusion(&j, &ex(&["a", "b"])).passed);
    }

    #[test]
    fn shared_holds_may_overlap_but_not_with_an_exclusive_one() {
        let j = journal(vec![held("r1", 0, S, 3 * S), held("r2", 0, 2 * S, 4 * S)]);
        let sh = vec![
            ("r1".to_string(), LockMode::Sh),
            ("r2".to_string(), LockMode::Sh),
        ];
        assert!(mutual_exclusion(&j, &sh).passed);
        let mixed = vec![
            ("r1".to_string(), LockMode::Sh),
            ("r2".to_string(), LockMode::Ex),
        ];
        assert!(!mutual_exclusion(&j, &mixed).passed);
    }

    #[test]
    fn holds_of_other_workloads_and_failed_locks_are_not_judged() {
        let j = journal(vec![
            held("a", 0, S, 3 * S),
            held("other", 0, 2 * S, 4 * S),
            // b's lock call failed: no hold, whatever its op's times.
            op("b", 0, 2 * S, Some(libc::ENOLCK), None),
            held("b", 1, 3 * S, 4 * S),
        ]);
        assert!(mutual_exclusion(&j, &ex(&["a", "b"])).passed);
    }

    #[test]
    fn without_two_holders_exclusion_was_never_tested() {
        let j = journal(vec![
            held("a", 0, S, 2 * S),
            op("b", 0, 2 * S, Some(libc::ENOLCK), None),
            Event::Indeterminate {
                workload: "b".into(),
                seq: 1,
                start_ns: 3 * S,
                t_ns: 5 * S,
                state: "S".into(),
                wchan: "nlmclnt_block".into(),
                stack: None,
                mounts: Vec::new(),
            },
        ]);
        let o = mutual_exclusion(&j, &ex(&["a", "b"]));
        assert!(!o.passed);
        assert_eq!(
            o.detail,
            "never put to the test: 1 hold(s) recorded, by 1 of the workloads; \
             1 op(s) never ended and are not judged"
        );
    }

    fn released_then_acquired(gap: u64) -> Journal {
        journal(vec![
            step(true, "hold", 0),
            // b takes the lock before a's first release: not the moment meant.
            held("b", 0, S / 2, S / 2 + 10),
            held("a", 0, S, 5 * S),
            held("b", 1, 5 * S + gap, 6 * S + gap),
            held("b", 2, 7 * S + gap, 8 * S + gap),
            step(false, "hold", 9 * S + gap),
        ])
    }

    fn a_released() -> EventRef {
        EventRef::Op {
            workload: "a".into(),
            op: OpEvent::Released,
        }
    }

    fn b_acquired() -> EventRef {
        EventRef::Op {
            workload: "b".into(),
            op: OpEvent::Acquired,
        }
    }

    #[test]
    fn order_measures_from_the_first_to_the_next_then() {
        let lo = Some(Duration::from_secs(8));
        let hi = Some(Duration::from_secs(30));
        let o = order(
            &released_then_acquired(8 * S),
            &a_released(),
            &b_acquired(),
            lo,
            hi,
        );
        assert!(o.passed, "{o:?}");
        assert_eq!(o.expectation, "b acquired 8s to 30s after a released");
        assert_eq!(
            o.detail,
            "a released (op 0) at +5.00s; b acquired (op 1) at +13.00s: 8.00s later"
        );
        // The bounds are inclusive; a nanosecond short fails.
        let o = order(
            &released_then_acquired(8 * S - 1),
            &a_released(),
            &b_acquired(),
            lo,
            hi,
        );
        assert!(!o.passed, "{o:?}");
        let o = order(
            &released_then_acquired(30 * S),
            &a_released(),
            &b_acquired(),
            lo,
            hi,
        );
        assert!(o.passed, "{o:?}");
        let o = order(
            &released_then_acquired(30 * S + 1),
            &a_released(),
            &b_acquired(),
            lo,
            hi,
        );
        assert!(!o.passed, "{o:?}");
        // No bounds: only the order.
        let o = order(
            &released_then_acquired(0),
            &a_released(),
            &b_acquired(),
            None,
            None,
        );
        assert!(o.passed, "{o:?}");
    }

    #[test]
    fn order_fails_when_then_never_follows() {
        let j = journal(vec![held("b", 0, S, 2 * S), held("a", 0, 3 * S, 4 * S)]);
        let o = order(&j, &a_released(), &b_acquired(), None, None);
        assert!(!o.passed);
        assert_eq!(
            o.detail,
            "a released (op 0) at +4.00s; b acquired never happened after it \
             (only before it: b acquired (op 0) at +1.00s)"
        );
        let o = order(
            &journal(Vec::new()),
            &a_released(),
            &b_acquired(),
            None,
            None,
        );
        assert_eq!(o.detail, "a released never happened");
    }

    #[test]
    fn order_reads_steps_faults_and_op_outcomes() {
        let j = journal(vec![
            step(true, "crash", S),
            Event::FaultInjected {
                step: "crash".into(),
                fault: "host.crash".into(),
                t_ns: S + 10,
            },
            op("w", 0, 2 * S, Some(libc::EIO), None),
            Event::FaultHealed {
                step: "crash".into(),
                fault: "host.crash".into(),
                t_ns: 9 * S,
                error: None,
                matched: None,
                unit: None,
                uncounted: None,
            },
            step(false, "crash", 9 * S + 10),
            op("w", 1, 10 * S, None, None),
        ]);
        let healed = EventRef::Fault {
            step: "crash".into(),
            edge: Edge::Healed,
        };
        let succeeded = EventRef::Op {
            workload: "w".into(),
            op: OpEvent::Succeeded,
        };
        let o = order(&j, &healed, &succeeded, None, Some(Duration::from_secs(1)));
        assert!(o.passed, "{o:?}");
        assert_eq!(
            o.expectation,
            "w succeeded at most 1s after fault crash healed"
        );
        let injected = EventRef::Fault {
            step: "crash".into(),
            edge: Edge::Injected,
        };
        let failed = EventRef::Op {
            workload: "w".into(),
            op: OpEvent::Failed,
        };
        let o = order(&j, &injected, &failed, Some(Duration::from_secs(2)), None);
        assert!(!o.passed, "{o:?}");
        assert!(
            o.detail.ends_with("w failed (op 0) at +2.00s: 1.00s later"),
            "{}",
            o.detail
        );
        let begin = EventRef::Step {
            step: "crash".into(),
            edge: Edge::Begin,
        };
        let end = EventRef::Step {
            step: "crash".into(),
            edge: Edge::End,
        };
        let o = order(&j, &begin, &end, Some(Duration::from_secs(8)), None);
        assert!(o.passed, "{o:?}");
        assert_eq!(
            o.detail,
            "step crash begin at +1.00s; step crash end at +9.00s: 8.00s later"
        );
    }

    fn writer_after(ops: Vec<Event>) -> Journal {
        writer_after_fault_at(2 * S, ops)
    }

    /// `shutdown` runs from 1 s to 2 s, its fault in force from `injected`.
    fn writer_after_fault_at(injected: u64, ops: Vec<Event>) -> Journal {
        let mut events = vec![
            step(true, "shutdown", S),
            Event::FaultInjected {
                step: "shutdown".into(),
                fault: "xfs.shutdown".into(),
                t_ns: injected,
            },
            step(false, "shutdown", 2 * S),
        ];
        events.extend(ops);
        events.push(step(true, "after", 2 * S));
        events.push(step(false, "after", 5 * S));
        journal(events)
    }

    #[test]
    fn never_resumes_passes_while_every_op_fails_to_the_timelines_end() {
        let eio = Some(libc::EIO);
        let j = writer_after(vec![
            // Before the step ended, success is fine.
            op("writer", 0, S, None, None),
            op("writer", 1, 2 * S, eio, None),
            op("writer", 2, 3 * S, eio, None),
            // After the timeline's end (the end-of-run heal) it may come back.
            op("writer", 3, 6 * S, None, None),
        ]);
        let o = never_resumes(&j, "writer", "shutdown");
        assert!(o.passed, "{o:?}");
        assert_eq!(o.expectation, "writer never succeeds again after shutdown");
        assert_eq!(
            o.detail,
            "no op succeeded from +2.00s (shutdown ended) to +5.00s (the timeline's end): \
             2 failed, 0 past their deadline, \
             0 begun before the fault took effect (+2.00s) not judged"
        );
    }

    /// A successful write of `writer`'s, begun at `start`.
    fn write(seq: u64, start: u64, end: u64) -> Event {
        let mut e = op("writer", seq, end, None, None);
        if let Event::Op { start_ns, .. } = &mut e {
            *start_ns = start;
        }
        e
    }

    #[test]
    fn never_resumes_does_not_judge_an_op_in_flight_when_the_fault_took_effect() {
        // The CI case: op 44 was already writing when the shutdown ioctl
        // returned, and finished just after the step ended.
        let ms = S / 1000;
        let j = writer_after(vec![write(44, 2 * S - 15 * ms, 2 * S + 2 * ms)]);
        let o = never_resumes(&j, "writer", "shutdown");
        assert!(o.passed, "{o:?}");
        assert!(
            o.detail
                .ends_with("1 begun before the fault took effect (+2.00s) not judged"),
            "{}",
            o.detail
        );
        // Begun as the fault took effect, it is judged.
        let j = writer_after(vec![write(45, 2 * S, 2 * S + 2 * ms)]);
        assert!(!never_resumes(&j, "writer", "shutdown").passed);
        // A fault with `for:` takes effect at its injection, not at its
        // heal: an op begun under it that succeeds after the heal resumed.
        let j = writer_after_fault_at(S + 100 * ms, vec![write(46, S + 500 * ms, 3 * S)]);
        let o = never_resumes(&j, "writer", "shutdown");
        assert!(!o.passed, "{o:?}");
        assert_eq!(
            o.detail,
            "op 46 succeeded at +3.00s, 1.00s after shutdown ended (+2.00s)"
        );
    }

    #[test]
    fn never_resumes_fails_on_one_success_even_at_the_boundaries() {
        for t in [2 * S, 5 * S] {
            let j = writer_after(vec![op("writer", 4, t, None, None)]);
            let o = never_resumes(&j, "writer", "shutdown");
            assert!(!o.passed, "at {t}: {o:?}");
            assert!(o.detail.starts_with("op 4 succeeded at +"), "{}", o.detail);
        }
        let o = never_resumes(
            &journal(vec![step(true, "shutdown", S)]),
            "writer",
            "shutdown",
        );
        assert!(!o.passed);
        assert_eq!(o.detail, "step shutdown never ended");
    }
}
