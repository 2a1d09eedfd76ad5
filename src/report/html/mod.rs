//! report.html: the run as a picture, one self-contained page (inline SVG,
//! CSS and a few lines of script for hover text; nothing from the network).
//!
//! Hand-written SVG rather than plotters: the page must carry stable
//! classes and data attributes on every mark (tests and people read them),
//! hover text, links between the picture and the lists, and escaping under
//! our control; plotters' SVG backend emits anonymous shapes and brings a
//! dependency tree for what is here a few hundred lines.

mod case;
mod escape;
mod lanes;
mod rpc;
mod scale;
mod svg;
mod timeline;

use super::{RunReport, Verdict};
use escape::esc;
use std::collections::BTreeSet;
use std::fmt::Write;
use std::path::Path;

pub use case::STEP_ARTIFACTS;

/// The page for `report`. `artifacts` holds the per-step files present in
/// the output directory, as paths relative to it (see [`scan_artifacts`]).
pub fn render(report: &RunReport, artifacts: &BTreeSet<String>) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>stackquake run {run}</title><style>{CSS}</style></head><body><h1>stackquake run {run}</h1><p class="meta" data-kind="run" data-run="{run}">on {} · kernel {} · stackquake {}</p>"#,
        esc(&report.target),
        esc(&report.kernel),
        esc(&report.stackquake),
        run = esc(&report.run_id),
    );
    let ids: Vec<String> = report
        .results
        .iter()
        .enumerate()
        .map(|(i, r)| case::case_id(i, &r.id))
        .collect();
    if report.results.len() > 1 {
        index(&mut out, report, &ids);
    }
    for (r, id) in report.results.iter().zip(&ids) {
        case::section(&mut out, id, r, artifacts);
    }
    let _ = write!(
        out,
        r#"<div id="tip" hidden></div><script>{SCRIPT}</script></body></html>"#
    );
    out
}

/// Every scenario with its verdict and time, linked to its section.
fn index(out: &mut String, report: &RunReport, ids: &[String]) {
    let tally: Vec<String> = Verdict::ALL
        .iter()
        .map(|v| (v, report.count(*v)))
        .filter(|(_, n)| *n > 0)
        .map(|(v, n)| format!("{n} {}", v.to_string().to_lowercase()))
        .collect();
    let _ = write!(
        out,
        r#"<h2>{} scenarios: {}</h2><table class="index" data-kind="index"><tr><th>verdict</th><th>scenario</th><th>time</th><th>reason</th></tr>"#,
        report.results.len(),
        tally.join(", ")
    );
    for (r, id) in report.results.iter().zip(ids) {
        let verdict = r.verdict.to_string();
        let _ = write!(
            out,
            r##"<tr data-kind="index-row" data-scenario="{scenario}" data-verdict="{verdict}"><td class="verdict {verdict}">{verdict}</td><td><a href="#{id}">{scenario}</a></td><td>{:.1}s</td><td>{}</td></tr>"##,
            r.duration_s,
            esc(r.reason.as_deref().unwrap_or("")),
            scenario = esc(&r.id),
        );
    }
    out.push_str("</table>");
}

/// The per-step artifact files of `report` present under `dir`.
pub fn scan_artifacts(report: &RunReport, dir: &Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for r in &report.results {
        let steps: BTreeSet<&str> = r
            .journal
            .events
            .iter()
            .filter_map(|e| match e {
                crate::journal::Event::StepBegin { step, .. } => Some(step.as_str()),
                _ => None,
            })
            .collect();
        for server in rpc::servers(&r.journal) {
            let rel = rpc::capture_path(r.files_dir(), server);
            if dir.join(&rel).is_file() {
                found.insert(rel);
            }
        }
        for step in steps {
            for f in STEP_ARTIFACTS {
                let rel = case::artifact_path(r.files_dir(), step, f);
                if dir.join(&rel).is_file() {
                    found.insert(rel);
                }
            }
        }
    }
    found
}

