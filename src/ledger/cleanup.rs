//! `stackquake cleanup`: undo, newest first, every pending entry of every
//! ledger whose owner is dead, tolerating objects that are already gone.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::record::{LedgerObject, ParseError, Record, parse};
use super::{RunId, sweep};
use crate::sys;

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
    pub orphans: Vec<sweep::Orphan>,
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
    let ledgers = super::ledger_files(root);
    for path in ledgers {
        if let Some(run) = &opts.run
            && path.file_stem().and_then(|s| s.to_str()) != Some(run.as_str())
        {
            continue;
        }
        clean_one(&path, opts, &mut report);
    }
    report.orphans = sweep::sweep(root);
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
    match super::kill_run_processes(&h.run_id) {
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
            Ok(Undone::Removed) => {
                tracing::info!(object = %what, "removed");
                report.removed.push(what);
                done_ids.push(entry.id);
            }
            Ok(Undone::Absent) => {
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
        append_done(path, &done_ids);
    }
}

fn append_done(path: &Path, ids: &[u64]) {
    use std::io::Write;
    let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(path) else {
        return;
    };
    for id in ids {
        let mut line = serde_json::to_vec(&Record::Done { id: *id }).expect("serializes");
        line.push(b'\n');
        let _ = f.write_all(&line);
    }
    let _ = f.sync_data();
}

enum Undone {
    Removed,
    Absent,
}

fn undo(object: &LedgerObject, umount_deadline: Duration) -> Result<Undone, String> {
    match object {
        LedgerObject::Process { pid, starttime } => kill_process(*pid, *starttime),
        LedgerObject::Mount { target } => unmount(target, umount_deadline),
        LedgerObject::Loop { backing_file, .. } => detach_loops(backing_file),
        LedgerObject::NftTable {
            netns,
            family,
            name,
        } => delete_nft_table(netns.as_deref(), family, name),
        LedgerObject::Veth { netns, ifname } | LedgerObject::Link { netns, ifname } => {
            delete_veth(netns, ifname)
        }
        LedgerObject::IptablesChain { netns, chain } => {
            if let Some(ns) = netns
                && !sys::ns::netns_path(ns).exists()
            {
                return Ok(Undone::Absent);
            }
            match crate::net::remove_iptables_chain(netns.as_deref(), chain) {
                Ok(true) => Ok(Undone::Removed),
                Ok(false) => Ok(Undone::Absent),
                Err(e) => Err(e.to_string()),
            }
        }
        LedgerObject::DmDevice { name } => remove_dm_device(name),
        LedgerObject::Netns { name } => {
            let path = sys::ns::netns_path(name);
            if !path.exists() {
                return Ok(Undone::Absent);
            }
            sys::ns::delete_netns(&path).map_err(|e| e.to_string())?;
            Ok(Undone::Removed)
        }
        LedgerObject::TempDir { path } => remove_temp_dir(path),
        LedgerObject::Sysctl { path, restore } => restore_sysctl(path, restore),
    }
}

fn restore_sysctl(path: &Path, restore: &str) -> Result<Undone, String> {
    if crate::sysctl::read(path).map_err(|e| e.to_string())? == restore {
        return Ok(Undone::Absent);
    }
    crate::sysctl::write(path, restore).map_err(|e| e.to_string())?;
    Ok(Undone::Removed)
}

fn kill_process(pid: u32, starttime: u64) -> Result<Undone, String> {
    if !sys::procstat::is_same_process_alive(pid, starttime) {
        return Ok(Undone::Absent);
    }
    let target = nix::unistd::Pid::from_raw(pid as i32);
    nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGKILL)
        .map_err(|e| format!("kill: {e}"))?;
    // Not our child, so we cannot wait(2); poll until it is gone or a zombie.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        if !sys::procstat::is_same_process_alive(pid, starttime) {
            return Ok(Undone::Removed);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let state = sys::procstat::read(pid).map(|s| s.state).unwrap_or('?');
    Err(format!("still alive 3s after SIGKILL (state {state})"))
}

fn unmount(target: &Path, deadline: Duration) -> Result<Undone, String> {
    let mut removed = false;
    // Several mounts may be stacked on one target; peel them all.
    for _ in 0..8 {
        if !sys::mountinfo::is_mount_point(target) {
            return Ok(if removed {
                Undone::Removed
            } else {
                Undone::Absent
            });
        }
        let outcome = sys::umount::umount_escalating(target, deadline);
        if !outcome.is_gone() {
            let steps: Vec<String> = outcome
                .failures
                .iter()
                .map(|(s, f)| format!("{s}: {f}"))
                .collect();
            return Err(steps.join("; "));
        }
        removed = true;
    }
    Err("still mounted after 8 unmounts".into())
}

fn detach_loops(backing_file: &Path) -> Result<Undone, String> {
    let devices: Vec<u32> = sys::loopdev::attached()
        .into_iter()
        .filter(|(_, b)| b == backing_file)
        .map(|(nr, _)| nr)
        .collect();
    if devices.is_empty() {
        return Ok(Undone::Absent);
    }
    for nr in devices {
        sys::loopdev::detach_patiently(nr, backing_file, Duration::from_secs(3))
            .map_err(|e| format!("loop{nr}: {e}"))?;
    }
    Ok(Undone::Removed)
}

fn delete_nft_table(netns: Option<&str>, family: &str, name: &str) -> Result<Undone, String> {
    let mut cmd = match netns {
        Some(ns) => {
            if !sys::ns::netns_path(ns).exists() {
                // The table died with its namespace.
                return Ok(Undone::Absent);
            }
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "nft"]);
            c
        }
        None => Command::new("nft"),
    };
    cmd.args(["delete", "table", family, name]);
    run_tolerating(cmd, &["No such file or directory"])
}

fn remove_dm_device(name: &str) -> Result<Undone, String> {
    let mut cmd = Command::new("dmsetup");
    // --force swaps in an error table first, so a device still held by a
    // mounted filesystem (the block.error fault) goes away too.
    cmd.args(["remove", "--force", "--noudevsync", name]);
    run_tolerating(cmd, &["No such device or address", "not found"])
}

fn delete_veth(netns: &str, ifname: &str) -> Result<Undone, String> {
    if !sys::ns::netns_path(netns).exists() {
        return Ok(Undone::Absent);
    }
    let mut cmd = Command::new("ip");
    cmd.args(["-n", netns, "link", "del", ifname]);
    run_tolerating(cmd, &["Cannot find device"])
}

/// Runs a removal command; stderr containing one of `absent_markers` means
/// the object was already gone.
fn run_tolerating(cmd: Command, absent_markers: &[&str]) -> Result<Undone, String> {
    match crate::tools::remove(cmd, absent_markers) {
        Ok(true) => Ok(Undone::Removed),
        Ok(false) => Ok(Undone::Absent),
        Err(e) => Err(e.to_string()),
    }
}

fn remove_temp_dir(path: &Path) -> Result<Undone, String> {
    if !path.exists() {
        return Ok(Undone::Absent);
    }
    // remove_dir_all would descend into a filesystem still mounted below.
    if let Some(m) = sys::mountinfo::mount_points()
        .into_iter()
        .find(|m| m.starts_with(path))
    {
        return Err(format!("{} is still mounted inside", m.display()));
    }
    std::fs::remove_dir_all(path).map_err(|e| e.to_string())?;
    Ok(Undone::Removed)
}
