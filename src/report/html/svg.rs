//! The timeline picture of one scenario: a time axis, step spans and their
//! boundaries, fault windows as shaded bands across every lane, the
//! workload lanes, and the kernel log as a row of markers.

use super::escape::esc;
use super::lanes::{self, LANE_GAP, LANE_HEIGHT};
use super::scale::{TimeScale, human_ns, run_time};
use super::timeline::Timeline;
use std::fmt::Write;

const WIDTH: f64 = 1200.0;
const LEFT: f64 = 150.0;
const RIGHT: f64 = 20.0;
const TICKS_TOP: f64 = 14.0;
const STEPS_TOP: f64 = 22.0;
const ROW: f64 = 20.0;
const KERNEL_ROW: f64 = 26.0;

/// A moment an expectation's evidence names ("… at +1.05s"), marked on the axis.
pub struct Evidence {
    pub id: String,
    pub t_ns: u64,
    pub passed: bool,
    pub label: String,
}

pub fn timeline(case: &str, t: &Timeline, evidence: &[Evidence]) -> String {
    let time = TimeScale::new(0, t.end_ns, LEFT, WIDTH - LEFT - RIGHT);
    let faults_top = STEPS_TOP + ROW;
    let lanes_top = faults_top + ROW * t.faults.len().max(1) as f64;
    let kernel_top = lanes_top + (LANE_HEIGHT + LANE_GAP) * t.lanes.len() as f64;
    let bottom = kernel_top + KERNEL_ROW;
    let height = bottom + 18.0;
    // No xmlns: inline in HTML the parser puts <svg> in its namespace, and
    // the page then names no URL at all (tests/cli_report.rs checks).
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="timeline" data-kind="timeline" viewBox="0 0 {WIDTH} {height:.0}" width="{WIDTH}" height="{height:.0}"><rect data-kind="plot-area" class="plot" x="{LEFT}" y="{STEPS_TOP}" width="{:.1}" height="{:.1}" data-start-ns="{}" data-end-ns="{}"/>"#,
        time.width,
        bottom - STEPS_TOP,
        time.start_ns,
        time.end_ns
    );
    for tick in time.ticks(10) {
        let x = time.x(tick);
        let _ = write!(
            out,
            r#"<line class="tick" x1="{x:.1}" x2="{x:.1}" y1="{STEPS_TOP}" y2="{bottom:.1}"/><text class="tick-label" x="{x:.1}" y="{TICKS_TOP}">{}</text><text class="tick-label" x="{x:.1}" y="{:.1}">{}</text>"#,
            tick_label(tick),
            bottom + 14.0,
            tick_label(tick)
        );
    }
    for (i, f) in t.faults.iter().enumerate() {
        let end = f.healed_ns.unwrap_or(time.end_ns);
        let (x1, x2) = (time.x(f.injected_ns), time.x(end));
        let matched = f
            .matched
            .as_ref()
            .map(|(n, unit)| format!(", acted on {n} {unit}(s)"))
            .unwrap_or_default();
        let _ = write!(
            out,
            r#"<g data-kind="fault" data-fault="{fault}" data-step="{step}"><title>{fault} ({step}): {} to {}{}</title><rect class="fault-band" data-kind="fault-band" data-fault="{fault}" data-step="{step}" data-start-ns="{}" data-end-ns="{end}" data-healed="{}" x="{x1:.1}" y="{faults_top:.1}" width="{:.1}" height="{:.1}"/><text class="fault-label" data-kind="fault-label" x="{:.1}" y="{:.1}">{fault} ({step})</text></g>"#,
            run_time(f.injected_ns),
            f.healed_ns.map_or("never healed".into(), run_time),
            esc(&matched),
            f.injected_ns,
            f.healed_ns.is_some(),
            (x2 - x1).max(1.0),
            bottom - faults_top,
            x1 + 3.0,
            faults_top + ROW * i as f64 + 14.0,
            fault = esc(&f.fault),
            step = esc(&f.step),
        );
    }
    for s in &t.steps {
        steps(&mut out, s, &time, bottom);
    }
    for x in &t.execs {
        let how = match (x.code, x.signal) {
            (Some(c), _) => format!("exit code {c}"),
            (None, Some(s)) => format!("killed by signal {s}"),
            (None, None) => "ended".into(),
        };
        let _ = write!(
            out,
            r#"<circle class="exec" data-kind="exec" data-step="{step}" data-t-ns="{}" cx="{:.1}" cy="{:.1}" r="3"><title>{step}: command {}</title></circle>"#,
            x.t_ns,
            time.x(x.t_ns),
            STEPS_TOP + ROW / 2.0,
            esc(&how),
            step = esc(&x.step),
        );
    }
    for m in &t.moments {
        let x = time.x(m.t_ns);
        let _ = write!(
            out,
            r#"<path class="moment {kind}" data-kind="{kind}" data-t-ns="{}" d="M{x:.1},{STEPS_TOP:.1}V{bottom:.1}"><title>{}</title></path>"#,
            m.t_ns,
            esc(&m.text),
            kind = m.kind,
        );
    }
    for (i, l) in t.lanes.iter().enumerate() {
        let top = lanes_top + (LANE_HEIGHT + LANE_GAP) * i as f64;
        lanes::lane(&mut out, l, top, &time, t.max_latency_ns());
    }
    kernel_row(&mut out, case, t, &time, kernel_top);
    for e in evidence {
        let x = time.x(e.t_ns);
        let class = if e.passed { "evidence" } else { "evidence bad" };
        let _ = write!(
            out,
            r#"<path id="{}" class="{class}" data-kind="evidence" data-t-ns="{}" d="M{x:.1},{:.1}l-5,-8h10z"><title>{}</title></path>"#,
            e.id,
            e.t_ns,
            STEPS_TOP + ROW,
            esc(&e.label)
        );
    }
    out.push_str("</svg>");
    out
}

