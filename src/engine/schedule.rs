//! When each step of a timeline begins and ends: a pure state machine over
//! the resolved [`Timeline`] and a clock the caller passes in. The live run
//! asks it what is due, does the I/O (inject, heal, spawn, markers), and
//! tells it back; the unit tests below drive it with a simulated clock, so
//! the ordering rules (anchors, offsets, groups, timeouts) are checked
//! without root or a single namespace.

use super::timeline::{Anchor, Timeline};
use crate::plan::Action;
use std::time::Duration;

/// The next transition the run must carry out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Step `n` may begin now.
    Begin(usize),
    /// Step `n` has done what it does (a fault step with `for:` must be
    /// healed first).
    End(usize),
    /// Step `n` ran past its `timeout`.
    TimedOut(usize),
    /// The scenario's `timeout` (counted from before setup) is reached.
    ScenarioTimeout,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    /// Began at this run time (ns); `event_ended`: what ends an exec or
    /// pause step happened (the command exited, the operator confirmed).
    Running {
        began: u64,
        event_ended: bool,
    },
    /// Ended at this run time (ns).
    Done(u64),
}

pub struct Scheduler<'t> {
    timeline: &'t Timeline<'t>,
    state: Vec<State>,
    /// Run time (ns) at which the scenario times out.
    deadline: u64,
}

