//! Matchers over a workload's ops: errors, hangs, stalls, recovery, data.

use super::window::Window;
use super::{Outcome, secs};
use crate::errno;
use crate::journal::{Event, Journal};
use crate::plan::TaskState;
use regex::Regex;

/// A finished op: seq, start, end, errno, stage, exit code.
struct Op<'j> {
    seq: u64,
    end: u64,
    errno: Option<i32>,
    stage: Option<&'j str>,
    exit_code: Option<i32>,
}

impl Op<'_> {
    fn failed(&self) -> bool {
        self.errno.is_some() || self.exit_code.is_some_and(|c| c != 0)
    }

    fn failure(&self) -> String {
        match (self.errno, self.exit_code) {
            (Some(n), _) => format!("{} in {}", errno::name(n), self.stage.unwrap_or("?")),
            (None, Some(c)) => format!("exit code {c}"),
            _ => "success".into(),
        }
    }
}

fn ops<'j>(journal: &'j Journal, workload: &'j str) -> impl Iterator<Item = Op<'j>> + 'j {
    journal.events.iter().filter_map(move |e| match e {
        Event::Op {
            workload: w,
            seq,
            start_ns,
            end_ns,
            errno,
            stage,
            exit_code,
            ..
        } if w == workload => Some(Op {
            seq: *seq,
            end: *end_ns,
            errno: *errno,
            stage: stage.as_deref(),
            exit_code: *exit_code,
        }),
        _ => None,
    })
}

const NEVER_RAN: &str = "the window's steps never ran";

pub fn errno_seen(journal: &Journal, workload: &str, want: i32, win: &Window) -> Outcome {
    let errno = errno::name(want);
    let expectation = format!("{workload} sees {errno} {}", win.describe());
    let Some((start, end)) = win.span(journal) else {
        return Outcome::new(expectation, false, NEVER_RAN.into());
    };
    let mut count = 0;
    let mut other = Vec::new();
    for op in ops(journal, workload).filter(|op| op.end >= start && op.end < end) {
        count += 1;
        match op.errno {
            Some(n) if n == want => {
                return Outcome::new(
                    expectation,
                    true,
                    format!(
                        "op {} failed with {errno} in {} at +{}",
                        op.seq,
                        op.stage.unwrap_or("?"),
                        secs(op.end)
                    ),
                );
            }
            Some(n) => other.push(errno::name(n)),
            None => {}
        }
    }
    other.dedup();
    let detail = if other.is_empty() {
        format!("{count} ops in the window, none failed")
    } else {
        format!(
            "{count} ops in the window; errors seen: {}",
            other.join(", ")
        )
    };
    Outcome::new(expectation, false, detail)
}

pub fn no_errors(journal: &Journal, workload: &str, win: &Window) -> Outcome {
    let expectation = format!("{workload} sees no errors {}", win.describe());
    let Some((start, end)) = win.span(journal) else {
        return Outcome::new(expectation, false, NEVER_RAN.into());
    };
    let in_window: Vec<Op> = ops(journal, workload)
        .filter(|op| op.end >= start && op.end < end)
        .collect();
    match in_window.iter().find(|op| op.failed()) {
        Some(op) => Outcome::new(
            expectation,
            false,
            format!(
                "op {} failed: {} at +{}",
                op.seq,
                op.failure(),
                secs(op.end)
            ),
        ),
        None => Outcome::new(
            expectation,
            true,
            format!("{} ops in the window, all succeeded", in_window.len()),
        ),
    }
}

/// An op of `workload` past its deadline inside the window.
struct Hung<'j> {
    seq: u64,
    started: u64,
    sampled: u64,
    state: &'j str,
    wchan: &'j str,
    stack: Option<&'j str>,
}

fn hung<'j>(
    journal: &'j Journal,
    workload: &'j str,
    (start, end): (u64, u64),
) -> impl Iterator<Item = Hung<'j>> + 'j {
    journal.events.iter().filter_map(move |e| match e {
        Event::Indeterminate {
            workload: w,
            seq,
            start_ns,
            t_ns,
            state,
            wchan,
            stack,
        } if w == workload && *t_ns >= start && *start_ns < end => Some(Hung {
            seq: *seq,
            started: *start_ns,
            sampled: *t_ns,
            state,
            wchan,
            stack: stack.as_deref(),
        }),
        _ => None,
    })
}

