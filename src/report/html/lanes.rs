//! One lane per workload: each op a mark at its start time, its latency on
//! a log scale; failed ops in their own colour with the errno; ops past
//! their deadline as open bars with the sampled state and wchan.

use super::escape::esc;
use super::scale::{LatencyScale, TimeScale};
use super::timeline::{Lane, OpMark};
use std::fmt::Write;

pub const LANE_HEIGHT: f64 = 72.0;
pub const LANE_GAP: f64 = 10.0;
/// Room at a lane's top for hang bars and their labels, above the latencies.
const HANG_ROW: f64 = 14.0;

/// Draws `lane` with its top edge at `top`.
pub fn lane(out: &mut String, lane: &Lane, top: f64, time: &TimeScale, max_latency_ns: u64) {
    let latency = LatencyScale::fitting(max_latency_ns, top + HANG_ROW, LANE_HEIGHT - HANG_ROW);
    let workload = esc(&lane.workload);
    let _ = write!(
        out,
        r#"<g data-kind="lane" data-workload="{workload}"><rect class="lane" data-kind="lane-area" data-workload="{workload}" x="{:.1}" y="{top:.1}" width="{:.1}" height="{LANE_HEIGHT}"/><text class="lane-name" x="4" y="{:.1}">{workload}</text>"#,
        time.left,
        time.width,
        top + 14.0
    );
    for (i, d) in latency.decades().into_iter().enumerate() {
        let y = latency.y(d);
        let _ = write!(
            out,
            r#"<line class="grid" x1="{:.1}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}"/>"#,
            time.left,
            time.left + time.width,
        );
        // Every other decade is labelled: six labels in one lane collide.
        if i % 2 == 0 {
            let _ = write!(
                out,
                r#"<text class="decade" x="{:.1}" y="{:.1}">{}</text>"#,
                time.left - 4.0,
                y + 3.0,
                decade_label(d)
            );
        }
    }
    let mut last_error: Option<i32> = None;
    for op in &lane.ops {
        mark(out, op, time, &latency);
        // Label the first op of each run of the same error, not every op:
        // 10,000 labels would bury the picture.
        let error = op.failed().then(|| op.errno.unwrap_or(0));
        if let Some(errno) = error
            && last_error != Some(errno)
        {
            let _ = write!(
                out,
                r#"<text class="errno" data-kind="errno-label" data-workload="{workload}" data-start-ns="{}" x="{:.1}" y="{:.1}">{}</text>"#,
                op.start_ns,
                time.x(op.start_ns) + 3.0,
                latency.y(op.latency_ns) - 3.0,
                esc(&failure_label(op))
            );
        }
        last_error = error;
    }
    for h in &lane.hangs {
        let end = h.end_ns.unwrap_or(time.end_ns);
        let (x1, x2) = (time.x(h.start_ns), time.x(end));
        let _ = write!(
            out,
            r#"<g data-kind="hang" data-workload="{workload}" data-seq="{}" data-start-ns="{}" data-end-ns="{end}" data-sampled-ns="{}" data-finished="{}" data-state="{}" data-wchan="{}"><title>{workload} op {} past its deadline: state {} in {}{}</title><rect class="hang" x="{x1:.1}" y="{:.1}" width="{:.1}" height="8"/><text class="hang-label" x="{:.1}" y="{:.1}">{} {}</text></g>"#,
            h.seq,
            h.start_ns,
            h.sampled_ns,
            h.end_ns.is_some(),
            esc(&h.state),
            esc(&h.wchan),
            h.seq,
            esc(&h.state),
            esc(&h.wchan),
            h.mounts
                .as_deref()
                .map(|m| format!("; {}", esc(m)))
                .unwrap_or_default(),
            top + 3.0,
            (x2 - x1).max(2.0),
            x1 + 3.0,
            top + 10.0,
            esc(&h.state),
            esc(&h.wchan),
        );
    }
    out.push_str("</g>");
}

