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
        let mark = if o.passed { "ok  " } else { "FAIL" };
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
