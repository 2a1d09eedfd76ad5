//! `run --target host` (or staging) as an ordinary user: the environment, not the
//! scenario, is at fault, so it exits 69 with what to do, before touching
//! anything. Needs root only to drop to `nobody` for the run.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_stackquake");

/// Runs `stackquake run <args> --output <dir> <scenario>` as `nobody` on a
/// copy of the repository's `scenario` that nobody may read, and checks
/// that it exits 69 and writes no output; returns what it said.
fn run_as_nobody(scenario: &str, args: &[&str]) -> String {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test drops from root to nobody; run it as root"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = dir.path().join("s.yaml");
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join(scenario), &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out_dir = dir.path().join("out");
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            BIN,
            "run",
        ])
        .args(args)
        .arg("--output")
        .arg(&out_dir)
        .arg(&copy)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(69), "{err}");
    assert!(
        !out_dir.exists(),
        "an unavailable run wrote {}",
        out_dir.display()
    );
    err
}

#[test]
fn a_host_run_without_root_exits_69_and_says_what_to_do() {
    let err = run_as_nobody(
        "scenarios/xfs-shutdown-under-writes.yaml",
        &["--target", "host"],
    );
    assert!(err.contains("the host target needs root"), "{err}");
    assert!(err.contains("--target vm"), "{err}");
}

// The same for a rehearsal that passes the --allow-external rail: root is
// checked after it and before anything is touched.
#[test]
fn a_staging_run_without_root_exits_69_and_says_what_to_do() {
    let err = run_as_nobody(
        "staging/failover-rehearsal.yaml",
        &["--target", "staging", "--allow-external", "192.0.2.10"],
    );
    assert!(err.contains("the staging target needs root"), "{err}");
}