/// What a `hang` expectation asks of the hung task's sample.
pub struct HungAs<'e> {
    pub state: Option<TaskState>,
    pub wchan: Option<&'e Regex>,
    pub stack: Option<&'e Regex>,
}

pub fn hang(journal: &Journal, workload: &str, want: HungAs, win: &Window) -> Outcome {
    let mut wanted = String::new();
    if let Some(s) = want.state {
        wanted.push_str(&format!(" in state {s:?}"));
    }
    if let Some(w) = want.wchan {
        wanted.push_str(&format!(" sleeping in /{w}/"));
    }
    if let Some(k) = want.stack {
        wanted.push_str(&format!(" with /{k}/ on its kernel stack"));
    }
    let expectation = format!("{workload} hangs{wanted} {}", win.describe());
    let Some(span) = win.span(journal) else {
        return Outcome::new(expectation, false, NEVER_RAN.into());
    };
    let mut seen = Vec::new();
    for h in hung(journal, workload, span) {
        let state_ok = want
            .state
            .is_none_or(|s| h.state.starts_with(&format!("{s:?}")));
        let wchan_ok = want.wchan.is_none_or(|re| re.is_match(h.wchan));
        let stack_ok = want
            .stack
            .is_none_or(|re| h.stack.is_some_and(|k| re.is_match(k)));
        let mut what = format!(
            "op {} past its deadline at +{}: state {} in {}",
            h.seq,
            secs(h.sampled),
            h.state,
            h.wchan
        );
        if want.stack.is_some() {
            // The functions, not their offsets: `nfs_match_client+0x1d2/0x2a0`.
            let functions: Vec<&str> = h
                .stack
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.split_whitespace().nth(1)?.split('+').next())
                .collect();
            what.push_str(&format!(", stack [{}]", functions.join(" < ")));
        }
        if state_ok && wchan_ok && stack_ok {
            return Outcome::new(
                expectation,
                true,
                format!("{what} (started +{})", secs(h.started)),
            );
        }
        seen.push(what);
    }
    let detail = if seen.is_empty() {
        "no op outlived its deadline in the window".into()
    } else {
        format!("hung, but not as expected: {}", seen.join("; "))
    };
    Outcome::new(expectation, false, detail)
}

pub fn no_hang(journal: &Journal, workload: &str, win: &Window) -> Outcome {
    let expectation = format!("{workload} does not hang {}", win.describe());
    let Some(span) = win.span(journal) else {
        return Outcome::new(expectation, false, NEVER_RAN.into());
    };
    match hung(journal, workload, span).next() {
        Some(h) => Outcome::new(
            expectation,
            false,
            format!(
                "op {} past its deadline at +{}: state {} in {}",
                h.seq,
                secs(h.sampled),
                h.state,
                h.wchan
            ),
        ),
        None => Outcome::new(
            expectation,
            true,
            "every op ended within its deadline".into(),
        ),
    }
}

/// The longest stretch of the window in which no op of the workload
/// completed (successfully or not): [from, to).
fn longest_stall(journal: &Journal, workload: &str, (start, end): (u64, u64)) -> (u64, u64) {
    let end = end.min(journal.last_t());
    let mut points: Vec<u64> = ops(journal, workload)
        .map(|op| op.end)
        .filter(|t| *t > start && *t < end)
        .collect();
    points.sort_unstable();
    points.insert(0, start);
    points.push(end.max(start));
    points
        .windows(2)
        .map(|w| (w[0], w[1]))
        .max_by_key(|(a, b)| b - a)
        .unwrap_or((start, start))
}

pub fn stalls_at_least(
    journal: &Journal,
    workload: &str,
    at_least: std::time::Duration,
    win: &Window,
) -> Outcome {
    let expectation = format!(
        "{workload} stalls at least {} {}",
        humantime::format_duration(at_least),
        win.describe()
    );
    let Some(span) = win.span(journal) else {
        return Outcome::new(expectation, false, NEVER_RAN.into());
    };
    let (from, to) = longest_stall(journal, workload, span);
    Outcome::new(
        expectation,
        to - from >= at_least.as_nanos() as u64,
        format!(
            "longest stretch without a completed op: {} (+{}..+{})",
            secs(to - from),
            secs(from),
            secs(to)
        ),
    )
}

