//! `stackquake report DIR` without root or a browser: it renders
//! report.html from a journal.json alone (an old run, one copied from CI),
//! escapes what the kernel wrote, and refuses a directory without a journal.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_stackquake");

/// A run copied from elsewhere: one scenario, a fault window, a failed op,
/// a kernel line written to break the page.
const JOURNAL: &str = r#"{
  "run_id": "copied1", "stackquake": "0.1.0", "target": "host", "kernel": "6.1",
  "results": [{
    "id": "copied", "title": "a <b>title</b>", "file": "x.yaml", "verdict": "FAIL",
    "reason": "writer sees EIO", "duration_s": 2.0,
    "outcomes": [{"expectation": "writer sees EIO", "passed": false, "detail": "no EIO"}],
    "journal": {"run_id": "j1", "events": [
      {"event": "step_begin", "step": "cut", "t_ns": 100000000},
      {"event": "fault_injected", "step": "cut", "fault": "net.cut", "t_ns": 100000000},
      {"event": "op", "workload": "writer", "seq": 1, "start_ns": 150000000, "end_ns": 160000000, "errno": 5, "stage": "fsync"},
      {"event": "kmsg", "seq": 9, "level": 3, "text": "<img src=x onerror=alert(1)>"},
      {"event": "step_end", "step": "cut", "t_ns": 900000000},
      {"event": "fault_healed", "step": "cut", "fault": "net.cut", "t_ns": 900000000}
    ]}
  }]
}"#;

#[test]
fn report_renders_a_copied_journal() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("journal.json"), JOURNAL).unwrap();
    let out = Command::new(BIN)
        .arg("report")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let html_path = dir.path().join("report.html");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        html_path.display().to_string()
    );
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(html.contains(
        r#"data-kind="fault-band" data-fault="net.cut" data-step="cut" data-start-ns="100000000" data-end-ns="900000000""#
    ));
    assert!(html.contains(r#"data-kind="lane" data-workload="writer""#));
    assert!(html.contains(r#"data-errno="EIO""#));
    assert!(
        !html.contains("<img"),
        "kernel text reached the page as markup"
    );
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert!(!html.contains("<b>title"));
    // Self-contained: nothing is fetched.
    for remote in ["http://", "https://", "src=\"", "<link"] {
        assert!(!html.contains(remote), "the page refers to `{remote}`");
    }
}

#[test]
fn report_of_a_directory_without_a_journal_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("report")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("journal.json"));
    assert!(!dir.path().join("report.html").exists());
}
