//! Typed matchers evaluated over the run's journal.
//!
//! Event matchers (errno, no_errors, hang, no_hang, stalls_at_least,
//! resumes_within, kmsg) look at a window of steps; state matchers
//! (fs_state, mounted) look at probes the engine took when a step ended —
//! [`probes_at`] tells the engine which; `data` and `exit_code` look at what
//! the engine recorded for them. History checkers (mutual_exclusion, order,
//! never_resumes) look at the whole journal. The kernel log deny-list runs
//! always.

mod history;
mod kmsg;
mod reached;
mod window;
mod workload;

pub use kmsg::{DENY_LIST, deny_list};

use crate::journal::{Event, Journal};
use crate::plan::{Expectation, FsStateName, KernelVersion, Plan};
use serde::{Deserialize, Serialize};
use window::Window;

/// The result of one expectation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    /// The expectation in words, e.g. "writer sees EIO during failover..after".
    pub expectation: String,
    pub passed: bool,
    /// False when the run stopped (ERROR, or a step past its timeout)
    /// before the expectation's window began: there was nothing to judge,
    /// so it neither passed nor failed (`passed` is false, `detail` says
    /// what the run stopped before).
    #[serde(default = "yes")]
    pub evaluated: bool,
    /// The evidence: what was seen, or what was seen instead.
    pub detail: String,
}

fn yes() -> bool {
    true
}

impl Outcome {
    fn new(expectation: String, passed: bool, detail: String) -> Outcome {
        Outcome {
            expectation,
            passed,
            evaluated: true,
            detail,
        }
    }

    /// This outcome set aside: the run stopped before `before`.
    fn not_evaluated(self, before: &str) -> Outcome {
        Outcome {
            passed: false,
            evaluated: false,
            detail: format!("not evaluated: the run stopped before {before}"),
            ..self
        }
    }
}

/// A state the engine must look at when a step ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// The filesystem state of an image's mount.
    FsState { image: String },
    /// Whether a mount (image or NFS mount id) is listed in mountinfo.
    Mounted { mount: String },
}

impl Probe {
    /// The subject under which the engine records the observation.
    pub fn subject(&self) -> String {
        match self {
            Probe::FsState { image } => format!("fs_state:{image}"),
            Probe::Mounted { mount } => format!("mounted:{mount}"),
        }
    }
}

/// The probes due when `step` ends; `last` says it is the last step of the
/// timeline to end (state matchers without `at:` look there).
pub fn probes_at(plan: &Plan, step: &str, last: bool) -> Vec<Probe> {
    let due = |at: &Option<String>| match at {
        Some(a) => a == step,
        None => last,
    };
    let mut probes = Vec::new();
    for e in &plan.expect {
        let probe = match e {
            Expectation::FsState { image, at, .. } if due(at) => Probe::FsState {
                image: image.clone(),
            },
            Expectation::Mounted { mount, at, .. } if due(at) => Probe::Mounted {
                mount: mount.clone(),
            },
            _ => continue,
        };
        if !probes.contains(&probe) {
            probes.push(probe);
        }
    }
    probes
}

/// Every outcome of an expectation that applies on `kernel` (the release
/// the run ran on), then the kernel log deny-list's.
pub fn evaluate(plan: &Plan, journal: &Journal, kernel: &KernelVersion) -> Vec<Outcome> {
    // State probes without `at:` were taken when the last step ended.
    let last_step = journal
        .events
        .iter()
        .rev()
        .find_map(|e| match e {
            Event::StepEnd { step, .. } => Some(step.as_str()),
            _ => None,
        })
        .unwrap_or("");
    let aborted = journal
        .events
        .iter()
        .any(|e| matches!(e, Event::Aborted { .. }));
    let mut outcomes: Vec<Outcome> = plan
        .expect
        .iter()
        .filter(|e| e.applies_on(kernel))
        .map(|e| (e, judge(e, journal, last_step)))
        .map(|(e, o)| match reached::unreached(e, journal, last_step) {
            Some(before) if aborted => o.not_evaluated(&before),
            _ => o,
        })
        .collect();
    outcomes.push(kmsg::deny_list(plan, journal));
    outcomes
}