/// One op: a small square (its size is in the page's CSS). Hover text is
/// built by the page's script from its data attributes and its lane's
/// `data-workload`: a <title> or the workload name on each op would double
/// the size of a large run (bench/README.md).
fn mark(out: &mut String, op: &OpMark, time: &TimeScale, latency: &LatencyScale) {
    let x = time.x(op.start_ns) - 1.5;
    let y = latency.y(op.latency_ns) - 1.5;
    let _ = write!(
        out,
        r#"<rect data-kind="op" data-seq="{}" data-start-ns="{}" data-latency-ns="{}""#,
        op.seq, op.start_ns, op.latency_ns
    );
    if op.failed() {
        out.push_str(r#" class="err""#);
    }
    if let Some(errno) = op.errno {
        let _ = write!(out, r#" data-errno="{}""#, esc(&crate::errno::name(errno)));
    }
    if let Some(code) = op.exit_code {
        let _ = write!(out, r#" data-exit-code="{code}""#);
    }
    if let Some(mounts) = &op.mounts {
        let _ = write!(out, r#" data-mounts="{}""#, esc(mounts));
    }
    if let Some(stage) = &op.stage
        && op.failed()
    {
        let _ = write!(out, r#" data-stage="{}""#, esc(stage));
    }
    let _ = write!(out, r#" x="{x:.1}" y="{y:.1}"/>"#);
}

/// A power of ten of nanoseconds, without decimals: `10µs`, `100ms`, `1s`.
fn decade_label(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns}ns"),
        1_000..1_000_000 => format!("{}µs", ns / 1_000),
        1_000_000..1_000_000_000 => format!("{}ms", ns / 1_000_000),
        _ => format!("{}s", ns / 1_000_000_000),
    }
}

fn failure_label(op: &OpMark) -> String {
    let what = match (op.errno, op.exit_code) {
        (Some(e), _) => crate::errno::name(e),
        (None, Some(code)) => format!("exit {code}"),
        (None, None) => "failed".into(),
    };
    match &op.stage {
        Some(stage) => format!("{what} in {stage}"),
        None => what,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::html::timeline::HangBar;

    fn op(seq: u64, start_ns: u64, latency_ns: u64, errno: Option<i32>) -> OpMark {
        OpMark {
            seq,
            start_ns,
            latency_ns,
            errno,
            stage: Some("write".into()),
            exit_code: None,
            mounts: None,
        }
    }

    #[test]
    fn errors_carry_their_errno_and_runs_of_one_error_are_labelled_once() {
        let l = Lane {
            workload: "w<1>".into(),
            ops: vec![
                op(1, 0, 50_000, None),
                op(2, 10, 50_000, Some(5)),
                op(3, 20, 50_000, Some(5)),
                op(4, 30, 50_000, Some(116)),
            ],
            hangs: vec![],
        };
        let mut out = String::new();
        let time = TimeScale::new(0, 100, 100.0, 1000.0);
        lane(&mut out, &l, 0.0, &time, 0);
        assert_eq!(out.matches(r#"data-kind="op""#).count(), 4);
        assert_eq!(out.matches(r#"data-errno="EIO""#).count(), 2);
        assert_eq!(
            out.matches(r#"data-kind="errno-label""#).count(),
            2,
            "{out}"
        );
        assert!(out.contains(">EIO in write<"));
        assert!(out.contains(">ESTALE in write<"));
        assert!(out.contains(r#"data-workload="w&lt;1&gt;""#));
        assert!(!out.contains("<1>"));
    }

    #[test]
    fn decades_are_labelled_without_decimals() {
        let labels: Vec<String> = [10_000, 100_000_000, 10_000_000_000]
            .into_iter()
            .map(decade_label)
            .collect();
        assert_eq!(labels, ["10µs", "100ms", "10s"]);
    }

    #[test]
    fn a_hang_that_never_finished_runs_to_the_axis_end() {
        let l = Lane {
            workload: "w".into(),
            ops: vec![],
            hangs: vec![HangBar {
                seq: 9,
                start_ns: 500,
                sampled_ns: 800,
                end_ns: None,
                state: "D".into(),
                wchan: "<rpc_wait_bit_killable>".into(),
                mounts: None,
            }],
        };
        let mut out = String::new();
        lane(
            &mut out,
            &l,
            0.0,
            &TimeScale::new(0, 2_000_000, 0.0, 100.0),
            0,
        );
        assert!(
            out.contains(r#"data-end-ns="2000000" data-sampled-ns="800" data-finished="false""#)
        );
        assert!(out.contains("D &lt;rpc_wait_bit_killable&gt;"), "{out}");
    }
}