impl<'t> Scheduler<'t> {
    /// `timeout`: the scenario's, on the same clock as every `now`.
    pub fn new(timeline: &'t Timeline<'t>, timeout: Duration) -> Scheduler<'t> {
        Scheduler {
            timeline,
            state: vec![State::Pending; timeline.steps.len()],
            deadline: timeout.as_nanos() as u64,
        }
    }

    /// The first transition due at run time `now`, in the order steps are
    /// written; None if nothing is due yet. Past the scenario's timeout,
    /// only that.
    pub fn due(&self, now: u64) -> Option<Due> {
        if now >= self.deadline && !self.all_done() {
            return Some(Due::ScenarioTimeout);
        }
        (0..self.state.len()).find_map(|i| {
            let planned = &self.timeline.steps[i];
            let step = planned.step;
            match self.state[i] {
                State::Pending => {
                    let base = self.base(planned.anchor)?;
                    (now >= base + step.offset.as_nanos() as u64).then_some(Due::Begin(i))
                }
                State::Running { began, event_ended } => {
                    if self.finished(i, began, event_ended, now) {
                        Some(Due::End(i))
                    } else {
                        step.timeout
                            .filter(|limit| now.saturating_sub(began) > limit.as_nanos() as u64)
                            .map(|_| Due::TimedOut(i))
                    }
                }
                State::Done(_) => None,
            }
        })
    }

    /// Every step that may begin at run time `now`, in the order written
    /// (the members of a `parallel` group with the same offset come due
    /// together once their group has begun).
    pub fn begins_due(&self, now: u64) -> Vec<usize> {
        (0..self.state.len())
            .filter(|&i| self.state[i] == State::Pending)
            .filter(|&i| self.planned_begin(i).is_some_and(|t| now >= t))
            .collect()
    }

    /// Every running step that has done what it does at run time `now`.
    pub fn ends_due(&self, now: u64) -> Vec<usize> {
        (0..self.state.len())
            .filter(|&i| match self.state[i] {
                State::Running { began, event_ended } => self.finished(i, began, event_ended, now),
                _ => false,
            })
            .collect()
    }

    /// When step `i` is planned to begin, once its anchor is known (the
    /// members of a group with one offset come due at the same moment).
    pub fn planned_begin(&self, i: usize) -> Option<u64> {
        let planned = &self.timeline.steps[i];
        Some(self.base(planned.anchor)? + planned.step.offset.as_nanos() as u64)
    }

    /// When the anchor allows a step to begin, if it already does.
    fn base(&self, anchor: Anchor) -> Option<u64> {
        match anchor {
            Anchor::Start => Some(0),
            Anchor::EndOf(n) => match self.state[n] {
                State::Done(t) => Some(t),
                _ => None,
            },
            Anchor::BeginOf(n) => match self.state[n] {
                State::Running { began, .. } => Some(began),
                State::Done(t) => Some(t),
                State::Pending => None,
            },
        }
    }

    /// Whether running step `i` has done what it does.
    fn finished(&self, i: usize, began: u64, event_ended: bool, now: u64) -> bool {
        let elapsed = |d: Duration| now.saturating_sub(began) >= d.as_nanos() as u64;
        match &self.timeline.steps[i].step.action {
            Action::Wait(w) => elapsed(*w),
            Action::Fault { heal_after, .. } => heal_after.is_none_or(elapsed),
            Action::Parallel(members) => members
                .iter()
                .all(|&m| matches!(self.state[m], State::Done(_))),
            // Ended by an event: the command exited, the operator confirmed.
            Action::Exec { .. } | Action::Pause { .. } => event_ended,
        }
    }

    pub fn began(&mut self, i: usize, at: u64) {
        self.state[i] = State::Running {
            began: at,
            event_ended: false,
        };
    }

    /// An exec step's command exited, or a pause was confirmed: the step
    /// ends at the next [`due`](Self::due).
    pub fn event_ended(&mut self, i: usize) {
        if let State::Running { event_ended, .. } = &mut self.state[i] {
            *event_ended = true;
        }
    }

    pub fn ended(&mut self, i: usize, at: u64) {
        self.state[i] = State::Done(at);
    }

    /// Every step has ended.
    pub fn all_done(&self) -> bool {
        self.state.iter().all(|s| matches!(s, State::Done(_)))
    }

    /// The earliest run time after `now` at which something may fall due
    /// without anything else happening first: an offset reached, a wait or
    /// `for:` over, a timeout passed. None if only an event (an exec ending)
    /// can move the timeline on.
    pub fn next_wakeup(&self, now: u64) -> Option<u64> {
        let mut times = vec![self.deadline];
        for (i, planned) in self.timeline.steps.iter().enumerate() {
            let step = planned.step;
            let ns = |d: Duration| d.as_nanos() as u64;
            match self.state[i] {
                State::Pending => {
                    if let Some(base) = self.base(planned.anchor) {
                        times.push(base + ns(step.offset));
                    }
                }
                State::Running { began, .. } => {
                    match &step.action {
                        Action::Wait(w) => times.push(began + ns(*w)),
                        Action::Fault {
                            heal_after: Some(d),
                            ..
                        } => times.push(began + ns(*d)),
                        _ => {}
                    }
                    if let Some(limit) = step.timeout {
                        times.push(began + ns(limit) + 1);
                    }
                }
                State::Done(_) => {}
            }
        }
        times.into_iter().filter(|t| *t > now).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Plan;

    const MS: u64 = 1_000_000;

    fn plan(steps: &str) -> Plan {
        plan_with("", steps)
    }

    fn plan_with(world: &str, steps: &str) -> Plan {
        let text = format!(
            "schema_version: 1\nid: t\ntitle: t\nhosts: {{ a: {{}} }}\n{world}steps:\n{steps}"
        );
        crate::scenario::load_str(&text, "t.yaml").unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs the timeline on a simulated clock: each transition happens the
    /// moment it is due, exec commands run (and pauses wait for the
    /// operator) for the given milliseconds.
    /// Returns (ms, "begin a" / "end a" / "timeout a") in order.
    fn simulate(plan: &Plan, exec_ms: &[(&str, u64)]) -> Vec<(u64, String)> {
        simulate_injecting(plan, exec_ms, &[])
    }

    /// `simulate`, where injecting a step's fault takes the given
    /// milliseconds; as in the live run, the clock moves on meanwhile and
    /// the fault counts as begun once it is in force.
    fn simulate_injecting(
        plan: &Plan,
        exec_ms: &[(&str, u64)],
        inject_ms: &[(&str, u64)],
    ) -> Vec<(u64, String)> {
        let t = Timeline::resolve(plan);
        let mut s = Scheduler::new(&t, plan.timeout);
        let mut log = Vec::new();
        let mut now = 0;
        let mut exits: Vec<(u64, usize)> = Vec::new();
        for _ in 0..1000 {
            for &(_, i) in exits.iter().filter(|(at, _)| *at <= now) {
                s.event_ended(i);
            }
            exits.retain(|(at, _)| *at > now);
            while let Some(d) = s.due(now) {
                let (what, i) = match d {
                    Due::Begin(i) => {
                        let id = &t.steps[i].step.id;
                        if let Action::Fault { .. } = t.steps[i].step.action {
                            log.push((now / MS, format!("inject {id}")));
                            now += inject_ms.iter().find(|(f, _)| f == id).map_or(0, |f| f.1) * MS;
                        }
                        s.began(i, now);
                        if let Action::Exec { .. } | Action::Pause { .. } = t.steps[i].step.action {
                            let id = &t.steps[i].step.id;
                            let ms = exec_ms.iter().find(|(e, _)| e == id).map_or(0, |e| e.1);
                            exits.push((now + ms * MS, i));
                        }
                        ("begin", i)
                    }
                    Due::End(i) => {
                        s.ended(i, now);
                        ("end", i)
                    }
                    Due::TimedOut(i) => {
                        log.push((now / MS, format!("timeout {}", t.steps[i].step.id)));
                        return log;
                    }
                    Due::ScenarioTimeout => {
                        log.push((now / MS, "scenario timeout".into()));
                        return log;
                    }
                };
                log.push((now / MS, format!("{what} {}", t.steps[i].step.id)));
            }
            if s.all_done() {
                return log;
            }
            let next_exit = exits.iter().map(|e| e.0).min();
            now = match (s.next_wakeup(now), next_exit) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => a.or(b).expect("the timeline cannot move on"),
            };
        }
        panic!("did not finish: {log:?}")
    }

    fn at(log: &[(u64, String)], what: &str) -> u64 {
        log.iter()
            .find(|(_, w)| w == what)
            .unwrap_or_else(|| panic!("no `{what}` in {log:?}"))
            .0
    }

    #[test]
    fn steps_run_one_after_another_by_default() {
        let p = plan("  - { id: a, wait: 1s }\n  - { id: b, wait: 2s }\n");
        let log = simulate(&p, &[]);
        assert_eq!(
            log,
            [
                (0, "begin a".into()),
                (1000, "end a".into()),
                (1000, "begin b".into()),
                (3000, "end b".into())
            ]
        );
    }

    #[test]
    fn after_and_offset_start_a_step_inside_another() {
        let p = plan(
            "  - { id: steady, wait: 2s }\n  - { id: block, wait: 6s }\n  \
             - { id: inner, after: steady, offset: 1s, wait: 3s }\n  - { id: last, wait: 1s }\n",
        );
        let log = simulate(&p, &[]);
        assert_eq!(at(&log, "begin block"), 2000);
        assert_eq!(at(&log, "begin inner"), 3000);
        // The default anchor is the previous step as written: inner, not block.
        assert_eq!(at(&log, "begin last"), 6000);
        assert_eq!(at(&log, "end block"), 8000);
    }

    #[test]
    fn a_group_begins_its_members_and_ends_with_the_last() {
        let p = plan(
            "  - { id: a, wait: 1s }\n  - id: g\n    parallel:\n      - { id: x, wait: 2s }\n      \
             - { id: y, offset: 500ms, wait: 3s }\n  - { id: z, wait: 1s }\n",
        );
        let log = simulate(&p, &[]);
        assert_eq!(at(&log, "begin g"), 1000);
        assert_eq!(at(&log, "begin x"), 1000);
        assert_eq!(at(&log, "begin y"), 1500);
        assert_eq!(at(&log, "end x"), 3000);
        assert_eq!(at(&log, "end g"), 4500);
        assert_eq!(at(&log, "begin z"), 4500);
        // A group ends after its members, in that order.
        let pos = |w: &str| log.iter().position(|(_, l)| l == w).unwrap();
        assert!(pos("end y") < pos("end g"));
    }

    #[test]
    fn a_fault_step_ends_after_its_for_or_at_once_without() {
        let p = plan_with(
            "images: [{ id: v, host: a, file: /v.img, size: 512M, mkfs: xfs, at: /mnt/v }]\n",
            "  - { id: cut, fault: { xfs.shutdown: { fs: v } }, for: 3s }\n  \
             - { id: stay, fault: { xfs.shutdown: { fs: v } } }\n  - { id: w, wait: 1s }\n",
        );
        let log = simulate(&p, &[]);
        assert_eq!(at(&log, "end cut"), 3000);
        assert_eq!(at(&log, "begin stay"), 3000);
        assert_eq!(at(&log, "end stay"), 3000);
        assert_eq!(at(&log, "end w"), 4000);
    }

    #[test]
    fn a_slow_injection_neither_cuts_its_fault_short_nor_the_next_one() {
        // nfs41-blackhole-failover in a loaded guest: nft took 6 s to put
        // the blackhole in, and the failover came due meanwhile.
        let p = plan_with(
            "images: [{ id: v, host: a, file: /v.img, size: 512M, mkfs: xfs, at: /mnt/v }]\n",
            "  - { id: steady, wait: 2s }\n  \
             - { id: blackhole, fault: { xfs.shutdown: { fs: v } }, for: 9s }\n  \
             - { id: failover, after: steady, offset: 1s, fault: { xfs.shutdown: { fs: v } }, \
                 for: 3s }\n",
        );
        let log = simulate_injecting(&p, &[], &[("blackhole", 6000)]);
        assert_eq!(at(&log, "inject blackhole"), 2000);
        assert_eq!(at(&log, "begin blackhole"), 8000, "in force");
        assert_eq!(at(&log, "begin failover"), 8000, "reached late");
        assert_eq!(at(&log, "end failover"), 11000, "its whole for");
        assert_eq!(at(&log, "end blackhole"), 17000, "its whole for");
    }

    #[test]
    fn an_exec_step_ends_when_its_command_exits() {
        let p =
            plan("  - id: e\n    exec: { host: a, command: [true] }\n  - { id: w, wait: 1s }\n");
        let log = simulate(&p, &[("e", 2500)]);
        assert_eq!(at(&log, "end e"), 2500);
        assert_eq!(at(&log, "end w"), 3500);
    }

    #[test]
    fn a_pause_holds_the_timeline_until_confirmed_or_its_timeout() {
        let p =
            plan("  - { id: p, pause: 'fail over now', timeout: 60s }\n  - { id: w, wait: 1s }\n");
        let log = simulate(&p, &[("p", 7000)]);
        assert_eq!(at(&log, "end p"), 7000);
        assert_eq!(at(&log, "begin w"), 7000);
        let log = simulate(&p, &[("p", 90_000)]);
        assert_eq!(log.last().unwrap(), &(60_000, "timeout p".to_string()));
    }

    #[test]
    fn a_step_past_its_timeout_stops_the_timeline() {
        let p = plan(
            "  - id: e\n    exec: { host: a, command: [sleep, '9'] }\n    timeout: 2s\n  \
             - { id: w, wait: 1s }\n",
        );
        let log = simulate(&p, &[("e", 9000)]);
        assert_eq!(log.last().unwrap(), &(2000, "timeout e".to_string()));
        assert!(!log.iter().any(|(_, l)| l == "begin w"), "{log:?}");
        // Ending within the limit is no timeout.
        let log = simulate(&p, &[("e", 1999)]);
        assert_eq!(at(&log, "end w"), 2999);
    }

    #[test]
    fn the_scenario_timeout_stops_whatever_runs() {
        let p = plan_with(
            "timeout: 5s\n",
            "  - { id: a, wait: 2s }\n  - { id: long, wait: 10s }\n",
        );
        let log = simulate(&p, &[]);
        assert_eq!(log.last().unwrap(), &(5000, "scenario timeout".to_string()));
        assert!(!log.iter().any(|(_, l)| l == "end long"), "{log:?}");
    }

    #[test]
    fn a_groups_members_come_due_together_at_their_planned_times() {
        let p = plan_with(
            "nfs_servers:\n  fs1: { host: a, exports: [{ path: /e }, { path: /f }] }\n",
            "  - { id: steady, wait: 1s }
  - id: cut
    parallel:
      - { id: a, fault: { nfs.unexport: { server: fs1, export: /e } }, for: 2s }
      - { id: b, fault: { nfs.unexport: { server: fs1, export: /f } }, for: 3s }
      - { id: late, offset: 500ms, wait: 1s }
",
        );
        let t = Timeline::resolve(&p);
        let idx = |id: &str| t.steps.iter().position(|s| s.step.id == id).unwrap();
        let mut s = Scheduler::new(&t, p.timeout);
        s.began(idx("steady"), 0);
        assert_eq!(s.planned_begin(idx("a")), None, "its group has not begun");
        s.ended(idx("steady"), 1000 * MS);
        s.began(idx("cut"), 1010 * MS);
        // Checked 20 ms late: both members are due, planned at the group's begin.
        assert_eq!(s.begins_due(1030 * MS), vec![idx("a"), idx("b")]);
        assert_eq!(s.planned_begin(idx("a")), Some(1010 * MS));
        assert_eq!(s.planned_begin(idx("late")), Some(1510 * MS));
        s.began(idx("a"), 1010 * MS);
        s.began(idx("b"), 1010 * MS);
        // Each heals `for` after it began, the shorter alone first.
        assert_eq!(s.ends_due(3009 * MS), Vec::<usize>::new());
        assert_eq!(s.ends_due(3010 * MS), vec![idx("a")]);
        assert_eq!(s.ends_due(4010 * MS), vec![idx("a"), idx("b")]);
    }
}
