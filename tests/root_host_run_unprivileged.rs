//! `run --target host` (or staging) as an ordinary user: the environment, not the
//! scenario, is at fault, so it exits 69 with what to do, before touching
//! anything. Needs root only to drop to `nobody` for the run.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_stackquake");

#[test]
fn a_host_run_without_root_exits_69_and_says_what_to_do() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test drops from root to nobody; run it as root"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let scenario = dir.path().join("s.yaml");
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scenarios/xfs-shutdown-under-writes.yaml"),
        &scenario,
    )
    .unwrap();
    std::fs::set_permissions(&scenario, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out_dir = dir.path().join("out");
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
        .args(["run", "--target", "host", "--output"])
        .arg(&out_dir)
        .arg(&scenario)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{err}");
    assert!(err.contains("the host target needs root"), "{err}");
    assert!(err.contains("--target vm"), "{err}");
    assert!(
        !out_dir.exists(),
        "an unavailable run wrote {}",
        out_dir.display()
    );
}

// The same for a rehearsal that passes the --allow-external rail: root is
// checked after it and before anything is touched.
#[test]
fn a_staging_run_without_root_exits_69_and_says_what_to_do() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test drops from root to nobody; run it as root"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let scenario = dir.path().join("s.yaml");
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("staging/failover-rehearsal.yaml"),
        &scenario,
    )
    .unwrap();
    std::fs::set_permissions(&scenario, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out_dir = dir.path().join("out");
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
        .args([
            "run",
            "--target",
            "staging",
            "--allow-external",
            "192.0.2.10",
        ])
        .arg("--output")
        .arg(&out_dir)
        .arg(&scenario)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{err}");
    assert!(err.contains("the staging target needs root"), "{err}");
    assert!(
        !out_dir.exists(),
        "an unavailable run wrote {}",
        out_dir.display()
    );
}
