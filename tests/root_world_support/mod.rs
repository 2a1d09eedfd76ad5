//! Shared by the root_world_* tests: the loud guard and per-test scaffolding.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use stackquake::ledger::{Ledger, RunId};

/// Panics unless we are root and every tool and device node is present:
/// these tests must fail loudly, never skip.
pub fn require_root_and(tools: &[&str], nodes: &[&str]) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "root_world tests need root (run as uid 0)"
    );
    for tool in tools {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false);
        assert!(
            found,
            "required tool `{tool}` is not installed (not on PATH)"
        );
    }
    for node in nodes {
        assert!(
            Path::new(node).exists(),
            "required kernel interface {node} is missing"
        );
    }
}

/// A fresh run: its own id, its own ledger root and scratch dir named
/// `sq-<run>-…` so that the orphan sweep can attribute what is below it.
pub struct TestRun {
    pub run: RunId,
    pub root: tempfile::TempDir,
    pub scratch: tempfile::TempDir,
    pub ledger: Ledger,
}

impl TestRun {
    pub fn new(test: &str) -> TestRun {
        let run = RunId::generate();
        let root = tempfile::Builder::new()
            .prefix("sqroot-")
            .tempdir()
            .expect("ledger root");
        let scratch = tempfile::Builder::new()
            .prefix(&format!("sq-{run}-"))
            .tempdir()
            .expect("scratch dir");
        let ledger = Ledger::create(root.path(), &run, Path::new(test)).expect("ledger");
        TestRun {
            run,
            root,
            scratch,
            ledger,
        }
    }

    pub fn scratch(&self, name: &str) -> PathBuf {
        self.scratch.path().join(name)
    }
}

pub fn netns_entries_of(run: &RunId) -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&format!("sq-{run}-")))
                .collect()
        })
        .unwrap_or_default()
}
