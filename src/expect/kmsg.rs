//! Kernel log matchers: a pattern present or absent in a window, and the
//! deny-list every run is held to.

use super::Outcome;
use super::window::Window;
use crate::journal::Journal;
use crate::plan::{Expectation, Plan};
use regex::Regex;

/// Lines that fail any scenario unless it allows them: a kernel bug, an
/// oops, a WARN_ON, a lockdep report, a task the hung-task detector caught.
pub const DENY_LIST: &[(&str, &str)] = &[
    ("BUG", r"\bBUG:"),
    ("Oops", r"\bOops\b"),
    ("WARNING", r"\bWARNING:"),
    ("lockdep", r"possible (circular|recursive) locking|lockdep"),
    ("hung_task", r"blocked for more than \d+ seconds"),
];

pub fn kmsg_seen(journal: &Journal, re: &Regex, absent: bool, win: &Window) -> Outcome {
    let verb = if absent { "does not log" } else { "logs" };
    let expectation = format!("kernel {verb} /{re}/ {}", win.describe());
    let lines = win.kmsg(journal);
    match (lines.iter().find(|l| re.is_match(l)), absent) {
        (Some(line), false) => Outcome::new(expectation, true, format!("matched: {line}")),
        (Some(line), true) => Outcome::new(expectation, false, format!("logged: {line}")),
        (None, absent) => Outcome::new(
            expectation,
            absent,
            format!(
                "no match among {} kernel log lines in the window",
                lines.len()
            ),
        ),
    }
}

/// Fails on any deny-listed line of the run that neither `kmsg_allow` nor a
/// `kmsg` expectation (which asks for the line) accounts for.
pub fn deny_list(plan: &Plan, journal: &Journal) -> Outcome {
    let deny: Vec<(&str, Regex)> = DENY_LIST
        .iter()
        .map(|(name, p)| (*name, Regex::new(p).expect("deny-list patterns are valid")))
        .collect();
    let allow: Vec<&Regex> = plan
        .kmsg_allow
        .iter()
        .chain(plan.expect.iter().filter_map(|e| match e {
            Expectation::Kmsg {
                pattern,
                absent: false,
                ..
            } => Some(pattern),
            _ => None,
        }))
        .collect();
    let names: Vec<&str> = DENY_LIST.iter().map(|(n, _)| *n).collect();
    let expectation = format!("kernel logs no {} lines", names.join("/"));
    let lines = journal.kmsg_between(None, None);
    let mut allowed = 0;
    for line in &lines {
        let Some((name, _)) = deny.iter().find(|(_, re)| re.is_match(line)) else {
            continue;
        };
        if allow.iter().any(|re| re.is_match(line)) {
            allowed += 1;
            continue;
        }
        return Outcome::new(
            expectation,
            false,
            format!("{name}: {line} (add a kmsg_allow pattern if this is expected)"),
        );
    }
    Outcome::new(
        expectation,
        true,
        format!(
            "{} kernel log lines, {allowed} deny-listed but allowed",
            lines.len()
        ),
    )
}