pub fn resumes_within(
    journal: &Journal,
    workload: &str,
    within: std::time::Duration,
    after: &str,
) -> Outcome {
    let expectation = format!(
        "{workload} resumes within {} after {after}",
        humantime::format_duration(within)
    );
    let Some((_, Some(healed))) = journal.step_span(after) else {
        return Outcome::new(expectation, false, format!("step {after} never ended"));
    };
    match ops(journal, workload).find(|op| op.end >= healed && !op.failed()) {
        Some(op) => {
            let took = op.end - healed;
            Outcome::new(
                expectation,
                took <= within.as_nanos() as u64,
                format!("op {} succeeded {} after {after} ended", op.seq, secs(took)),
            )
        }
        None => Outcome::new(
            expectation,
            false,
            format!("no op succeeded after {after} ended (at +{})", secs(healed)),
        ),
    }
}

pub fn data(journal: &Journal, workload: &str) -> Outcome {
    let expectation = format!("every acknowledged record of {workload} is intact");
    let verified = journal.events.iter().find_map(|e| match e {
        Event::Verified {
            workload: w,
            acknowledged,
            intact,
            missing,
            corrupt,
            error,
        } if w == workload => Some((*acknowledged, *intact, missing, *corrupt, error)),
        _ => None,
    });
    match verified {
        None => Outcome::new(expectation, false, "the file was never read back".into()),
        Some((_, _, _, _, Some(err))) => {
            Outcome::new(expectation, false, format!("cannot verify: {err}"))
        }
        Some((0, ..)) => Outcome::new(
            expectation,
            false,
            "no op was acknowledged, so nothing could be verified".into(),
        ),
        Some((acked, intact, missing, corrupt, None)) => Outcome::new(
            expectation,
            acked == intact,
            if missing.is_empty() {
                format!(
                    "{intact} of {acked} acknowledged records intact ({corrupt} damaged records in the file)"
                )
            } else {
                let seqs: Vec<String> = missing.iter().map(u64::to_string).collect();
                format!(
                    "{intact} of {acked} acknowledged records intact; missing or damaged: {}",
                    seqs.join(", ")
                )
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal_with_hung_mount() -> Journal {
        Journal {
            run_id: "r".into(),
            events: vec![Event::Indeterminate {
                workload: "mounts".into(),
                seq: 0,
                start_ns: 1_000_000_000,
                t_ns: 6_000_000_000,
                state: "D".into(),
                wchan: "nfs_wait_client_init_complete".into(),
                stack: Some(
                    "[<0>] nfs_wait_client_init_complete+0x5b/0xa0 [nfs]\n\
                     [<0>] nfs_match_client+0x1d2/0x2a0 [nfs]\n\
                     [<0>] nfs_get_client+0x60/0x3b0 [nfs]\n"
                        .into(),
                ),
            }],
        }
    }

    #[test]
    fn hang_matches_the_kernel_stack_and_names_its_functions() {
        let j = journal_with_hung_mount();
        let whole = crate::plan::Window {
            during: None,
            after: None,
        };
        let wchan = Regex::new("nfs_wait_client_init").unwrap();
        let on_stack = Regex::new("nfs_match_client").unwrap();
        let want = |stack| HungAs {
            state: Some(TaskState::D),
            wchan: Some(&wchan),
            stack,
        };
        let o = hang(&j, "mounts", want(Some(&on_stack)), &Window::new(&whole));
        assert!(o.passed, "{o:?}");
        assert!(
            o.detail.contains(
                "stack [nfs_wait_client_init_complete < nfs_match_client < nfs_get_client]"
            ),
            "{}",
            o.detail
        );
        let absent = Regex::new("nfs4_discover_server_trunking").unwrap();
        let o = hang(&j, "mounts", want(Some(&absent)), &Window::new(&whole));
        assert!(!o.passed, "{o:?}");
        assert!(o.detail.contains("not as expected"), "{}", o.detail);
    }
}