const CSS: &str = "\
body{font:13px/1.4 sans-serif;margin:1em 2em;color:#222}
h2 small{font-weight:normal;color:#666}
.verdict{padding:0 .4em;border-radius:3px;color:#fff;background:#888}
.PASS,.XFAIL{background:#2a7d2a}.FAIL,.XPASS,.ABORTED,.ERROR{background:#b3261e}.SKIP{background:#8a6d00}
td.verdict{text-align:center}
.file,.meta{color:#666}
.reason{color:#b3261e}
.scroll{overflow-x:auto}
svg.timeline{display:block;font-size:10px}
.plot{fill:#fafafa;stroke:#ccc}
.tick{stroke:#e4e4e4}.tick-label{text-anchor:middle;fill:#666}
.grid{stroke:#eee}.decade{text-anchor:end;fill:#999;font-size:9px}
.step{fill:#dde7f3;stroke:#9bb3d1}.step-label{fill:#234}
.step-boundary{stroke:#9bb3d1;stroke-dasharray:3,3}
.fault-band{fill:#f5a623;fill-opacity:.18;stroke:#f5a623;stroke-opacity:.6}
.fault-label{fill:#9a5b00;font-weight:bold}
.lane{fill:none;stroke:#ddd}.lane-name{font-weight:bold;fill:#333}
[data-kind=op]{fill:#3b73b9;width:3px;height:3px}[data-kind=op].err{fill:#d0021b}
.errno{fill:#d0021b;font-weight:bold}
.hang{fill:none;stroke:#7b2cbf;stroke-width:1.5}.hang-label{fill:#7b2cbf}
.exec{fill:#234}
.moment{stroke-width:2;stroke-dasharray:4 3}.continued{stroke:#2a5db0}.ready{stroke:#1b7f3a}.probe-failed{stroke:#b3261e}
g.kmsg line{stroke:#777}g.kmsg path{fill:#555}
g.kmsg.deny line{stroke:#d0021b;stroke-width:2}g.kmsg.deny path{fill:#d0021b}
.evidence{fill:#2a7d2a}.evidence.bad{fill:#b3261e}
table{border-collapse:collapse;margin:.3em 0}td,th{padding:1px 6px;text-align:left;vertical-align:top}
table.kernel{font-family:monospace;font-size:12px}table.kernel td:last-child{white-space:pre-wrap}
table.rpc span.call{white-space:nowrap;margin-right:.6em;font-family:monospace;font-size:12px}
tr.deny{background:#fde2e0;color:#b3261e;font-weight:bold}tr.marker{color:#999}
tr.bad td:first-child{color:#b3261e;font-weight:bold}tr.ok td:first-child{color:#2a7d2a}tr.unevaluated td{color:#777}
tr:target{outline:2px solid #f5a623}
#tip{position:fixed;background:#333;color:#fff;padding:3px 6px;border-radius:3px;font-size:12px;pointer-events:none;white-space:pre}
";

/// Hover text for ops (which carry no <title>, to keep large runs small):
/// built from the mark's data attributes.
const SCRIPT: &str = r#"(function(){
var tip=document.getElementById('tip');
function t(ns){return '+'+(Number(ns)/1e9).toFixed(3)+'s'}
function d(ns){ns=Number(ns);return ns<1e6?(ns/1e3).toFixed(0)+'µs':ns<1e9?(ns/1e6).toFixed(1)+'ms':(ns/1e9).toFixed(2)+'s'}
document.addEventListener('mouseover',function(e){
var m=e.target.closest&&e.target.closest('[data-kind="op"]');
if(!m){tip.hidden=true;return}
var s=m.dataset,lane=m.closest('[data-kind="lane"]'),text=(lane?lane.dataset.workload:'')+' op '+s.seq+' at '+t(s.startNs)+', took '+d(s.latencyNs);
if(s.errno)text+='\n'+s.errno+(s.stage?' in '+s.stage:'');
if(s.exitCode)text+='\nexit code '+s.exitCode;
if(s.mounts)text+='\n'+s.mounts;
tip.textContent=text;tip.hidden=false;
});
document.addEventListener('mousemove',function(e){tip.style.left=(e.clientX+12)+'px';tip.style.top=(e.clientY+12)+'px'});
})();"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Event, Journal};
    use crate::report::ScenarioResult;

    fn report(results: Vec<ScenarioResult>) -> RunReport {
        RunReport {
            run_id: "r".into(),
            stackquake: "0".into(),
            target: "host".into(),
            kernel: "k".into(),
            results,
        }
    }

    fn result(id: &str, verdict: Verdict, events: Vec<Event>) -> ScenarioResult {
        ScenarioResult {
            id: id.into(),
            title: "t".into(),
            file: "f.yaml".into(),
            verdict,
            kernel: "6.1.0-57-amd64".into(),
            reason: None,
            duration_s: 1.5,
            outcomes: Vec::new(),
            journal: Journal {
                run_id: "r".into(),
                events,
            },
            files_dir: None,
        }
    }

    #[test]
    fn several_scenarios_get_an_index_one_does_not() {
        let one = render(
            &report(vec![result("a", Verdict::Pass, vec![])]),
            &BTreeSet::new(),
        );
        assert!(!one.contains(r#"data-kind="index""#));
        let two = render(
            &report(vec![
                result("a", Verdict::Pass, vec![]),
                result("b<x>", Verdict::Fail, vec![]),
            ]),
            &BTreeSet::new(),
        );
        assert!(two.contains(r#"data-kind="index""#));
        assert!(
            two.contains(r##"<a href="#case-1-b_x_">b&lt;x&gt;</a>"##),
            "{two}"
        );
        assert!(two.contains(r#"data-scenario="b&lt;x&gt;" data-verdict="FAIL""#));
    }

    /// A kernel matrix keeps each kernel's case files apart: the page
    /// finds and links them where the result says, not under its id.
    #[test]
    fn a_case_with_its_own_files_dir_is_linked_there() {
        let dir = tempfile::tempdir().unwrap();
        let steps = vec![Event::StepBegin {
            step: "s".into(),
            t_ns: 0,
        }];
        let mut on_612 = result("a", Verdict::Pass, steps.clone());
        on_612.files_dir = Some("kernel-6.12/a".into());
        for rel in ["kernel-6.12/a/s/kmsg.txt", "a/s/kmsg.txt"] {
            std::fs::create_dir_all(dir.path().join(rel).parent().unwrap()).unwrap();
            std::fs::write(dir.path().join(rel), "").unwrap();
        }
        let report = report(vec![on_612]);
        let found = scan_artifacts(&report, dir.path());
        assert_eq!(
            found,
            BTreeSet::from(["kernel-6.12/a/s/kmsg.txt".to_string()])
        );
        let page = render(&report, &found);
        assert!(
            page.contains(r#"href="kernel-6.12/a/s/kmsg.txt""#),
            "{page}"
        );
        assert!(!page.contains(r#"href="a/s/kmsg.txt""#));
    }

    /// Regression guard for the page's size (bench/README.md measured
    /// 1.26 MiB for 10,000 ops): a mark's markup growing by a few
    /// attributes would make large runs sluggish to open.
    #[test]
    fn ten_thousand_ops_stay_under_a_mebibyte_and_a_half() {
        let events = (0..10_000u64)
            .map(|seq| Event::Op {
                workload: format!("writer-{}", seq % 2),
                seq,
                start_ns: seq * 1_000_000,
                end_ns: seq * 1_000_000 + 123_456,
                errno: (seq % 5 == 0).then_some(5),
                stage: Some("fsync".into()),
                exit_code: None,
                mounts: Vec::new(),
                hold: None,
            })
            .collect();
        let page = render(
            &report(vec![result("big", Verdict::Pass, events)]),
            &BTreeSet::new(),
        );
        assert_eq!(page.matches(r#"<rect data-kind="op""#).count(), 10_000);
        assert!(page.len() < 3 * 1024 * 1024 / 2, "{} bytes", page.len());
    }
}
