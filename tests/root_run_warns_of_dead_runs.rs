//! Issue 11 §4: a run started while a killed run's objects are still there
//! says so on stderr — which run, what it left, and the `stackquake cleanup
//! --run` command that removes it — and removes nothing itself; that command
//! then does remove it, and the next run is quiet about it.
//!
//! Root: the binary reads the real ledger directory (/run/stackquake). The
//! dead run's ledger is written here for a reaped child's pid and lists
//! only a scratch directory inside this test's temp dir, so cleaning it up
//! touches nothing else. The scenario is a SKIP on the host (vm only), so
//! the run itself builds nothing.

#[path = "root_world_support/mod.rs"]
mod support;

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use stackquake::ledger::{DEFAULT_ROOT, RunId, ledger_dir, ledger_path};

const BIN: &str = env!("CARGO_BIN_EXE_stackquake");

const VM_ONLY: &str = "\
schema_version: 1
id: vm-only
title: a scenario that is a SKIP on the host target
requires: { target: [vm] }
timeout: 30s
hosts:
  a: {}
steps:
  - { id: steady, wait: 1s }
expect: []
";

/// Removes the planted ledger even when an assertion fails first.
struct Planted(PathBuf);

impl Drop for Planted {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn run_on_host(scenario: &Path, out: &Path) -> Output {
    Command::new(BIN)
        .args(["run", "--target", "host", "--output"])
        .arg(out)
        .arg(scenario)
        .output()
        .unwrap()
}

#[test]
fn a_run_names_a_dead_runs_leftovers_and_the_command_that_removes_them() {
    support::require_root_and(&[], &[]);
    let tmp = tempfile::tempdir().unwrap();
    let scenario = tmp.path().join("vm-only.yaml");
    std::fs::write(&scenario, VM_ONLY).unwrap();

    // The dead run: its process has exited and been reaped.
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    let run = RunId::generate();
    let root = Path::new(DEFAULT_ROOT);
    // As the engine makes it: private to root.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(ledger_dir(root))
        .unwrap();
    let path = ledger_path(root, &run);
    let scratch = tmp.path().join(format!("sq-{run}"));
    std::fs::create_dir(&scratch).unwrap();
    std::fs::write(
        &path,
        format!(
            "{}\n{}\n",
            serde_json::json!({"record": "header", "run_id": run.as_str(), "pid": pid,
                "pid_starttime": 1, "started_at": "2025-11-21T19:53:00Z",
                "scenario": "killed.yaml"}),
            serde_json::json!({"record": "create", "id": 1,
                "object": {"kind": "temp_dir", "path": scratch}}),
        ),
    )
    .unwrap();
    let _planted = Planted(path.clone());

    let out = run_on_host(&scenario, &tmp.path().join("out1"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "a SKIP run exits 0:\n{stderr}");
    let warning = format!(
        "warning: run {run} (pid {pid}, started 2025-11-21T19:53:00Z, killed.yaml) \
         died and left 1 object behind: 1 temp dir\n  \
         remove them with: stackquake cleanup --run {run}   (ledger: {})",
        path.display()
    );
    assert!(
        stderr.contains(&warning),
        "expected\n{warning}\nin:\n{stderr}"
    );
    // Said before the run starts, and nothing removed.
    assert!(
        stderr.find(&warning) < stderr.find("running vm-only"),
        "{stderr}"
    );
    assert!(path.exists() && scratch.exists());

    // The command it names removes exactly that run's objects.
    let cleanup = Command::new(BIN)
        .args(["cleanup", "--run", run.as_str()])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&cleanup.stdout);
    assert_eq!(cleanup.status.code(), Some(0), "{said}");
    assert!(!path.exists() && !scratch.exists(), "{said}");

    let out = run_on_host(&scenario, &tmp.path().join("out2"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains(run.as_str()), "{stderr}");
}
