//! `stackquake cleanup`: undo, newest first, every pending entry of every
//! ledger whose owner is dead, tolerating objects that are already gone.
//!
//! It sits above the domains and owns no undo code: each object is removed
//! by the one function its domain's own teardown uses (`net::delete_link`,
//! `block::remove_dm_device`, `sysctl::restore`, `process::kill`…), so the
//! two paths cannot drift apart.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::ledger::{self, LedgerObject, ParseError, RunId, parse, sweep};
use crate::{block, net, process, sys, sysctl};

/// How long a recorded process may take to die after SIGKILL.
const KILL_PATIENCE: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Default)]
pub struct CleanupOptions {
    /// Also clean ledgers whose owner is still running.
    pub force: bool,
    /// Only this run's ledger.
    pub run: Option<RunId>,
    /// How long each umount step may block before escalating.
    pub umount_deadline: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanupFailure {
    pub ledger: PathBuf,
    pub object: String,
    pub error: String,
}

#[derive(Debug, Clone, Default)]
pub struct CleanupReport {
    /// Objects that existed and were removed.
    pub removed: Vec<String>,
    /// Objects in a ledger that no longer existed (never created, or gone).
    pub absent: Vec<String>,
    pub failed: Vec<CleanupFailure>,
    /// Ledgers left alone because their owner still runs.
    pub skipped_live: Vec<PathBuf>,
    /// Ledger files removed after everything in them was undone.
    pub ledgers_removed: Vec<PathBuf>,
    /// Objects named with a run id that has no ledger (reported, not removed).
    pub orphans: Vec<ledger::Orphan>,
}

impl CleanupReport {
    pub fn is_clean(&self) -> bool {
        self.failed.is_empty()
    }
}

pub fn cleanup(root: &Path) -> CleanupReport {
    cleanup_with(root, &CleanupOptions::default())
}

pub fn cleanup_with(root: &Path, opts: &CleanupOptions) -> CleanupReport {
    let mut report = CleanupReport::default();
    let ledgers = ledger::ledger_files(root);
    for path in ledgers {
        if let Some(run) = &opts.run
            && path.file_stem().and_then(|s| s.to_str()) != Some(run.as_str())
        {
            continue;
        }
        clean_one(&path, opts, &mut report);
    }
    report.orphans = sweep(root);
    report
}

fn clean_one(path: &Path, opts: &CleanupOptions, report: &mut CleanupReport) {
    let fail = |report: &mut CleanupReport, object: String, error: String| {
        tracing::error!(ledger = %path.display(), %object, %error, "cleanup failed");
        report.failed.push(CleanupFailure {
            ledger: path.to_path_buf(),
            object,
            error,
        });
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return fail(report, "ledger".into(), e.to_string()),
    };
    let parsed = match parse(&text) {
        Ok(p) => p,
        // Killed between creating the file and writing the header: nothing
        // was created yet.
        Err(ParseError::Empty) => {
            if std::fs::remove_file(path).is_ok() {
                report.ledgers_removed.push(path.to_path_buf());
            }
            return;
        }
        Err(e) => return fail(report, "ledger".into(), e.to_string()),
    };
    for (line, why) in &parsed.skipped_lines {
        tracing::warn!(ledger = %path.display(), line, %why, "unreadable ledger line skipped");
    }
    let h = &parsed.header;
    if !opts.force && sys::procstat::is_same_process_alive(h.pid, h.pid_starttime) {
        tracing::info!(ledger = %path.display(), pid = h.pid, "owner still running; left alone");
        report.skipped_live.push(path.to_path_buf());
        return;
    }
    let deadline = opts.umount_deadline.unwrap_or(Duration::from_secs(5));
    let mut done_ids = Vec::new();
    let mut all_ok = true;
    // Processes first, the unrecorded grandchildren included: they hold the
    // mounts and namespaces the entries below remove.
    match process::kill_run_processes(&h.run_id) {
        Ok(pids) => report.removed.extend(
            pids.iter()
                .map(|p| format!("process {p} of run {}", h.run_id)),
        ),
        Err(e) => {
            all_ok = false;
            fail(report, format!("processes of run {}", h.run_id), e);
        }
    }
    for entry in parsed.pending.iter().rev() {
        let what = entry.object.to_string();
        match undo(&entry.object, deadline) {
            Ok(true) => {
                tracing::info!(object = %what, "removed");
                report.removed.push(what);
                done_ids.push(entry.id);
            }
            Ok(false) => {
                report.absent.push(what);
                done_ids.push(entry.id);
            }
            Err(e) => {
                all_ok = false;
                fail(report, what, e);
            }
        }
    }
    if all_ok {
        match std::fs::remove_file(path) {
            Ok(()) => report.ledgers_removed.push(path.to_path_buf()),
            Err(e) => fail(report, "ledger".into(), e.to_string()),
        }
    } else {
        // Remember what is gone so the next cleanup only retries failures.
        if let Err(e) = ledger::append_done(path, &done_ids) {
            tracing::warn!(ledger = %path.display(), error = %e, "cannot mark removed objects done");
        }
    }
}

/// Undoes one object with its domain's removal. Ok(false): it was gone.
fn undo(object: &LedgerObject, umount_deadline: Duration) -> Result<bool, String> {
    let text = |e: &dyn std::fmt::Display| e.to_string();
    match object {
        LedgerObject::Process { pid, starttime } => {
            process::kill(*pid, *starttime, KILL_PATIENCE).map_err(|e| text(&e))
        }
        LedgerObject::Mount { target } => block::unmount(target, umount_deadline)
            .map(|step| step.is_some())
            .map_err(|e| text(&e)),
        LedgerObject::Loop { backing_file, .. } => {
            block::detach_loops(backing_file).map_err(|e| text(&e))
        }
        LedgerObject::DmDevice { name } => block::remove_dm_device(name).map_err(|e| text(&e)),
        LedgerObject::NftTable {
            netns,
            family,
            name,
        } => net::delete_nft_table(netns.as_deref(), family, name).map_err(|e| text(&e)),
        LedgerObject::IptablesChain { netns, chain } => {
            net::remove_iptables_chain(netns.as_deref(), chain).map_err(|e| text(&e))
        }
        LedgerObject::Veth { netns, ifname } | LedgerObject::Link { netns, ifname } => {
            net::delete_link(netns, ifname).map_err(|e| text(&e))
        }
        LedgerObject::Netns { name } => net::delete_netns(name).map_err(|e| text(&e)),
        LedgerObject::TempDir { path } => remove_temp_dir(path),
        LedgerObject::Sysctl { path, restore } => {
            sysctl::restore(path, restore).map_err(|e| text(&e))
        }
    }
}

/// The run's scratch directory; only cleanup removes it after a crash (the
/// engine removes its own when the run ends).
fn remove_temp_dir(path: &Path) -> Result<bool, String> {
    if !path.exists() {
        return Ok(false);
    }
    // remove_dir_all would descend into a filesystem still mounted below.
    if let Some(m) = sys::mountinfo::mount_points()
        .into_iter()
        .find(|m| m.starts_with(path))
    {
        return Err(format!("{} is still mounted inside", m.display()));
    }
    std::fs::remove_dir_all(path).map_err(|e| e.to_string())?;
    Ok(true)
}
