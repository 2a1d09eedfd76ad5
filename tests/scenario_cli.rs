//! `plan`, `list` and `validate` with matrices and --var: no privileges, no
//! side effects.

use std::process::Command;

fn stackquake(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_stackquake"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const MATRIX: &str = "schema_version: 1
id: storm
title: parallel mounts
vars: { n: '4' }
matrix: { vers: ['3', '4.1'] }
hosts: { a: {} }
steps:
  - { id: steady, wait: 1s }
  - { id: probe, after: steady, offset: 250ms, exec: { host: a, command: [echo, 'vers=${vers} n=${n}'] }, timeout: 5s }
  - id: both
    parallel:
      - { id: x, wait: 2s }
      - { id: y, offset: 1s, wait: 2s }
";

#[test]
fn plan_shows_the_resolved_timeline_of_every_matrix_case() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.yaml");
    std::fs::write(&file, MATRIX).unwrap();
    let (code, out, err) = stackquake(&["plan", "--var", "n=16", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("storm[vers=3]") && out.contains("storm[vers=4.1]"),
        "{out}"
    );
    assert!(
        out.contains("exec on a: echo vers=4.1 n=16"),
        "--var overrides vars: {out}"
    );
    assert!(out.contains("after steady ends + 250ms"), "{out}");
    assert!(out.contains("with group both + 1s"), "{out}");
    // x and y run side by side; the group ends with y, at +3s after it began.
    assert!(
        out.contains("y              ?..?"),
        "after an exec, times are unknown: {out}"
    );
    assert!(out.contains("(timeout 5s)"), "{out}");
}

#[test]
fn list_names_cases_and_validate_rejects_the_bad_corpus_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.yaml"), MATRIX).unwrap();
    let (code, out, _) = stackquake(&["list", dir.path().to_str().unwrap()]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 2, "{out}");
    let bad = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scenarios/bad");
    let (code, out, err) = stackquake(&["validate", bad]);
    assert_eq!(code, 2);
    assert!(out.contains("0 valid, "), "{out}");
    assert!(
        err.contains("step-after-later.yaml:23:26: steps[0].after"),
        "{err}"
    );
}
