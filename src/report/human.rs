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
    for v in [
        Verdict::Pass,
        Verdict::Fail,
        Verdict::Xfail,
        Verdict::Xpass,
        Verdict::Skip,
        Verdict::Error,
    ] {
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
