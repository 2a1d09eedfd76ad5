//! Typed matchers evaluated over the run's journal.
//!
//! Event matchers (errno, kmsg) look at a window of steps; state matchers
//! (fs_state, mounted) look at probes the engine took when a step ended —
//! [`probes_at`] tells the engine which.

use crate::journal::{Event, Journal};
use crate::scenario::{Expectation, FsStateName, Ref, Scenario, errno_by_name, errno_name};
use serde::{Deserialize, Serialize};

/// The result of one expectation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    /// The expectation in words, e.g. "writer sees EIO during failover..after".
    pub expectation: String,
    pub passed: bool,
    /// The evidence: what was seen, or what was seen instead.
    pub detail: String,
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

/// The probes due when `step` ends; `last` says it is the timeline's last step
/// (state matchers without `at:` look there).
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

pub fn evaluate(s: &Scenario, journal: &Journal) -> Vec<Outcome> {
    let last_step = s.steps.last().map(|st| st.id.value.as_str()).unwrap_or("");
    s.expect
        .iter()
        .map(|e| match &e.value {
            Expectation::Errno {
                workload,
                errno,
                during,
            } => errno_seen(journal, &workload.value, &errno.value, during),
            Expectation::Kmsg { pattern, during } => kmsg_seen(journal, &pattern.value, during),
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
        })
        .collect()
}

/// How a window of steps reads in an expectation, e.g. "during failover..after".
fn describe_window(during: &Option<Vec<Ref>>) -> String {
    match during.as_deref() {
        None | Some([]) => "during the run".into(),
        Some([one]) => format!("during {}", one.value),
        Some([first, .., last]) => format!("during {}..{}", first.value, last.value),
    }
}

/// The [start, end) of a window in run time; end is open while a step never ended.
fn window(journal: &Journal, during: &Option<Vec<Ref>>) -> Option<(u64, u64)> {
    match during.as_deref() {
        None | Some([]) => Some((0, u64::MAX)),
        Some(steps) => {
            let (start, _) = journal.step_span(&steps[0].value)?;
            let end = journal
                .step_span(&steps[steps.len() - 1].value)
                .and_then(|(_, e)| e)
                .unwrap_or(u64::MAX);
            Some((start, end))
        }
    }
}

fn errno_seen(
    journal: &Journal,
    workload: &str,
    errno: &str,
    during: &Option<Vec<Ref>>,
) -> Outcome {
    let expectation = format!("{workload} sees {errno} {}", describe_window(during));
    let want = errno_by_name(errno);
    let Some((start, end)) = window(journal, during) else {
        return Outcome {
            expectation,
            passed: false,
            detail: "the window's steps never ran".into(),
        };
    };
    let mut ops = 0;
    let mut other = Vec::new();
    for e in &journal.events {
        let Event::Op {
            workload: w,
            seq,
            end_ns,
            errno: got,
            stage,
            ..
        } = e
        else {
            continue;
        };
        if w != workload || *end_ns < start || *end_ns >= end {
            continue;
        }
        ops += 1;
        match *got {
            Some(n) if Some(n) == want => {
                return Outcome {
                    expectation,
                    passed: true,
                    detail: format!(
                        "op {seq} failed with {errno} in {} at +{}",
                        stage.as_deref().unwrap_or("?"),
                        secs(*end_ns)
                    ),
                };
            }
            Some(n) => other.push(errno_name(n)),
            None => {}
        }
    }
    other.dedup();
    let detail = if other.is_empty() {
        format!("{ops} ops in the window, none failed")
    } else {
        format!("{ops} ops in the window; errors seen: {}", other.join(", "))
    };
    Outcome {
        expectation,
        passed: false,
        detail,
    }
}

fn kmsg_seen(journal: &Journal, pattern: &str, during: &Option<Vec<Ref>>) -> Outcome {
    let expectation = format!("kernel logs /{pattern}/ {}", describe_window(during));
    let re = regex::Regex::new(pattern).expect("validated when the scenario was loaded");
    let (first, last) = match during.as_deref() {
        None | Some([]) => (None, None),
        Some(steps) => (
            Some(steps[0].value.as_str()),
            Some(steps[steps.len() - 1].value.as_str()),
        ),
    };
    let lines = journal.kmsg_between(first, last);
    match lines.iter().find(|l| re.is_match(l)) {
        Some(line) => Outcome {
            expectation,
            passed: true,
            detail: format!("matched: {line}"),
        },
        None => Outcome {
            expectation,
            passed: false,
            detail: format!(
                "no match among {} kernel log lines in the window",
                lines.len()
            ),
        },
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
        Some(v) => Outcome {
            expectation,
            passed: v == want,
            detail: format!("observed {v}"),
        },
        None => Outcome {
            expectation,
            passed: false,
            detail: "never observed (the step did not end)".into(),
        },
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
