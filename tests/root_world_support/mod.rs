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

/// Everything of `run` still on the machine: its namespaces, links, nft
/// tables, mounts, loop devices, processes and scratch directory, found by
/// the run id their names, environment or paths carry.
pub fn leftovers(run: &str) -> Vec<String> {
    let mut left = Vec::new();
    for e in std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.contains(run) {
            left.push(format!("netns {name}"));
        }
    }
    // veth ends are named after the run (sq<run>…) whichever netns they are in;
    // the host's namespace is the one a leak could reach.
    let links = std::process::Command::new("ip")
        .args(["-o", "link"])
        .output()
        .unwrap();
    left.extend(
        String::from_utf8_lossy(&links.stdout)
            .lines()
            .filter(|l| l.contains(run))
            .map(|l| format!("link {l}")),
    );
    let tables = std::process::Command::new("nft")
        .args(["list", "tables"])
        .output()
        .unwrap();
    left.extend(
        String::from_utf8_lossy(&tables.stdout)
            .lines()
            .filter(|l| l.contains(run))
            .map(|l| format!("nft {l}")),
    );
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    left.extend(
        mountinfo
            .lines()
            .filter(|l| l.contains(run))
            .map(|l| format!("mount {l}")),
    );
    for e in std::fs::read_dir("/sys/block").unwrap().flatten() {
        if let Ok(b) = std::fs::read_to_string(e.path().join("loop/backing_file"))
            && b.contains(run)
        {
            left.push(format!(
                "loop {} on {}",
                e.file_name().to_string_lossy(),
                b.trim()
            ));
        }
    }
    for pid in stackquake::process::run_processes(run) {
        left.push(format!("process {pid} (environment names the run)"));
    }
    // Processes started without our variable still show the run in their
    // arguments or working directory.
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let p = e.path();
        let named = std::fs::read(p.join("cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains(run))
            || std::fs::read_link(p.join("cwd")).is_ok_and(|c| c.to_string_lossy().contains(run));
        let zombie = std::fs::read_to_string(p.join("stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        });
        if named && !zombie {
            left.push(format!("process {}", e.file_name().to_string_lossy()));
        }
    }
    if std::fs::read_dir(std::env::temp_dir().join("stackquake"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().contains(run))
    {
        left.push("scratch directory".into());
    }
    left
}
