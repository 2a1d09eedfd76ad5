//! The resolved timeline: each step's anchor (run start, another step's end,
//! or its group's begin), offset and limit, with the times a plan can know
//! before anything runs. Pure, so `plan` shows exactly what `run` will do.

use crate::plan::{Action, Plan, Step};
use std::time::Duration;

/// When a step may begin (then its `offset` later).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// The start of the timeline.
    Start,
    /// When step `n` (index into [`Timeline::steps`]) ends.
    EndOf(usize),
    /// When the parallel group `n` begins.
    BeginOf(usize),
}

/// A step of the plan with what the timeline adds to it.
#[derive(Debug, Clone)]
pub struct Planned<'p> {
    pub step: &'p Step,
    pub anchor: Anchor,
    /// Begin and end relative to the timeline's start, when they do not
    /// depend on how long a command runs.
    pub begin: Option<Duration>,
    pub end: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct Timeline<'p> {
    pub steps: Vec<Planned<'p>>,
}

impl<'p> Timeline<'p> {
    pub fn resolve(plan: &'p Plan) -> Timeline<'p> {
        // Anchors: members begin with their group; other steps after the
        // named step, or after the previous step outside any group.
        let mut previous_top: Option<usize> = None;
        let steps = plan
            .steps
            .iter()
            .enumerate()
            .map(|(i, st)| {
                let anchor = match (st.group, st.after) {
                    (Some(g), _) => Anchor::BeginOf(g),
                    (None, Some(a)) => Anchor::EndOf(a),
                    (None, None) => previous_top.map_or(Anchor::Start, Anchor::EndOf),
                };
                if st.group.is_none() {
                    previous_top = Some(i);
                }
                Planned {
                    step: st,
                    anchor,
                    begin: None,
                    end: None,
                }
            })
            .collect();
        let mut t = Timeline { steps };
        t.estimate();
        t
    }

    /// The least time the timeline takes: the latest step end (or begin)
    /// that follows from fixed durations alone; commands and pauses add to
    /// it.
    pub fn known_length(&self) -> Duration {
        self.steps
            .iter()
            .filter_map(|p| p.end.or(p.begin))
            .max()
            .unwrap_or_default()
    }

    /// Fills in begin/end where they follow from fixed durations alone.
    fn estimate(&mut self) {
        // Anchors only point backwards (validation), except a group's end,
        // which waits for its children: iterate to a fixed point.
        for _ in 0..self.steps.len() + 1 {
            let mut changed = false;
            for i in 0..self.steps.len() {
                let base = match self.steps[i].anchor {
                    Anchor::Start => Some(Duration::ZERO),
                    Anchor::EndOf(n) => self.steps[n].end,
                    Anchor::BeginOf(n) => self.steps[n].begin,
                };
                let step = self.steps[i].step;
                let begin = base.map(|b| b + step.offset);
                let end = match &step.action {
                    Action::Wait(w) => begin.map(|b| b + *w),
                    Action::Fault { heal_after, .. } => {
                        begin.map(|b| b + heal_after.unwrap_or_default())
                    }
                    Action::Parallel(members) => {
                        let ends: Option<Vec<Duration>> =
                            members.iter().map(|&c| self.steps[c].end).collect();
                        ends.map(|e| e.into_iter().max().unwrap_or_default())
                    }
                    Action::Exec { .. } | Action::Pause { .. } => None,
                };
                if (begin, end) != (self.steps[i].begin, self.steps[i].end) {
                    self.steps[i].begin = begin;
                    self.steps[i].end = end;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(steps: &str) -> Plan {
        let text =
            format!("schema_version: 1\nid: t\ntitle: t\nhosts: {{ a: {{}} }}\nsteps:\n{steps}");
        crate::scenario::load_str(&text, "t.yaml").unwrap_or_else(|e| panic!("{e}"))
    }

    fn secs(t: &Timeline, id: &str) -> (Option<f64>, Option<f64>) {
        let p = t.steps.iter().find(|p| p.step.id == id).unwrap();
        (
            p.begin.map(|d| d.as_secs_f64()),
            p.end.map(|d| d.as_secs_f64()),
        )
    }

    #[test]
    fn known_length_is_the_latest_fixed_end() {
        let s = scenario(
            "  - { id: a, wait: 1s }\n  - { id: b, exec: { host: a, command: [true] } }\n  - { id: c, after: a, wait: 4s }\n",
        );
        assert_eq!(Timeline::resolve(&s).known_length(), Duration::from_secs(5));
    }

    #[test]
    fn steps_follow_the_previous_one_by_default() {
        let s = scenario("  - { id: a, wait: 1s }\n  - { id: b, wait: 2s }\n");
        let t = Timeline::resolve(&s);
        assert_eq!(t.steps[1].anchor, Anchor::EndOf(0));
        assert_eq!(secs(&t, "b"), (Some(1.0), Some(3.0)));
    }

    #[test]
    fn after_and_offset_overlap_steps() {
        let s = scenario(
            "  - { id: steady, wait: 2s }\n  - { id: block, wait: 6s }\n  \
             - { id: inner, after: steady, offset: 1s, wait: 3s }\n  - { id: last, wait: 1s }\n",
        );
        let t = Timeline::resolve(&s);
        assert_eq!(secs(&t, "inner"), (Some(3.0), Some(6.0)));
        // The default anchor is the previous step *as written*: inner.
        assert_eq!(secs(&t, "last"), (Some(6.0), Some(7.0)));
    }

    #[test]
    fn a_parallel_group_ends_with_its_longest_step() {
        let s = scenario(
            "  - { id: a, wait: 1s }\n  - id: g\n    parallel:\n      - { id: x, wait: 2s }\n      \
             - { id: y, offset: 500ms, wait: 3s }\n  - { id: z, wait: 1s }\n",
        );
        let t = Timeline::resolve(&s);
        assert_eq!(secs(&t, "x"), (Some(1.0), Some(3.0)));
        assert_eq!(secs(&t, "y"), (Some(1.5), Some(4.5)));
        assert_eq!(secs(&t, "g"), (Some(1.0), Some(4.5)));
        assert_eq!(secs(&t, "z"), (Some(4.5), Some(5.5)));
    }

    #[test]
    fn an_exec_step_has_no_known_end() {
        let s = scenario(
            "  - id: e\n    exec: { host: a, command: [true] }\n  - { id: w, wait: 1s }\n",
        );
        let t = Timeline::resolve(&s);
        assert_eq!(secs(&t, "e"), (Some(0.0), None));
        assert_eq!(secs(&t, "w"), (None, None));
    }
}
