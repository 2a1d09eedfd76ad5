//! IO in sacrificial child processes, each op with a deadline.
//!
//! The engine never performs workload IO on its own threads: an op that
//! hangs in D state must not take the harness with it. A workload is the
//! stackquake binary re-executed as `stackquake workload '<spec>'` inside the
//! host's network namespace; it reports each op on stdout as one JSON line
//! before it starts and one when it ends, stamped with CLOCK_MONOTONIC, which
//! the engine reads too, so both sides share one clock.

mod child;
mod ops;
mod record;
pub mod verify;

pub use child::run as run_child;
pub use record::{Record, RecordError};

use crate::plan::{LockMode, WorkloadOp};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What a workload child does, resolved to real paths by the engine.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spec {
    pub id: String,
    pub op: WorkloadOp,
    /// File or directory; empty for exec and mount_storm.
    #[serde(default)]
    pub path: PathBuf,
    pub every_ms: u64,
    pub fsync: bool,
    pub record_size: usize,
    /// Stop after this many ops.
    #[serde(default)]
    pub count: Option<u64>,
    #[serde(default)]
    pub lock: Option<LockMode>,
    #[serde(default)]
    pub hold_ms: u64,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub storm: Option<Storm>,
    /// read: open the file once and read it from the start with that one
    /// descriptor every op, as a VM reads its disk image.
    #[serde(default)]
    pub hold_open: bool,
    /// The run's private root: exec commands run there, so relative paths
    /// name scenario paths.
    #[serde(default)]
    pub root: PathBuf,
}

/// What a mount_storm op mounts, `parallel` times at once, at `dir/storm-<i>`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Storm {
    pub source: String,
    pub fstype: String,
    pub data: String,
    pub dir: PathBuf,
    pub parallel: u32,
}

impl Storm {
    /// The mount points of one op.
    pub fn targets(&self) -> Vec<PathBuf> {
        (0..self.parallel)
            .map(|i| self.dir.join(format!("storm-{i}")))
            .collect()
    }
}

/// One line of a workload child's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "at", rename_all = "snake_case")]
pub enum Report {
    /// The child has prepared (an append/write workload has created its
    /// file) and waits for the engine's go: every workload starts only once
    /// all are ready, so one that reads what another writes finds the file.
    Ready,
    /// The op is about to start.
    Start { seq: u64, mono_ns: u64 },
    /// One mount(2) of a `mount_storm` op returned (`index` of its
    /// `parallel`), sent as it returns: a storm whose other mounts hang
    /// still shows which came back, and when.
    Mounted {
        seq: u64,
        index: u32,
        mono_ns: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        errno: Option<i32>,
    },
    /// The op finished; `errno` is absent on success.
    End {
        seq: u64,
        mono_ns: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        errno: Option<i32>,
        /// Which syscall failed: open, write, fsync, read, stat, flock, mount…
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stage: Option<String>,
        /// exec: the command's exit code.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        /// flock: CLOCK_MONOTONIC when the lock call returned with the lock
        /// and when the unlock call began (absent if it never got it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        held: Option<(u64, u64)>,
    },
}

/// CLOCK_MONOTONIC in nanoseconds: comparable across processes on one host.
pub fn monotonic_ns() -> u64 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC is always available");
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip_as_one_json_line() {
        let end = Report::End {
            seq: 7,
            mono_ns: 42,
            errno: Some(libc::EIO),
            stage: Some("fsync".into()),
            exit_code: None,
            held: Some((40, 41)),
        };
        let line = serde_json::to_string(&end).unwrap();
        assert!(!line.contains('\n'));
        assert_eq!(serde_json::from_str::<Report>(&line).unwrap(), end);
        let ok: Report = serde_json::from_str(r#"{"at":"end","seq":1,"mono_ns":2}"#).unwrap();
        assert_eq!(
            ok,
            Report::End {
                seq: 1,
                mono_ns: 2,
                errno: None,
                stage: None,
                exit_code: None,
                held: None,
            }
        );
    }

    #[test]
    fn the_monotonic_clock_moves_forward() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(b >= a && a > 0);
    }
}
