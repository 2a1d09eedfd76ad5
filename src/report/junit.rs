//! JUnit XML for CI systems: one testsuite per run, one testcase per scenario,
//! with the scenario's kernel log lines in system-out.

use super::{RunReport, Verdict};
use crate::journal::Event;
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
            Verdict::Fail | Verdict::Xpass | Verdict::Error => {
                let kind = if r.verdict == Verdict::Error {
                    NonSuccessKind::Error
                } else {
                    NonSuccessKind::Failure
                };
                let mut s = TestCaseStatus::non_success(kind);
                s.set_message(r.reason.clone().unwrap_or_default());
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
        let mut case = TestCase::new(r.id.as_str(), status);
        case.set_classname(r.file.as_str());
        case.set_time(Duration::from_secs_f64(r.duration_s.max(0.0)));
        let kmsg: Vec<&str> = r
            .journal
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Kmsg { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        case.set_system_out(kmsg.join("\n"));
        suite.add_test_case(case);
    }
    report.add_test_suite(suite);
    report
        .to_string()
        .unwrap_or_else(|e| format!("<!-- junit rendering failed: {e} -->"))
}
