//! Per-step artifacts in the output directory: the step's kernel log slice,
//! the stacks of ops sampled during it, and /proc/self/mountstats at its end
//! (the NFS client's per-op RPC counters and latencies).

use super::world::World;
use crate::journal::Journal;
use std::path::Path;

/// Writes `<dir>/<step>/{kmsg.txt,stacks.txt,mountstats.txt}`; best effort:
/// a run's verdict never depends on its artifacts.
pub fn step_ended(dir: &Path, step: &str, journal: &Journal, _world: &World) {
    let step_dir = dir.join(step);
    if let Err(e) = std::fs::create_dir_all(&step_dir) {
        tracing::warn!("cannot create {}: {e}", step_dir.display());
        return;
    }
    let kmsg = journal.kmsg_between(Some(step), Some(step)).join("\n");
    write(&step_dir.join("kmsg.txt"), &kmsg);
    let (begin, end) = journal.step_span(step).unwrap_or((0, None));
    let end = end.unwrap_or(u64::MAX);
    let stacks = journal.hung_ops(begin..=end);
    write(&step_dir.join("stacks.txt"), &stacks.join("\n\n"));
    let mountstats = std::fs::read_to_string("/proc/self/mountstats").unwrap_or_default();
    write(&step_dir.join("mountstats.txt"), &mountstats);
}

/// /proc/self/mountstats as the step began.
pub fn step_began(dir: &Path, step: &str) {
    let step_dir = dir.join(step);
    if std::fs::create_dir_all(&step_dir).is_ok() {
        let mountstats = std::fs::read_to_string("/proc/self/mountstats").unwrap_or_default();
        write(&step_dir.join("mountstats-before.txt"), &mountstats);
    }
}

fn write(path: &Path, text: &str) {
    if let Err(e) = std::fs::write(path, text) {
        tracing::warn!("cannot write {}: {e}", path.display());
    }
}
