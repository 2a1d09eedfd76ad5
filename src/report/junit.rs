//! JUnit XML for CI systems: one testsuite per run, one testcase per scenario
//! and kernel ("<id> on <uname -r>", so that the same case from the jobs of
//! a kernel matrix stays apart when a CI system merges their files), with
//! each step's kernel log slice and the stacks of hung ops in system-out.

use super::{RunReport, Verdict};
use crate::journal::{Event, Journal};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use std::time::Duration;

pub fn render(run: &RunReport) -> String {
    let mut report = Report::new("stackquake");
    let mut suite = TestSuite::new(format!("stackquake {}", run.target));
    for r in &run.results {
        let status = match r.verdict {
            Verdict::Pass | Verdict::Xfail => TestCaseStatus::success(),
            Verdict::Skip => {
                let mut s = TestCaseStatus::skipped();
                if let Some(reason) = &r.reason {
                    s.set_message(reason.as_str());
                }
                s
            }
            Verdict::Fail | Verdict::Xpass | Verdict::Aborted | Verdict::Error => {
                let kind = if r.verdict == Verdict::Error {
                    NonSuccessKind::Error
                } else {
                    NonSuccessKind::Failure
                };
                let mut s = TestCaseStatus::non_success(kind);
                s.set_message(r.reason.clone().unwrap_or_default());
                // JUnit has no "aborted"; its type says which failure it is.
                if r.verdict == Verdict::Aborted {
                    s.set_type("aborted");
                }
                let details: Vec<String> = r
                    .outcomes
                    .iter()
                    .filter(|o| !o.passed)
                    .map(|o| format!("{}: {}", o.expectation, o.detail))
                    .collect();
                s.set_description(details.join("\n"));
                s
            }
        };
        let mut case = TestCase::new(r.name_with_kernel(), status);
        case.set_classname(r.file.as_str());
        case.set_time(Duration::from_secs_f64(r.duration_s.max(0.0)));
        case.set_system_out(system_out(&r.journal));
        suite.add_test_case(case);
    }
    report.add_test_suite(suite);
    report
        .to_string()
        .unwrap_or_else(|e| format!("<!-- junit rendering failed: {e} -->"))
}

/// Per step, the kernel log lines between its markers; then every op sampled
/// past its deadline with its state, wchan and kernel stack.
pub fn system_out(j: &Journal) -> String {
    let steps: Vec<&str> = j
        .events
        .iter()
        .filter_map(|e| match e {
            Event::StepBegin { step, .. } => Some(step.as_str()),
            _ => None,
        })
        .collect();
    let mut out = String::new();
    let mut section = |title: String, lines: Vec<&str>| {
        if !lines.is_empty() {
            out.push_str(&format!("--- {title} ---\n"));
            for l in lines {
                out.push_str(l);
                out.push('\n');
            }
        }
    };
    match (steps.first(), steps.last()) {
        (Some(first), Some(last)) => {
            section("kmsg before the first step".into(), {
                let begin = Journal::marker(&j.run_id, first, "begin");
                j.events
                    .iter()
                    .filter_map(|e| match e {
                        Event::Kmsg { text, .. } => Some(text.as_str()),
                        _ => None,
                    })
                    .take_while(|t| *t != begin)
                    .collect()
            });
            for step in &steps {
                section(
                    format!("kmsg of step {step}"),
                    j.kmsg_between(Some(step), Some(step)),
                );
            }
            section("kmsg after the last step".into(), j.kmsg_after(last));
        }
        _ => section("kmsg".into(), j.kmsg_between(None, None)),
    }
    let hung = j.hung_ops(0..=u64::MAX);
    section(
        "hung tasks (ops past their deadline)".into(),
        hung.iter().map(String::as_str).collect(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{RunReport, ScenarioResult, Verdict};

    fn kmsg(text: &str) -> Event {
        Event::Kmsg {
            seq: 0,
            level: 6,
            text: text.into(),
            t_ns: None,
        }
    }

    #[test]
    fn system_out_has_each_steps_kmsg_slice_and_the_hung_stacks() {
        let mut j = Journal {
            run_id: "r1".into(),
            ..Default::default()
        };
        j.push(Event::StepBegin {
            step: "a".into(),
            t_ns: 1,
        });
        for t in [
            "stackquake[r1]: step a begin",
            "XFS (loop0): shut down",
            "stackquake[r1]: step a end",
            "late line",
        ] {
            j.push(kmsg(t));
        }
        j.push(Event::Indeterminate {
            workload: "w".into(),
            seq: 3,
            start_ns: 0,
            t_ns: 2_000_000_000,
            state: "D".into(),
            wchan: "rpc_wait_bit_killable".into(),
            stack: Some("[<0>] rpc_wait_bit_killable+0x1e/0x90\n".into()),
            mounts: Vec::new(),
        });
        let report = RunReport {
            run_id: "r1".into(),
            stackquake: "0".into(),
            target: "host".into(),
            kernel: "6.18".into(),
            results: vec![ScenarioResult {
                id: "s<1>".into(),
                title: "t".into(),
                file: "f.yaml".into(),
                verdict: Verdict::Fail,
                kernel: "6.18".into(),
                reason: Some("no & good".into()),
                duration_s: 1.5,
                outcomes: Vec::new(),
                journal: j,
                files_dir: None,
            }],
        };
        let xml = render(&report);
        let parsed = quick_junit::Report::deserialize_from_str(&xml).expect("valid junit");
        let case = &parsed.test_suites[0].test_cases[0];
        assert_eq!(case.name.as_str(), "s<1> on 6.18");
        let out = case.system_out.as_ref().expect("system-out").to_string();
        let out = out.trim_end();
        assert_eq!(
            out,
            "--- kmsg of step a ---\nXFS (loop0): shut down\n\
             --- kmsg after the last step ---\nlate line\n\
             --- hung tasks (ops past their deadline) ---\n\
             w op 3 at +2.00s: state D in rpc_wait_bit_killable\n\
             [<0>] rpc_wait_bit_killable+0x1e/0x90"
        );
    }

    #[test]
    fn an_error_lists_unevaluated_expectations_as_not_evaluated() {
        let report = RunReport {
            run_id: "r1".into(),
            stackquake: "0".into(),
            target: "host".into(),
            kernel: "6.18".into(),
            results: vec![ScenarioResult {
                id: "s".into(),
                title: "t".into(),
                file: "f.yaml".into(),
                verdict: Verdict::Error,
                kernel: "6.18".into(),
                reason: Some("setup failed".into()),
                duration_s: 0.1,
                outcomes: vec![crate::expect::Outcome {
                    expectation: "probe exits with code 0".into(),
                    passed: false,
                    evaluated: false,
                    detail: "not evaluated: the run stopped before step probe began".into(),
                }],
                journal: Journal::default(),
                files_dir: None,
            }],
        };
        let xml = render(&report);
        assert!(
            xml.contains(
                "probe exits with code 0: not evaluated: the run stopped before step probe began"
            ),
            "{xml}"
        );
    }
}
