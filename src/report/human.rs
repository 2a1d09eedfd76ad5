//! The readable report on stdout: one block per scenario, then a tally.

use super::{RunReport, ScenarioResult, Verdict};
use std::io::Write;

/// One scenario's block; `name_kernel` for a run over several kernels,
/// where the id alone does not say which result is which.
pub fn print_result(
    out: &mut impl Write,
    r: &ScenarioResult,
    name_kernel: bool,
) -> std::io::Result<()> {
    let name = if name_kernel {
        r.name_with_kernel()
    } else {
        r.id.clone()
    };
    writeln!(
        out,
        "{:<6} {name}  ({:.1}s)  {}",
        r.verdict, r.duration_s, r.file
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

/// How many scenarios the closing table of the slowest lists.
const SLOWEST: usize = 5;

/// The slowest scenarios of the run, slowest first, as nextest closes its
/// output: where the time went when a directory of scenarios took long.
/// Nothing for a single scenario, whose time is already on its line.
pub fn print_slowest(out: &mut impl Write, report: &RunReport) -> std::io::Result<()> {
    if report.results.len() < 2 {
        return Ok(());
    }
    let mut by_time: Vec<&ScenarioResult> = report.results.iter().collect();
    by_time.sort_by(|a, b| b.duration_s.total_cmp(&a.duration_s));
    let total: f64 = report.results.iter().map(|r| r.duration_s).sum();
    writeln!(
        out,
        "slowest (of {} scenarios, {total:.1}s in all):",
        report.results.len()
    )?;
    let matrix = report.is_kernel_matrix();
    for r in by_time.into_iter().take(SLOWEST) {
        let verdict = r.verdict.to_string();
        let name = if matrix {
            r.name_with_kernel()
        } else {
            r.id.clone()
        };
        writeln!(out, "  {:>7.1}s  {verdict:<6} {name}", r.duration_s)?;
    }
    Ok(())
}

/// Per scenario, how many runs ended with each verdict (for --repeat).
pub fn print_histogram(out: &mut impl Write, report: &RunReport) -> std::io::Result<()> {
    // Per kernel too in a matrix: the same case may do differently on each.
    let matrix = report.is_kernel_matrix();
    let key = |r: &ScenarioResult| {
        if matrix {
            r.name_with_kernel()
        } else {
            r.id.clone()
        }
    };
    let mut ids: Vec<String> = Vec::new();
    for r in &report.results {
        if !ids.contains(&key(r)) {
            ids.push(key(r));
        }
    }
    for id in ids {
        let runs: Vec<&ScenarioResult> = report.results.iter().filter(|r| key(r) == id).collect();
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
            kernel: "6.18".into(),
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
            files_dir: None,
        };
        let mut out = Vec::new();
        print_result(&mut out, &r, false).unwrap();
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

    fn result(id: &str, duration_s: f64) -> ScenarioResult {
        ScenarioResult {
            id: id.into(),
            title: String::new(),
            file: String::new(),
            verdict: Verdict::Pass,
            kernel: "6.18".into(),
            reason: None,
            duration_s,
            outcomes: Vec::new(),
            journal: Default::default(),
            files_dir: None,
        }
    }

    fn report(results: Vec<ScenarioResult>) -> RunReport {
        RunReport {
            run_id: "r".into(),
            stackquake: "0".into(),
            target: "host".into(),
            kernel: "k".into(),
            results,
        }
    }

    #[test]
    fn the_slowest_scenarios_close_the_report_slowest_first() {
        let times = [3.0, 20.5, 0.4, 7.25, 1.0, 9.0, 0.1];
        let results = times
            .iter()
            .enumerate()
            .map(|(i, t)| result(&format!("s{i}"), *t))
            .collect();
        let mut out = Vec::new();
        print_slowest(&mut out, &report(results)).unwrap();
        let text = String::from_utf8(out).unwrap();
        let ids: Vec<&str> = text
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().last().unwrap())
            .collect();
        assert_eq!(ids, ["s1", "s5", "s3", "s0", "s4"], "{text}");
        assert!(
            text.starts_with("slowest (of 7 scenarios, 41.2s in all):"),
            "{text}"
        );
        assert!(text.contains("     20.5s  PASS   s1"), "{text}");
    }

    #[test]
    fn one_scenario_gets_no_table() {
        let mut out = Vec::new();
        print_slowest(&mut out, &report(vec![result("only", 2.0)])).unwrap();
        assert!(out.is_empty());
    }
}
