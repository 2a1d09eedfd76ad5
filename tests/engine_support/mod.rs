//! Running the stackquake binary on a scenario written by the test, as root
//! on the host target, and reading back its journal.

#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Panics (never skips) unless we are root with the tools the tests use.
pub fn require_root() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "engine tests need root (netns, loop, XFS, /dev/kmsg); run them as root"
    );
    for tool in ["mkfs.xfs", "ip"] {
        assert!(
            stackquake::tools::which(tool).is_some(),
            "engine tests need `{tool}` on PATH"
        );
    }
}

pub struct Case {
    pub dir: tempfile::TempDir,
    pub file: PathBuf,
}

impl Case {
    pub fn new(yaml: &str) -> Case {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("case.yaml");
        std::fs::write(&file, yaml).unwrap();
        if let Err(e) = stackquake::scenario::load_file(&file) {
            panic!("test scenario is invalid:\n{e}");
        }
        Case { dir, file }
    }

    pub fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    pub fn spawn(&self, extra: &[&str]) -> Child {
        Command::new(env!("CARGO_BIN_EXE_stackquake"))
            .args(["run", "--target", "host", "--output"])
            .arg(self.out())
            .args(extra)
            .arg(&self.file)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Runs to completion: exit code, stdout, and the first scenario's result.
    pub fn run(&self) -> (i32, String, Value) {
        let out = self.spawn(&[]).wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let code = out.status.code().unwrap_or(-1);
        (code, stdout, self.result())
    }

    pub fn result(&self) -> Value {
        journal(&self.out())["results"][0].clone()
    }
}

pub fn journal(out: &Path) -> Value {
    let text = std::fs::read_to_string(out.join("journal.json"))
        .unwrap_or_else(|e| panic!("no journal in {}: {e}", out.display()));
    serde_json::from_str(&text).unwrap()
}

/// The events of a result named `kind`.
pub fn events<'v>(result: &'v Value, kind: &str) -> Vec<&'v Value> {
    result["journal"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == kind)
        .collect()
}

/// t_ns of the first event of `kind` for `step`, in seconds.
pub fn at(result: &Value, kind: &str, step: &str) -> f64 {
    events(result, kind)
        .into_iter()
        .find(|e| e["step"] == step)
        .unwrap_or_else(|| panic!("no {kind} for {step}"))["t_ns"]
        .as_u64()
        .unwrap() as f64
        / 1e9
}

/// An in-process NFS server in its own namespace, and nothing else: faults
/// on it need no NFS client, so these tests run on any kernel with netns.
pub const SERVER_WORLD: &str = "\
requires: { kernel_features: [netns] }
hosts:
  srv: {}
nfs_servers:
  fs1:
    host: srv
    exports: [{ path: /export }]
";

/// The kernel log is one for the whole machine: a test that writes a
/// deny-listed line must not run beside another run's scenario.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}