fn judge(e: &Expectation, journal: &Journal, last_step: &str) -> Outcome {
    match e {
        Expectation::Errno {
            workload,
            errno,
            window,
        } => workload::errno_seen(journal, workload, *errno, &Window::new(window)),
        Expectation::NoErrors { workload, window } => {
            workload::no_errors(journal, workload, &Window::new(window))
        }
        Expectation::Hang {
            workload,
            state,
            wchan,
            stack,
            window,
            kernel,
        } => {
            let mut o = workload::hang(
                journal,
                workload,
                workload::HungAs {
                    state: *state,
                    wchan: wchan.as_ref(),
                    stack: stack.as_ref(),
                },
                &Window::new(window),
            );
            if !kernel.is_every_kernel() {
                o.expectation.push_str(&format!(" (on {kernel})"));
            }
            o
        }
        Expectation::NoHang { workload, window } => {
            workload::no_hang(journal, workload, &Window::new(window))
        }
        Expectation::StallsAtLeast {
            workload,
            duration,
            window,
        } => workload::stalls_at_least(journal, workload, *duration, &Window::new(window)),
        Expectation::ResumesWithin {
            workload,
            duration,
            after,
        } => workload::resumes_within(journal, workload, *duration, after),
        Expectation::Data { workload, .. } => workload::data(journal, workload),
        Expectation::ExitCode { step, code } => exit_code(journal, step, *code),
        Expectation::MountFails { mount, errno } => mount_fails(journal, mount, *errno),
        Expectation::Kmsg {
            pattern,
            absent,
            window,
        } => kmsg::kmsg_seen(journal, pattern, *absent, &Window::new(window)),
        Expectation::FsState { image, state, at } => {
            let want = fs_state_word(*state);
            state_is(
                journal,
                &format!("{image} is {want}"),
                &Probe::FsState {
                    image: image.clone(),
                }
                .subject(),
                want,
                at.as_deref().unwrap_or(last_step),
            )
        }
        Expectation::MutualExclusion { workloads } => history::mutual_exclusion(journal, workloads),
        Expectation::Order {
            first,
            then,
            at_least,
            at_most,
        } => history::order(journal, first, then, *at_least, *at_most),
        Expectation::NeverResumes { workload, after } => {
            history::never_resumes(journal, workload, after)
        }
        Expectation::Mounted { mount, present, at } => {
            let word = if *present { "listed" } else { "not listed" };
            state_is(
                journal,
                &format!("mount {mount} is {word}"),
                &Probe::Mounted {
                    mount: mount.clone(),
                }
                .subject(),
                &present.to_string(),
                at.as_deref().unwrap_or(last_step),
            )
        }
    }
}

fn mount_fails(journal: &Journal, mount: &str, want: Option<i32>) -> Outcome {
    let name = crate::errno::name;
    let expectation = match want {
        Some(e) => format!("mount {mount} is refused with {}", name(e)),
        None => format!("mount {mount} is refused"),
    };
    let refused = journal.events.iter().find_map(|e| match e {
        Event::MountRefused {
            mount: m,
            errno,
            error,
        } if m == mount => Some((*errno, error)),
        _ => None,
    });
    match refused {
        Some((errno, error)) if want.is_none_or(|w| w == errno) => {
            Outcome::new(expectation, true, format!("refused at setup: {error}"))
        }
        Some((_, error)) => Outcome::new(expectation, false, format!("refused otherwise: {error}")),
        None => Outcome::new(expectation, false, "mounted at setup".into()),
    }
}

fn exit_code(journal: &Journal, step: &str, want: i32) -> Outcome {
    let expectation = format!("{step} exits with code {want}");
    let seen = journal.events.iter().find_map(|e| match e {
        Event::Exec {
            step: s,
            code,
            signal,
            output,
            ..
        } if s == step => Some((*code, *signal, output)),
        _ => None,
    });
    match seen {
        Some((Some(code), _, output)) => Outcome::new(
            expectation,
            code == want,
            format!("exited with {code}{}", output_tail(output)),
        ),
        Some((None, signal, _)) => Outcome::new(
            expectation,
            false,
            format!("killed by signal {}", signal.unwrap_or(0)),
        ),
        None => Outcome::new(expectation, false, "the command never ended".into()),
    }
}

fn output_tail(output: &str) -> String {
    let last = output.lines().last().unwrap_or("").trim();
    if last.is_empty() {
        String::new()
    } else {
        format!("; last output line: {last}")
    }
}

