//! One scenario's section: its verdict, the timeline picture, each
//! expectation with its evidence, the kernel log, and the step artifacts.

use super::escape::{esc, id_fragment};
use super::scale::run_time;
use super::svg::{self, Evidence};
use super::timeline::Timeline;
use crate::expect::Outcome;
use crate::report::ScenarioResult;
use regex::Regex;
use std::collections::BTreeSet;
use std::fmt::Write;

/// The per-step files the engine writes (engine/artifacts.rs), in the
/// order they are listed.
pub const STEP_ARTIFACTS: [&str; 4] = [
    "kmsg.txt",
    "stacks.txt",
    "mountstats-before.txt",
    "mountstats.txt",
];

pub fn section(out: &mut String, case: &str, r: &ScenarioResult, artifacts: &BTreeSet<String>) {
    let timeline = Timeline::of(&r.journal);
    let verdict = r.verdict.to_string();
    let _ = write!(
        out,
        r#"<section class="case" id="{case}" data-kind="case" data-scenario="{id}" data-verdict="{verdict}"><h2><span class="verdict {verdict}">{verdict}</span> {id} <small>({:.1}s)</small></h2><p class="title">{}</p><p class="file">{}</p>"#,
        r.duration_s,
        esc(&r.title),
        esc(&r.file),
        id = esc(&r.id),
    );
    if let Some(reason) = &r.reason {
        let _ = write!(out, r#"<p class="reason">{}</p>"#, esc(reason));
    }
    let evidence = evidence(case, &r.outcomes);
    out.push_str(r#"<div class="scroll">"#);
    out.push_str(&svg::timeline(case, &timeline, &evidence));
    out.push_str("</div>");
    expectations(out, case, &r.outcomes, &evidence, &timeline);
    super::rpc::section(out, r.files_dir(), &r.journal, artifacts);
    kernel_list(out, case, &timeline);
    step_artifacts(out, r, &timeline, artifacts);
    untimed(out, &timeline);
    out.push_str("</section>");
}

/// Matchers write the moment they judged by as `at +1.05s` in their
/// evidence (Outcome carries no time of its own); each such moment gets a
/// mark on the axis.
fn evidence(case: &str, outcomes: &[Outcome]) -> Vec<Evidence> {
    let at = Regex::new(r"at \+(\d+(?:\.\d+)?)s").expect("valid pattern");
    outcomes
        .iter()
        .enumerate()
        .filter_map(|(i, o)| {
            let secs: f64 = at.captures(&o.detail)?[1].parse().ok()?;
            Some(Evidence {
                id: format!("{case}-evidence-{i}"),
                t_ns: (secs * 1e9).round() as u64,
                passed: o.passed,
                label: format!("{}: {}", o.expectation, o.detail),
            })
        })
        .collect()
}

fn expectations(
    out: &mut String,
    case: &str,
    outcomes: &[Outcome],
    evidence: &[Evidence],
    t: &Timeline,
) {
    out.push_str(r#"<h3>Expectations</h3><table class="expectations"><tr><th></th><th>expectation</th><th>evidence</th></tr>"#);
    for (i, o) in outcomes.iter().enumerate() {
        let (class, mark) = match (o.evaluated, o.passed) {
            (false, _) => ("unevaluated", "--"),
            (true, true) => ("ok", "ok"),
            (true, false) => ("bad", "FAIL"),
        };
        let mut links = String::new();
        let id = format!("{case}-evidence-{i}");
        if let Some(e) = evidence.iter().find(|e| e.id == id) {
            let _ = write!(links, r##" <a href="#{id}">{}</a>"##, run_time(e.t_ns));
        }
        // A kernel matcher quotes the line it matched: link to it.
        let quoted = o
            .detail
            .strip_prefix("matched: ")
            .or_else(|| o.detail.strip_prefix("logged: "));
        if let Some(k) = quoted.and_then(|q| t.kernel.iter().find(|k| k.text == q)) {
            let _ = write!(
                links,
                r##" <a href="#{}">kernel line {}</a>"##,
                svg::kmsg_anchor(case, k.seq),
                k.seq
            );
        }
        let _ = write!(
            out,
            r#"<tr class="{class}" data-kind="expectation" data-passed="{}"><td>{mark}</td><td>{}</td><td>{}{links}</td></tr>"#,
            o.passed,
            esc(&o.expectation),
            esc(&o.detail)
        );
    }
    out.push_str("</table>");
}

fn kernel_list(out: &mut String, case: &str, t: &Timeline) {
    let _ = write!(
        out,
        r#"<h3>Kernel log ({} lines)</h3><table class="kernel">"#,
        t.kernel.len()
    );
    for k in &t.kernel {
        let class = match (k.denied, k.marker) {
            (Some(_), _) => "deny",
            (None, true) => "marker",
            (None, false) => "",
        };
        let deny = k.denied.map(|d| format!(" [{d}]")).unwrap_or_default();
        let _ = write!(
            out,
            r#"<tr id="{}" class="{class}" data-kind="kmsg-line" data-seq="{}" data-level="{}"><td>{}</td><td>{}</td><td>{}{deny}</td></tr>"#,
            svg::kmsg_anchor(case, k.seq),
            k.seq,
            k.level,
            k.when(),
            k.level,
            esc(&k.text),
        );
    }
    out.push_str("</table>");
}

/// Links to the files the engine wrote for each step, relative to the page
/// (it sits in the output directory beside `<scenario>/<step>/`); only
/// files that exist are linked.
fn step_artifacts(
    out: &mut String,
    r: &ScenarioResult,
    t: &Timeline,
    artifacts: &BTreeSet<String>,
) {
    out.push_str(r#"<h3>Step artifacts</h3><ul class="artifacts">"#);
    for s in &t.steps {
        let _ = write!(out, "<li>{}:", esc(&s.step));
        for f in STEP_ARTIFACTS {
            let rel = artifact_path(r.files_dir(), &s.step, f);
            if artifacts.contains(&rel) {
                let _ = write!(
                    out,
                    r#" <a data-kind="artifact" data-step="{}" href="{}">{f}</a>"#,
                    esc(&s.step),
                    esc(&href(&rel))
                );
            }
        }
        out.push_str("</li>");
    }
    out.push_str("</ul>");
}

/// Where a step's artifact lies relative to the output directory, for a
/// case whose files are in `files_dir`.
pub fn artifact_path(files_dir: &str, step: &str, file: &str) -> String {
    format!("{files_dir}/{step}/{file}")
}

/// A relative path as an URL: each segment percent-encoded where it is not
/// plainly safe, so a step named `a b#c` still links to its directory.
pub(super) fn href(rel: &str) -> String {
    rel.split('/')
        .map(|seg| {
            seg.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn untimed(out: &mut String, t: &Timeline) {
    for (title, items) in [("Setup", &t.setup), ("Teardown", &t.teardown)] {
        let _ = write!(
            out,
            "<details><summary>{title} ({} items)</summary><ul>",
            items.len()
        );
        for i in items {
            let _ = write!(out, "<li>{}</li>", esc(i));
        }
        out.push_str("</ul></details>");
    }
}

/// The page id of the `index`-th result.
pub fn case_id(index: usize, scenario: &str) -> String {
    format!("case-{index}-{}", id_fragment(scenario))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_times_come_from_the_matchers_words() {
        let o = Outcome {
            expectation: "writer sees EIO".into(),
            passed: true,
            evaluated: true,
            detail: "op 46 failed with EIO in write at +1.05s".into(),
        };
        let e = evidence("c", &[o]);
        assert_eq!(e[0].t_ns, 1_050_000_000);
        assert_eq!(e[0].id, "c-evidence-0");
    }

    #[test]
    fn artifact_links_are_percent_encoded() {
        assert_eq!(href("s/a b#c/kmsg.txt"), "s/a%20b%23c/kmsg.txt");
    }

    #[test]
    fn an_expectation_not_evaluated_is_marked_so_not_failed() {
        let o = |evaluated, passed| Outcome {
            expectation: "probe exits with code 0".into(),
            passed,
            evaluated,
            detail: "not evaluated: the run stopped before step probe began".into(),
        };
        let t = Timeline::of(&crate::journal::Journal::default());
        let mut page = String::new();
        expectations(&mut page, "c", &[o(false, false), o(true, false)], &[], &t);
        assert!(page.contains(r#"<tr class="unevaluated""#), "{page}");
        assert_eq!(page.matches(r#"<tr class="bad""#).count(), 1, "{page}");
    }
}