fn steps(out: &mut String, s: &super::timeline::StepSpan, time: &TimeScale, bottom: f64) {
    let end = s.end_ns.unwrap_or(time.end_ns);
    let (x1, x2) = (time.x(s.begin_ns), time.x(end));
    let step = esc(&s.step);
    let _ = write!(
        out,
        r#"<g data-kind="step" data-step="{step}" data-start-ns="{}" data-end-ns="{end}" data-ended="{}"><title>step {step}: {} to {} ({})</title><rect class="step" x="{x1:.1}" y="{STEPS_TOP}" width="{:.1}" height="{:.1}"/><text class="step-label" x="{:.1}" y="{:.1}">{step}</text>"#,
        s.begin_ns,
        s.end_ns.is_some(),
        run_time(s.begin_ns),
        s.end_ns.map_or("never ended".into(), run_time),
        human_ns(end - s.begin_ns.min(end)),
        (x2 - x1).max(1.0),
        ROW - 4.0,
        x1 + 3.0,
        STEPS_TOP + 13.0,
    );
    for (edge, t) in [("begin", s.begin_ns), ("end", end)] {
        let x = time.x(t);
        let _ = write!(
            out,
            r#"<line class="step-boundary" data-kind="step-boundary" data-step="{step}" data-edge="{edge}" data-t-ns="{t}" x1="{x:.1}" x2="{x:.1}" y1="{STEPS_TOP}" y2="{bottom:.1}"/>"#
        );
    }
    out.push_str("</g>");
}

