//! `stackquake run --vm` on scenario files, as a user runs it, and its
//! journal read back: what the tests that judge whole guest runs share.

#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;

pub struct VmRun {
    /// journal.json of the run.
    pub journal: Value,
    /// stdout and stderr, for assertion messages.
    pub ctx: String,
    pub code: Option<i32>,
    /// The output directory (stream.jsonl, report.html, the guests'
    /// consoles…): removed when this is dropped, kept when a test fails.
    pub out: tempfile::TempDir,
}

impl VmRun {
    /// Runs `stackquake run --vm <args> --output <tmp> <file>`, the file
    /// relative to the crate. Panics (never skips) without root; QEMU or a
    /// kernel missing shows as a run without a journal.
    pub fn new(args: &[&str], file: &str) -> VmRun {
        assert!(
            nix::unistd::geteuid().is_root(),
            "vm tests need root on the host that boots the guest"
        );
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        let out = tempfile::tempdir().unwrap();
        let run = Command::new(env!("CARGO_BIN_EXE_stackquake"))
            .args(["run", "--vm"])
            .args(args)
            .arg("--output")
            .arg(out.path())
            .arg(&path)
            .output()
            .unwrap();
        let ctx = format!(
            "stdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        );
        let text = std::fs::read_to_string(out.path().join("journal.json")).expect(&ctx);
        VmRun {
            journal: serde_json::from_str(&text).unwrap(),
            ctx,
            code: run.status.code(),
            out,
        }
    }

    pub fn results(&self) -> &Vec<Value> {
        self.journal["results"].as_array().unwrap()
    }

    /// The result of case `id`; panics naming it if there is none.
    pub fn result(&self, id: &str) -> &Value {
        self.results()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("no result {id}\n{}", self.ctx))
    }
}

/// A failed assertion about a whole guest run is often decided by files no
/// message can hold (consoles, captures, step artifacts): keep them.
impl Drop for VmRun {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.out.disable_cleanup(true);
            eprintln!("the run's output is kept in {}", self.out.path().display());
        }
    }
}

/// The lines a running child writes to `pipe` (its stderr: the guests'
/// relayed progress), each sent on as it comes.
pub fn lines_of(pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    lines
}