fn state_is(
    journal: &Journal,
    expectation: &str,
    subject: &str,
    want: &str,
    step: &str,
) -> Outcome {
    let seen = journal.events.iter().find_map(|e| match e {
        Event::Observed {
            step: s,
            subject: sub,
            value,
            ..
        } if s == step && sub == subject => Some(value.as_str()),
        _ => None,
    });
    let expectation = format!("{expectation} when {step} ends");
    match seen {
        Some(v) => Outcome::new(expectation, v == want, format!("observed {v}")),
        None => Outcome::new(
            expectation,
            false,
            "never observed (the step did not end)".into(),
        ),
    }
}

fn secs(ns: u64) -> String {
    format!("{:.2}s", ns as f64 / 1e9)
}

/// The word the engine records for a filesystem state, as scenarios spell it.
pub fn fs_state_word(state: FsStateName) -> &'static str {
    match state {
        FsStateName::Ok => "ok",
        FsStateName::ReadOnly => "read_only",
        FsStateName::Shutdown => "shutdown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mount_refused_with_another_errno_or_not_at_all_fails() {
        let refused = |errno| Journal {
            run_id: "r".into(),
            events: vec![Event::MountRefused {
                mount: "m".into(),
                errno,
                error: format!("cannot mount …: {}", crate::errno::name(errno)),
            }],
        };
        let o = mount_fails(&refused(libc::EACCES), "m", Some(libc::EACCES));
        assert!(o.passed, "{o:?}");
        assert!(mount_fails(&refused(libc::EACCES), "m", None).passed);
        let o = mount_fails(&refused(libc::ETIMEDOUT), "m", Some(libc::EACCES));
        assert_eq!(
            (o.passed, o.detail.as_str()),
            (false, "refused otherwise: cannot mount …: ETIMEDOUT")
        );
        let o = mount_fails(&refused(libc::EACCES), "other", None);
        assert_eq!((o.passed, o.detail.as_str()), (false, "mounted at setup"));
    }

    /// client-crash-lock-freed-by-notify's shape: a blocked flock sleeps in
    /// nlmclnt_block on 6.1 and in nlmclnt_wait on 6.12.
    fn plan() -> Plan {
        let text = "schema_version: 1\nid: t\ntitle: t\nhosts: { a: {} }
workloads:
  - { id: w, host: a, op: append, path: /f, every: 20ms }
steps:
  - { id: held, wait: 1s }
expect:
  - hang: { workload: w, state: S, wchan: nlmclnt_block, kernel: { until: '6.12' } }
  - hang: { workload: w, state: S, wchan: nlmclnt_wait, kernel: { from: '6.12' } }
";
        crate::scenario::load_str(text, "t.yaml").unwrap_or_else(|e| panic!("{e}"))
    }

    fn hung_in(wchan: &str) -> Journal {
        Journal {
            run_id: "r".into(),
            events: vec![
                Event::StepBegin {
                    step: "held".into(),
                    t_ns: 1,
                },
                Event::Indeterminate {
                    workload: "w".into(),
                    seq: 1,
                    start_ns: 2,
                    t_ns: 3,
                    state: "S".into(),
                    wchan: wchan.into(),
                    stack: None,
                    mounts: Vec::new(),
                },
                Event::StepEnd {
                    step: "held".into(),
                    t_ns: 4,
                },
            ],
        }
    }

    #[test]
    fn a_hang_expectation_is_judged_only_on_its_kernels() {
        let (v61, v612) = (
            KernelVersion::of("6.1.0-57-amd64"),
            KernelVersion::of("6.12.118+deb12-amd64"),
        );
        for (kernel, wchan, other) in [
            (&v61, "nlmclnt_block", "nlmclnt_wait"),
            (&v612, "nlmclnt_wait", "nlmclnt_block"),
        ] {
            let outcomes = evaluate(&plan(), &hung_in(wchan), kernel);
            // One hang expectation, then the deny-list.
            assert_eq!(outcomes.len(), 2, "{outcomes:?}");
            assert!(outcomes[0].passed, "{outcomes:?}");
            assert!(outcomes[0].expectation.contains(wchan), "{outcomes:?}");
            assert!(
                outcomes[0].expectation.contains("(on kernel"),
                "{outcomes:?}"
            );
            // The other kernel's behaviour on this kernel is a failure.
            let wrong = evaluate(&plan(), &hung_in(other), kernel);
            assert!(!wrong[0].passed, "{wrong:?}");
        }
    }
}
