//! What a run writes, end to end on the host: `--format json` is one JSON
//! document on stdout; stderr (not a terminal here) has a plain progress line
//! per step and fault event and no escape codes; junit.xml parses and holds
//! each step's kernel log slice and the hung ops' stacks; the default output
//! directory has per-step artifacts, report.html and a `latest` link.

#[path = "root_world_support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_stackquake");

#[test]
fn json_progress_junit_and_the_output_directory() {
    support::require_root_and(&["mkfs.xfs", "flock"], &["/dev/loop-control", "/dev/kmsg"]);
    let cwd = tempfile::tempdir().unwrap();
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/flock-held-elsewhere.yaml");
    let out = Command::new(BIN)
        .current_dir(cwd.path())
        .args(["run", "--target", "host", "--format", "json"])
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    // stdout is exactly one JSON document: the run report.
    let report: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{stdout}"));
    let result = &report["results"][0];
    assert_eq!(result["verdict"], "PASS", "{result:#}\n{stderr}");
    assert_eq!(out.status.code(), Some(0));
    let run_id = report["run_id"].as_str().unwrap();

    // Progress: plain lines, in order, no terminal control.
    assert!(
        !stderr.contains('\x1b') && !stderr.contains('\r'),
        "{stderr:?}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    let pos = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no `{needle}` in progress:\n{stderr}"))
    };
    assert!(pos("begin  steady") < pos("end    steady"));
    assert!(pos("end    steady") < pos("begin  hold"));
    assert!(pos("begin  hold") < pos("exit   hold: code 0"));
    assert!(pos("hang   locker op") > pos("begin  hold"), "{stderr}");
    assert!(pos("end    after") < pos("PASS flock-held-elsewhere"));

    // Kernel lines carry the kernel's own stamp on the run's clock: each
    // step marker lands just before the StepBegin the engine recorded right
    // after writing it, and setup's XFS mount line before the first step.
    let events = result["journal"]["events"].as_array().expect("events");
    let case_run = result["journal"]["run_id"].as_str().unwrap();
    let t_of = |kind: &str, pred: &dyn Fn(&serde_json::Value) -> bool| {
        events
            .iter()
            .find(|e| e["event"] == kind && pred(e))
            .and_then(|e| e["t_ns"].as_u64())
            .unwrap_or_else(|| panic!("no timed {kind} event"))
    };
    let kmsg: Vec<&serde_json::Value> = events.iter().filter(|e| e["event"] == "kmsg").collect();
    assert!(kmsg.iter().all(|e| e["t_ns"].is_u64()), "{kmsg:#?}");
    for step in ["steady", "hold", "after"] {
        let marker = format!("stackquake[{case_run}]: step {step} begin");
        let logged = t_of("kmsg", &|e| e["text"] == marker.as_str());
        let begun = t_of("step_begin", &|e| e["step"] == step);
        assert!(
            logged <= begun && begun - logged < 1_000_000_000,
            "marker of {step} at {logged} ns, its StepBegin at {begun} ns"
        );
    }
    let mounted = t_of("kmsg", &|e| {
        e["text"].as_str().unwrap().contains("XFS (loop")
    });
    assert!(mounted < t_of("step_begin", &|e| e["step"] == "steady"));

    // The output directory and its `latest` link.
    let dir = cwd.path().join("stackquake-out").join(run_id);
    // The timeline page is written beside the journal (issue 16).
    let page = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(page.contains(r#"data-kind="case" data-scenario="flock-held-elsewhere""#));
    let latest = std::fs::read_link(cwd.path().join("stackquake-out/latest")).unwrap();
    assert_eq!(latest, Path::new(run_id));
    let on_disk: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("journal.json")).unwrap()).unwrap();
    assert_eq!(
        on_disk, report,
        "stdout and journal.json are the same document"
    );
    for step in ["steady", "hold", "after"] {
        for f in [
            "kmsg.txt",
            "stacks.txt",
            "mountstats-before.txt",
            "mountstats.txt",
        ] {
            let p = dir.join("flock-held-elsewhere").join(step).join(f);
            assert!(p.is_file(), "{} missing", p.display());
        }
    }
    let stacks = std::fs::read_to_string(dir.join("flock-held-elsewhere/hold/stacks.txt")).unwrap();
    assert!(stacks.contains("locker op"), "{stacks}");

    // JUnit: parses; system-out has per-step kmsg slices and the hung stacks.
    let xml = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    let junit = quick_junit::Report::deserialize_from_str(&xml).expect("junit.xml parses");
    let case = &junit.test_suites[0].test_cases[0];
    // Named with the kernel it ran on, so a kernel matrix's files merge.
    let kernel = report["kernel"].as_str().unwrap();
    assert_eq!(
        case.name.as_str(),
        format!("flock-held-elsewhere on {kernel}")
    );
    assert!(matches!(
        case.status,
        quick_junit::TestCaseStatus::Success { .. }
    ));
    let system_out = case.system_out.as_ref().unwrap().to_string();
    assert!(
        system_out.contains("--- hung tasks (ops past their deadline) ---\nlocker op"),
        "{system_out}"
    );
    assert!(system_out.contains("state S in"), "{system_out}");
    // Each step's slice is there when the kernel logged anything in it; the
    // setup's XFS mount lines come before the first step.
    assert!(system_out.contains("XFS (loop"), "{system_out}");
}
