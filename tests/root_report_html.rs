//! report.html of a real run, looked at in headless Chromium: an XFS
//! image shut down under an fsyncing writer, with a hostile kernel line
//! written by an exec step. The page's fault band, workload lane, error
//! marks and kernel lines must be there, drawn where the journal's times
//! say, and the kernel's text must arrive as text, never as markup.
//! `stackquake report DIR` must render the same page again.

#[path = "engine_support/mod.rs"]
mod engine;
#[path = "report_html_support/mod.rs"]
mod page;

use engine::{Case, at, events};
use page::{Axis, center_x, center_y, left, ns, of_kind, right};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_stackquake");

/// Marked so the test can find it among the machine's other kernel lines.
const HOSTILE: &str = r#"<script>sq-html-probe</script> & "q""#;

const SCENARIO: &str = r#"schema_version: 1
id: html-report-xfs
title: report.html of an XFS shutdown under writes
requires:
  target: [host]
  kernel_features: [xfs, loop]
  tools: [mkfs.xfs]
timeout: 60s
hosts:
  local: {}
images:
  - { id: vol, host: local, file: /images/vol.img, size: 512M, mkfs: xfs, at: /mnt/vol }
workloads:
  - { id: writer, host: local, op: append, path: /mnt/vol/journal, every: 20ms,
      fsync: true, deadline: 5s }
steps:
  - { id: steady, wait: 600ms }
  - id: mark
    exec: { host: local, command: [sh, -c, 'echo "<script>sq-html-probe</script> & \"q\"" > /dev/kmsg'] }
  - id: shutdown
    fault: { xfs.shutdown: { fs: vol } }
  - { id: after, wait: 800ms }
expect:
  - errno: { workload: writer, errno: EIO, during: [shutdown, after] }
  - exit_code: { step: mark, code: 0 }
"#;

/// Half a pixel of rounding either side, and the marks' own size.
const PX: f64 = 2.0;

#[test]
fn the_page_of_a_real_run_shows_faults_lanes_errors_and_kernel_lines_in_time() {
    engine::require_root();
    page::require_chromium();
    let _serial = engine::serial();
    let case = Case::new(SCENARIO);
    let (code, stdout, result) = case.run();
    assert_eq!(code, 0, "{stdout}\n{result:#}");
    let out = case.out();
    let html = out.join("report.html");
    assert!(
        stdout.contains(&format!("timeline: {}", html.display())),
        "{stdout}"
    );

    let shot = page::screenshot(&html, "root_report_html-xfs-shutdown");
    assert!(shot.starts_with(env!("CARGO_TARGET_TMPDIR")));
    let probe = page::probe(&html);
    let axis = Axis::of(&probe);

    // The fault band spans injection to healing, and is drawn there.
    let bands = of_kind(&probe, "fault-band");
    assert_eq!(bands.len(), 1, "{bands:#?}");
    let band = bands[0];
    assert_eq!(band["data"]["fault"], "xfs.shutdown");
    let injected = ns_of(&result, "fault_injected");
    let healed = ns_of(&result, "fault_healed");
    assert_eq!((ns(band, "startNs"), ns(band, "endNs")), (injected, healed));
    assert!((left(band) - axis.x(injected)).abs() < PX, "{band}");
    assert!((right(band) - axis.x(healed)).abs() < PX, "{band}");

    // Steps: each drawn from its begin to its end.
    for step in ["steady", "mark", "shutdown", "after"] {
        let s = of_kind(&probe, "step")
            .into_iter()
            .find(|s| s["data"]["step"] == step)
            .unwrap_or_else(|| panic!("no step {step}"));
        let begin = (at(&result, "step_begin", step) * 1e9).round();
        assert!((ns(s, "startNs") as f64 - begin).abs() <= 1.0, "{s}");
    }

    // One lane for the writer, holding every op the journal has, each at
    // its start time and inside the lane.
    let lanes = of_kind(&probe, "lane-area");
    assert_eq!(lanes.len(), 1);
    assert_eq!(lanes[0]["data"]["workload"], "writer");
    let (lane_top, lane_bottom) = (
        lanes[0]["box"]["top"].as_f64().unwrap(),
        lanes[0]["box"]["bottom"].as_f64().unwrap(),
    );
    let ops = events(&result, "op");
    let marks = of_kind(&probe, "op");
    assert_eq!(marks.len(), ops.len());
    for m in &marks {
        assert!(
            right(m) - left(m) >= 2.0,
            "an op mark too small to see: {m}"
        );
        assert!((center_x(m) - axis.x(ns(m, "startNs"))).abs() < PX, "{m}");
        assert!((lane_top..=lane_bottom).contains(&center_y(m)), "{m}");
    }

    // Error marks: one per failed op, EIO, none before the shutdown began
    // (an op can only fail once the filesystem is down), and labelled.
    let shutdown_began = (at(&result, "step_begin", "shutdown") * 1e9) as u64;
    let failed = ops.iter().filter(|o| o["errno"] == 5).count();
    let errors: Vec<_> = marks
        .iter()
        .filter(|m| m["data"]["errno"].is_string())
        .collect();
    assert!(failed > 0);
    assert_eq!(errors.len(), failed);
    for e in &errors {
        assert_eq!(e["data"]["errno"], "EIO", "{e}");
        let end = ns(e, "startNs") + ns(e, "latencyNs");
        assert!(end >= shutdown_began, "an error before the fault: {e}");
    }
    let labels = of_kind(&probe, "errno-label");
    assert!(!labels.is_empty());
    assert!(ns(labels[0], "startNs") + 5_000_000_000 >= shutdown_began);

    // Kernel lines: XFS's shutdown line is drawn at the kernel's own stamp,
    // which lies between the shutdown step's begin and the injection's
    // record; the hostile line lies in the mark step and arrives as text.
    let kmsg = of_kind(&probe, "kmsg");
    let xfs = kmsg
        .iter()
        .find(|k| {
            k["title"]
                .as_str()
                .unwrap()
                .contains("User initiated shutdown")
        })
        .expect("the XFS shutdown line is on the axis");
    assert!(ns(xfs, "startNs") >= shutdown_began, "{xfs}");
    assert!(ns(xfs, "startNs") <= injected, "{xfs}");
    assert_eq!(ns(xfs, "endNs"), ns(xfs, "startNs"), "a point: {xfs}");
    assert!((xfs["line"]["left"].as_f64().unwrap() - axis.x(ns(xfs, "startNs"))).abs() < PX);
    assert!((xfs["line"]["right"].as_f64().unwrap() - axis.x(ns(xfs, "endNs"))).abs() < PX);
    let hostile = kmsg
        .iter()
        .find(|k| k["title"].as_str().unwrap().contains(HOSTILE))
        .expect("the hostile line is on the axis, as text");
    let mark_began = (at(&result, "step_begin", "mark") * 1e9) as u64;
    assert!(ns(hostile, "startNs") >= mark_began, "{hostile}");
    let rows = of_kind(&probe, "kmsg-line");
    assert!(
        rows.iter()
            .any(|r| r["text"].as_str().unwrap().contains(HOSTILE))
    );
    assert_eq!(
        probe["scripts"], 2,
        "the page's own script and the probe, nothing from a kernel line"
    );

    // Expectations with their verdicts; artifacts linked for every step.
    let expectations = of_kind(&probe, "expectation");
    assert_eq!(
        expectations.len(),
        result["outcomes"].as_array().unwrap().len()
    );
    assert!(expectations.iter().all(|e| e["data"]["passed"] == "true"));
    let artifacts = of_kind(&probe, "artifact");
    for step in ["steady", "mark", "shutdown", "after"] {
        assert!(
            artifacts.iter().any(|a| a["data"]["step"] == step),
            "no artifacts linked for {step}"
        );
    }

    // `stackquake report DIR` renders the same page from the journal.
    let written = std::fs::read_to_string(&html).unwrap();
    std::fs::remove_file(&html).unwrap();
    let again = Command::new(BIN).arg("report").arg(&out).output().unwrap();
    assert!(again.status.success(), "{again:?}");
    assert_eq!(
        String::from_utf8_lossy(&again.stdout).trim(),
        html.display().to_string()
    );
    assert_eq!(std::fs::read_to_string(&html).unwrap(), written);
}

