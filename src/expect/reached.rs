//! Whether a stopped run got far enough to judge an expectation. After an
//! abort, a matcher whose window never began has no evidence either way:
//! its outcome is "not evaluated", not FAIL (issue 13: a setup ERROR listed
//! "the command never ended" for a command that never started).

use super::Probe;
use crate::journal::{Event, Journal};
use crate::plan::Expectation;

/// What the run stopped before, e.g. "step failover began"; None when the
/// expectation's window was reached and its outcome stands.
pub(super) fn unreached(e: &Expectation, journal: &Journal, last_step: &str) -> Option<String> {
    let began = |step: &str| journal.step_span(step).is_some();
    let ended = |step: &str| {
        journal
            .step_span(step)
            .is_some_and(|(_, end)| end.is_some())
    };
    let timeline_began = journal
        .events
        .iter()
        .any(|e| matches!(e, Event::StepBegin { .. }));
    let window = |w: &crate::plan::Window| match (&w.during, &w.after) {
        (Some((first, _)), _) => (!began(first)).then(|| format!("step {first} began")),
        (None, Some(a)) => (!ended(a)).then(|| format!("step {a} ended")),
        (None, None) => (!timeline_began).then(|| "the timeline began".to_string()),
    };
    let observed = |probe: Probe, at: &Option<String>| {
        let step = at.as_deref().unwrap_or(last_step);
        let subject = probe.subject();
        let seen = journal.events.iter().any(|e| {
            matches!(e, Event::Observed { step: s, subject: sub, .. } if s == step && *sub == subject)
        });
        match at {
            _ if seen => None,
            Some(a) => Some(format!("step {a} ended")),
            None => Some("the last step ended".to_string()),
        }
    };
    match e {
        Expectation::Errno { window: w, .. }
        | Expectation::NoErrors { window: w, .. }
        | Expectation::Kmsg { window: w, .. }
        | Expectation::Hang { window: w, .. }
        | Expectation::NoHang { window: w, .. }
        | Expectation::StallsAtLeast { window: w, .. } => window(w),
        Expectation::ResumesWithin { after, .. } | Expectation::NeverResumes { after, .. } => {
            (!ended(after)).then(|| format!("step {after} ended"))
        }
        Expectation::MutualExclusion { .. } => {
            (!timeline_began).then(|| "the timeline began".to_string())
        }
        // A step's or fault's moment that never came is no evidence.
        Expectation::Order { first, then, .. } => [first, then]
            .into_iter()
            .find_map(|r| match r {
                crate::plan::EventRef::Step { step, .. }
                | crate::plan::EventRef::Fault { step, .. } => {
                    (!began(step)).then(|| format!("step {step} began"))
                }
                crate::plan::EventRef::Op { .. } => None,
            })
            .or_else(|| (!timeline_began).then(|| "the timeline began".to_string())),
        // Workloads start with the timeline; once it ran, a file never
        // read back is a failure of its own.
        Expectation::Data { .. } => (!timeline_began).then(|| "the timeline began".to_string()),
        Expectation::ExitCode { step, .. } => (!began(step)).then(|| format!("step {step} began")),
        Expectation::FsState { image, at, .. } => observed(
            Probe::FsState {
                image: image.clone(),
            },
            at,
        ),
        Expectation::MountFails { .. } => (!timeline_began).then(|| "setup ended".to_string()),
        Expectation::Mounted { mount, at, .. } => observed(
            Probe::Mounted {
                mount: mount.clone(),
            },
            at,
        ),
    }
}

#[cfg(test)]
mod tests {
    use crate::expect::evaluate;
    use crate::journal::{Event, Journal};
    use crate::plan::KernelVersion;

    fn plan() -> crate::plan::Plan {
        let text = "schema_version: 1\nid: t\ntitle: t\nhosts: { a: {} }
workloads:
  - { id: w, host: a, op: append, path: /f, every: 20ms }
steps:
  - { id: first, wait: 1s }
  - { id: probe, exec: { host: a, command: ['true'] } }
expect:
  - no_errors: { workload: w, during: [first, first] }
  - exit_code: { step: probe, code: 0 }
  - no_errors: { workload: w }
";
        crate::scenario::load_str(text, "t.yaml").unwrap_or_else(|e| panic!("{e}"))
    }

    fn journal(events: Vec<Event>) -> Journal {
        Journal {
            run_id: "r".into(),
            events,
        }
    }

    fn aborted() -> Event {
        Event::Aborted {
            reason: "setup: mount share".into(),
            t_ns: 5,
        }
    }

    #[test]
    fn a_run_stopped_at_setup_evaluates_nothing() {
        let outcomes = evaluate(
            &plan(),
            &journal(vec![aborted()]),
            &KernelVersion::of("6.1"),
        );
        for o in &outcomes[..3] {
            assert!(!o.evaluated && !o.passed, "{o:?}");
        }
        assert_eq!(
            outcomes[1].detail,
            "not evaluated: the run stopped before step probe began"
        );
        assert_eq!(
            outcomes[2].detail,
            "not evaluated: the run stopped before the timeline began"
        );
        assert!(
            outcomes[3].evaluated,
            "the kernel log deny-list always runs"
        );
    }

    #[test]
    fn a_run_stopped_midway_judges_the_windows_that_began() {
        let step = |begin: bool, step: &str, t_ns| {
            let step = step.to_string();
            if begin {
                Event::StepBegin { step, t_ns }
            } else {
                Event::StepEnd { step, t_ns }
            }
        };
        let j = journal(vec![
            step(true, "first", 1),
            step(false, "first", 2),
            aborted(),
        ]);
        let outcomes = evaluate(&plan(), &j, &KernelVersion::of("6.1"));
        assert!(outcomes[0].evaluated && outcomes[0].passed);
        assert!(!outcomes[1].evaluated, "{:?}", outcomes[1]);
        assert!(outcomes[2].evaluated);
    }

    #[test]
    fn without_an_abort_missing_evidence_still_fails() {
        let outcomes = evaluate(&plan(), &journal(Vec::new()), &KernelVersion::of("6.1"));
        assert!(outcomes[1].evaluated && !outcomes[1].passed);
        assert_eq!(outcomes[1].detail, "the command never ended");
    }
}