/// Kernel lines as markers: a whisker over the window the line must lie in
/// (see `KernelLine`), a diamond at its start; each links to its row in
/// the list below the picture. Step markers are left out: the step row
/// already shows them.
fn kernel_row(out: &mut String, case: &str, t: &Timeline, time: &TimeScale, top: f64) {
    let _ = write!(
        out,
        r#"<text class="lane-name" x="4" y="{:.1}">kernel log</text>"#,
        top + 16.0
    );
    let y = top + KERNEL_ROW / 2.0;
    for k in t.kernel.iter().filter(|k| !k.marker) {
        let (x1, x2) = (time.x(k.earliest_ns), time.x(k.latest_ns));
        let class = if k.denied.is_some() {
            "kmsg deny"
        } else {
            "kmsg"
        };
        let deny = k
            .denied
            .map(|d| format!(r#" data-deny="{d}""#))
            .unwrap_or_default();
        let _ = write!(
            out,
            r##"<a href="#{}"><g class="{class}" data-kind="kmsg" data-seq="{}" data-level="{}" data-start-ns="{}" data-end-ns="{}"{deny}><title>{}: {}</title><line x1="{x1:.1}" x2="{x2:.1}" y1="{y:.1}" y2="{y:.1}"/><path d="M{x1:.1},{:.1}l4,6l-4,6l-4,-6z"/></g></a>"##,
            kmsg_anchor(case, k.seq),
            k.seq,
            k.level,
            k.earliest_ns,
            k.latest_ns,
            k.when(),
            esc(&k.text),
            y - 6.0,
        );
    }
}

/// The id of a kernel line's row in the list below the picture.
pub fn kmsg_anchor(case: &str, seq: u64) -> String {
    format!("{case}-kmsg-{seq}")
}

fn tick_label(t_ns: u64) -> String {
    let s = t_ns as f64 / 1e9;
    if t_ns % 1_000_000_000 == 0 {
        format!("{s:.0}s")
    } else if t_ns % 100_000_000 == 0 {
        format!("{s:.1}s")
    } else {
        format!("{s:.2}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Event, Journal};

    #[test]
    fn fault_bands_span_injection_to_healing_and_kernel_text_is_escaped() {
        let journal = Journal {
            run_id: "r".into(),
            events: vec![
                Event::FaultInjected {
                    step: "s".into(),
                    fault: "xfs.shutdown".into(),
                    t_ns: 1_000_000_000,
                },
                Event::Kmsg {
                    seq: 7,
                    level: 1,
                    text: r#"</title><script>alert("x")</script>"#.into(),
                    t_ns: None,
                },
                Event::FaultHealed {
                    step: "s".into(),
                    fault: "xfs.shutdown".into(),
                    t_ns: 1_500_000_000,
                    error: None,
                    matched: None,
                    unit: None,
                    uncounted: None,
                },
                Event::StepEnd {
                    step: "s".into(),
                    t_ns: 2_000_000_000,
                },
            ],
        };
        let svg = timeline("c0", &Timeline::of(&journal), &[]);
        assert!(svg.contains(
            r#"data-kind="fault-band" data-fault="xfs.shutdown" data-step="s" data-start-ns="1000000000" data-end-ns="1500000000" data-healed="true" x="665.0""#
        ), "{svg}");
        assert!(!svg.contains("<script"), "{svg}");
        assert!(svg.contains("&lt;/title&gt;&lt;script&gt;"));
        assert!(svg.contains(r##"<a href="#c0-kmsg-7">"##));
    }

    #[test]
    fn deny_listed_kernel_lines_are_marked_and_step_markers_left_out() {
        let journal = Journal {
            run_id: "r".into(),
            events: vec![
                Event::StepBegin {
                    step: "s".into(),
                    t_ns: 10,
                },
                Event::Kmsg {
                    seq: 1,
                    level: 5,
                    text: "stackquake[r]: step s begin".into(),
                    t_ns: None,
                },
                Event::Kmsg {
                    seq: 2,
                    level: 4,
                    text: "WARNING: CPU: 0 PID: 1 at fs/xfs/xfs_buf.c:1".into(),
                    t_ns: None,
                },
                Event::Kmsg {
                    seq: 3,
                    level: 6,
                    text: "loop0: detected capacity change".into(),
                    t_ns: None,
                },
            ],
        };
        let svg = timeline("c", &Timeline::of(&journal), &[]);
        assert_eq!(svg.matches(r#"data-kind="kmsg""#).count(), 2, "{svg}");
        assert!(svg.contains(
            r#"class="kmsg deny" data-kind="kmsg" data-seq="2" data-level="4" data-start-ns="10" data-end-ns="10" data-deny="WARNING""#
        ), "{svg}");
        assert!(svg.contains(r#"class="kmsg" data-kind="kmsg" data-seq="3""#));
    }

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(tick_label(2_000_000_000), "2s");
        assert_eq!(tick_label(1_200_000_000), "1.2s");
        assert_eq!(tick_label(50_000_000), "0.05s");
    }
}
