//! The CI examples users copy are valid for the systems that run them: the
//! GitHub Actions workflow against GitHub's workflow schema
//! (check-jsonschema's vendored copy), the Kubernetes Indexed Job against
//! Kubernetes' own schemas (kubernetes-validate, strict: an unknown field
//! is an error). Both validators come from ci/setup's venv; without them
//! this fails, naming the fix. And each example splits the suite the way
//! `--partition` counts: as many shares as jobs, K from 1.

use std::path::{Path, PathBuf};
use std::process::Command;

const VALIDATORS: &str = "/opt/stackquake-validators/bin";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn validator(name: &str) -> PathBuf {
    let path = Path::new(VALIDATORS).join(name);
    assert!(
        path.is_file(),
        "{} missing: run ci/setup (it installs the schema validators)",
        path.display()
    );
    path
}

/// Runs a validator on `file`; its exit status and everything it said.
fn check(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

fn check_workflow(file: &Path) -> (bool, String) {
    check(
        Command::new(validator("check-jsonschema"))
            .args(["--builtin-schema", "vendor.github-workflows"])
            .arg(file),
    )
}

fn check_manifest(file: &Path) -> (bool, String) {
    check(
        Command::new(validator("kubernetes-validate"))
            .arg("--strict")
            .arg(file),
    )
}

const WORKFLOW: &str = ".github/workflows/scenarios.yml";
const INDEXED_JOB: &str = "ci/examples/k8s-indexed-job.yaml";

#[test]
fn the_github_workflow_is_valid_and_its_matrix_covers_every_share() {
    let path = repo().join(WORKFLOW);
    let (ok, said) = check_workflow(&path);
    assert!(ok, "{said}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("kernel: [\"6.1\", \"6.12\"]"), "{text}");
    assert!(text.contains("partition: [1, 2, 3]"), "{text}");
    assert!(
        text.contains("--partition \"${{ matrix.partition }}/3\""),
        "{text}"
    );
    assert!(text.contains("junit.xml"), "the JUnit files are shown");
    // The validator is not a rubber stamp: a misspelt key fails.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yml");
    std::fs::write(&bad, text.replace("runs-on:", "runs_on:")).unwrap();
    let (ok, said) = check_workflow(&bad);
    assert!(!ok && said.contains("runs-on"), "{said}");
}

#[test]
fn the_indexed_job_is_valid_and_maps_its_index_to_a_partition() {
    let path = repo().join(INDEXED_JOB);
    let (ok, said) = check_manifest(&path);
    assert!(ok, "{said}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("completionMode: Indexed"), "{text}");
    assert!(text.contains("completions: 4"), "{text}");
    assert!(
        text.contains("name: SHARES\n              value: \"4\""),
        "SHARES must equal completions\n{text}"
    );
    assert!(
        text.contains("--partition \"$((JOB_COMPLETION_INDEX + 1))/$SHARES\""),
        "{text}"
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, text.replace("parallelism:", "paralelism:")).unwrap();
    let (ok, said) = check_manifest(&bad);
    assert!(!ok && said.contains("paralelism"), "{said}");
}

const REHEARSAL_JOB: &str = "staging/k8s/rehearsal-job.yaml";

/// The scenario a manifest's ConfigMap carries under `rehearsal.yaml: |`.
fn configmap_scenario(manifest: &str) -> String {
    let mut lines = manifest
        .lines()
        .skip_while(|l| !l.ends_with("rehearsal.yaml: |"));
    lines.next().expect("a rehearsal.yaml in the ConfigMap");
    lines
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| l.get(4..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

// The staging rehearsal fan-out on Kubernetes: valid for the API server
// (strict), one pod per node in the node's network and pid namespaces,
// each node's results under its own name, and a scenario in its
// ConfigMap that stackquake itself accepts as a rehearsal.
#[test]
fn the_rehearsal_job_is_valid_and_keeps_each_nodes_results_apart() {
    let path = repo().join(REHEARSAL_JOB);
    let (ok, said) = check_manifest(&path);
    assert!(ok, "{said}");
    let text = std::fs::read_to_string(&path).unwrap();
    for needed in [
        "completionMode: Indexed",
        "hostNetwork: true",
        "hostPID: true",
        "privileged: true",
        "topologyKey: kubernetes.io/hostname",
        "subPathExpr: $(NODE_NAME)",
        "fieldPath: spec.nodeName",
        "- --allow-external",
        "- staging",
    ] {
        assert!(text.contains(needed), "missing `{needed}`");
    }
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("rehearsal.yaml");
    std::fs::write(&scenario, configmap_scenario(&text)).unwrap();
    let plan = |vars: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_stackquake"))
            .args([
                "plan",
                "--target",
                "staging",
                "--allow-external",
                "192.0.2.10",
            ])
            .args(vars)
            .arg(&scenario)
            .output()
            .unwrap()
    };
    let out = plan(&["--var", "NODE=node-1"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("pause for the operator"), "{said}");
    assert!(said.contains("writes-stall"), "{said}");
    // The pod's `--var NODE=$(NODE_NAME)` is what names each node's file.
    let out = plan(&[]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("`NODE` is not defined"), "{said}");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, text.replace("hostNetwork:", "hostNetwrk:")).unwrap();
    let (ok, said) = check_manifest(&bad);
    assert!(!ok && said.contains("hostNetwrk"), "{said}");
}

/// What the examples run is a command line stackquake accepts: the first
/// and last share of each, on the seed scenarios, together list every case
/// once (`list` loads and splits exactly as `run` does).
#[test]
fn the_examples_shares_together_list_every_case_once() {
    let list = |partition: Option<&str>| -> Vec<String> {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_stackquake"));
        cmd.arg("list");
        if let Some(p) = partition {
            cmd.args(["--partition", p]);
        }
        let out = cmd.arg(repo().join("scenarios")).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    };
    let all = list(None);
    for n in [3, 4] {
        let mut shares: Vec<String> = (1..=n)
            .flat_map(|k| list(Some(&format!("{k}/{n}"))))
            .collect();
        shares.sort();
        let mut want = all.clone();
        want.sort();
        assert_eq!(shares, want, "{n} shares");
    }
}