/// A lock held elsewhere (scenarios/flock-held-elsewhere.yaml): the
/// locker's ops past their deadline are open bars from their start, inside
/// the hold step, with the state and wchan the engine sampled.
#[test]
fn hung_ops_are_open_bars_with_their_state_and_wchan() {
    engine::require_root();
    page::require_chromium();
    let _serial = engine::serial();
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios/flock-held-elsewhere.yaml");
    let case = Case::new(&std::fs::read_to_string(file).unwrap());
    let (code, stdout, result) = case.run();
    assert_eq!(code, 0, "{stdout}\n{result:#}");
    let html = case.out().join("report.html");
    page::screenshot(&html, "root_report_html-flock-held-elsewhere");
    let probe = page::probe(&html);
    let axis = Axis::of(&probe);
    let sampled = events(&result, "indeterminate");
    let bars = of_kind(&probe, "hang");
    assert!(!sampled.is_empty());
    assert_eq!(bars.len(), sampled.len());
    let hold_began = (at(&result, "step_begin", "hold") * 1e9) as u64;
    let hold_ended = (at(&result, "step_end", "hold") * 1e9) as u64;
    for (bar, event) in bars.iter().zip(&sampled) {
        assert_eq!(bar["data"]["workload"], "locker");
        assert_eq!(bar["data"]["state"], event["state"]);
        assert_eq!(bar["data"]["wchan"], event["wchan"]);
        assert!(
            bar["data"]["wchan"].as_str().unwrap().contains("lock"),
            "{bar}"
        );
        let start = ns(bar, "startNs");
        assert_eq!(start, event["start_ns"].as_u64().unwrap());
        assert!((hold_began..=hold_ended).contains(&start), "{bar}");
        // It finished once the lock was released, after the hold began.
        assert_eq!(bar["data"]["finished"], "true", "{bar}");
        assert!(ns(bar, "endNs") > ns(bar, "sampledNs"), "{bar}");
        // Drawn from its start to its end.
        let rect_left = bar["box"]["left"].as_f64().unwrap();
        assert!((rect_left - axis.x(start)).abs() < PX, "{bar}");
    }
}

fn ns_of(result: &serde_json::Value, kind: &str) -> u64 {
    events(result, kind)[0]["t_ns"].as_u64().unwrap()
}
