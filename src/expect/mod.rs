//! Typed matchers evaluated over the run's journal.
//!
//! Event matchers (errno, no_errors, hang, no_hang, stalls_at_least,
//! resumes_within, kmsg) look at a window of steps; state matchers
//! (fs_state, mounted) look at probes the engine took when a step ended —
//! [`probes_at`] tells the engine which; `data` and `exit_code` look at what
//! the engine recorded for them. The kernel log deny-list runs always.

mod kmsg;
mod window;
mod workload;

pub use kmsg::{DENY_LIST, deny_list};

use crate::journal::{Event, Journal};
use crate::scenario::{Expectation, FsStateName, Ref, Scenario};
use serde::{Deserialize, Serialize};
use window::Window;

/// The result of one expectation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    /// The expectation in words, e.g. "writer sees EIO during failover..after".
    pub expectation: String,
    pub passed: bool,
    /// The evidence: what was seen, or what was seen instead.
    pub detail: String,
}

impl Outcome {
    fn new(expectation: String, passed: bool, detail: String) -> Outcome {
        Outcome {
            expectation,
            passed,
            detail,
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
pub fn probes_at(s: &Scenario, step: &str, last: bool) -> Vec<Probe> {
    let due = |at: &Option<Ref>| match at {
        Some(a) => a.value == step,
        None => last,
    };
    let mut probes = Vec::new();
    for e in &s.expect {
        let probe = match &e.value {
            Expectation::FsState { fs, at, .. } if due(at) => Probe::FsState {
                image: fs.value.clone(),
            },
            Expectation::Mounted { mount, at, .. } if due(at) => Probe::Mounted {
                mount: mount.value.clone(),
            },
            _ => continue,
        };
        if !probes.contains(&probe) {
            probes.push(probe);
        }
    }
    probes
}

/// Every expectation's outcome, then the kernel log deny-list's.
pub fn evaluate(s: &Scenario, journal: &Journal) -> Vec<Outcome> {
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
    let mut outcomes: Vec<Outcome> = s
        .expect
        .iter()
        .map(|e| {
            let e = &e.value;
            let w = e.workload().map(|w| w.value.as_str()).unwrap_or("");
            let win = e.window().map(|(d, a)| Window::new(d, a));
            match e {
                Expectation::Errno { errno, .. } => {
                    workload::errno_seen(journal, w, &errno.value, &win.expect("event matcher"))
                }
                Expectation::NoErrors { .. } => {
                    workload::no_errors(journal, w, &win.expect("event matcher"))
                }
                Expectation::Hang { state, wchan, .. } => workload::hang(
                    journal,
                    w,
                    *state,
                    wchan.as_ref().map(|p| p.value.as_str()),
                    &win.expect("event matcher"),
                ),
                Expectation::NoHang { .. } => {
                    workload::no_hang(journal, w, &win.expect("event matcher"))
                }
                Expectation::StallsAtLeast { duration, .. } => {
                    workload::stalls_at_least(journal, w, duration.0, &win.expect("event matcher"))
                }
                Expectation::ResumesWithin {
                    duration, after, ..
                } => workload::resumes_within(journal, w, duration.0, &after.value),
                Expectation::Data { .. } => workload::data(journal, w),
                Expectation::ExitCode { step, code } => exit_code(journal, &step.value, *code),
                Expectation::Kmsg {
                    pattern, absent, ..
                } => kmsg::kmsg_seen(
                    journal,
                    &pattern.value,
                    *absent,
                    &win.expect("event matcher"),
                ),
                Expectation::FsState { fs, state, at } => {
                    let want = fs_state_word(*state);
                    state_is(
                        journal,
                        &format!("{} is {want}", fs.value),
                        &Probe::FsState {
                            image: fs.value.clone(),
                        }
                        .subject(),
                        want,
                        at.as_ref().map_or(last_step, |a| a.value.as_str()),
                    )
                }
                Expectation::Mounted { mount, present, at } => {
                    let word = if *present { "listed" } else { "not listed" };
                    state_is(
                        journal,
                        &format!("mount {} is {word}", mount.value),
                        &Probe::Mounted {
                            mount: mount.value.clone(),
                        }
                        .subject(),
                        &present.to_string(),
                        at.as_ref().map_or(last_step, |a| a.value.as_str()),
                    )
                }
            }
        })
        .collect();
    outcomes.push(kmsg::deny_list(s, journal));
    outcomes
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
