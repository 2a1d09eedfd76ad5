//! The readable report on stdout: one block per scenario, then a tally.

use super::{RunReport, ScenarioResult, Verdict};
use std::io::Write;

pub fn print_result(out: &mut impl Write, r: &ScenarioResult) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<6} {}  ({:.1}s)  {}",
        r.verdict, r.id, r.duration_s, r.file
    )?;
    for o in &r.outcomes {
        // An expectation the run stopped before is neither ok nor FAIL;
        // its detail line says "not evaluated" and why.
        let mark = match (o.evaluated, o.passed) {
            (false, _) => "--  ",
            (true, true) => "ok  ",
            (true, false) => "FAIL",
        };
        writeln!(out, "  {mark} {}", o.expectation)?;
        writeln!(out, "         {}", o.detail)?;
    }
    if let Some(reason) = &r.reason
        && r.verdict != Verdict::Pass
    {
        writeln!(out, "  reason: {reason}")?;
    }
    Ok(())
}

pub fn print_summary(out: &mut impl Write, report: &RunReport) -> std::io::Result<()> {
    let mut parts = Vec::new();
    for v in Verdict::ALL {
        let n = report.count(v);
        if n > 0 {
            parts.push(format!("{n} {}", v.to_string().to_lowercase()));
        }
    }
    writeln!(
        out,
        "run {} on {} (kernel {}): {}",
        report.run_id,
        report.target,
        report.kernel,
        if parts.is_empty() {
            "nothing ran".to_string()
        } else {
            parts.join(", ")
        }
    )
}

/// Per scenario, how many runs ended with each verdict (for --repeat).
pub fn print_histogram(out: &mut impl Write, report: &RunReport) -> std::io::Result<()> {
    let mut ids: Vec<&str> = Vec::new();
    for r in &report.results {
        if !ids.contains(&r.id.as_str()) {
            ids.push(&r.id);
        }
    }
    for id in ids {
        let runs: Vec<&ScenarioResult> = report.results.iter().filter(|r| r.id == id).collect();
        let mut parts = Vec::new();
        for v in Verdict::ALL {
            let n = runs.iter().filter(|r| r.verdict == v).count();
            if n > 0 {
                parts.push(format!("{v} {n} {}", "#".repeat(n.min(40))));
            }
        }
        writeln!(out, "{id}: {} runs", runs.len())?;
        for p in parts {
            writeln!(out, "  {p}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expect::Outcome;

    #[test]
    fn an_expectation_not_evaluated_is_not_listed_as_fail() {
        let outcome = |passed, evaluated, detail: &str| Outcome {
            expectation: "probe exits with code 0".into(),
            passed,
            evaluated,
            detail: detail.into(),
        };
        let r = ScenarioResult {
            id: "s".into(),
            title: "t".into(),
            file: "s.yaml".into(),
            verdict: Verdict::Error,
            reason: Some("setup: cannot mount".into()),
            duration_s: 0.5,
            outcomes: vec![
                outcome(
                    false,
                    false,
                    "not evaluated: the run stopped before step probe began",
                ),
                outcome(false, true, "exited with 1"),
            ],
            journal: Default::default(),
        };
        let mut out = Vec::new();
        print_result(&mut out, &r).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "ERROR s  (0.5s)  s.yaml\n\
             \x20 --   probe exits with code 0\n\
             \x20        not evaluated: the run stopped before step probe began\n\
             \x20 FAIL probe exits with code 0\n\
             \x20        exited with 1\n\
             \x20 reason: setup: cannot mount\n"
        );
    }
}
