//! Bad input gets a clear error, exit code 2, and changes nothing.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_stackquake");

fn bad_scenario() -> tempfile::NamedTempFile {
    let f = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::fs::write(
        f.path(),
        "schema_version: 1\nid: bad\ntitle: t\nhosts: { a: {} }\nsteps:\n  - { id: s, wiat: 2s }\n",
    )
    .unwrap();
    f
}

#[test]
fn validate_names_file_line_column_and_exits_2() {
    let f = bad_scenario();
    let out = Command::new(BIN)
        .arg("validate")
        .arg(f.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("{}:6:", f.path().display())), "{err}");
    assert!(err.contains("unknown field `wiat`"), "{err}");
    assert!(err.contains("did you mean `wait`?"), "{err}");
}

#[test]
fn run_with_a_bad_scenario_runs_nothing() {
    let f = bad_scenario();
    let good = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios/xfs-shutdown-under-writes.yaml");
    let out_dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["run", "--target", "host", "--output"])
        .arg(out_dir.path())
        .arg(&good)
        .arg(f.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing was run"));
    assert!(
        !out_dir.path().join("journal.json").exists(),
        "no scenario ran"
    );
}

#[test]
fn a_missing_path_is_invalid_input() {
    let out = Command::new(BIN)
        .args(["validate", "/nonexistent/x.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such file"));
}

#[test]
fn a_guest_without_vcpus_is_refused_with_the_valid_range() {
    let good = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios/xfs-shutdown-under-writes.yaml");
    let out = Command::new(BIN)
        .args(["run", "--vm", "--vm-cpus", "0"])
        .arg(&good)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--vm-cpus") && err.contains("1..=64"), "{err}");
}
