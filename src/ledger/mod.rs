//! The on-disk record of every kernel object a run creates: written before
//! each object exists, read back (`dead_runs`, and `crate::cleanup`, which
//! undoes a dead run's entries through the domains' removals), and swept
//! for objects whose ledger is gone.
//!
//! One JSON-lines file per run at `<root>/ledger/<run-id>.jsonl` (root is
//! /run/stackquake: tmpfs, so it lives exactly as long as the kernel objects
//! it describes). Each object is appended and fsynced *before* it is created,
//! so a SIGKILL at any point leaves at worst an entry for an object that was
//! never made — which cleanup tolerates — and never an object without an entry.

mod dead;
mod record;
mod runid;
mod sweep;

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use dead::{DeadRun, dead_runs};
pub use record::{Entry, LedgerObject, ParseError, ParsedLedger, Record, RunHeader, parse};
pub use runid::{RUN_ID_LEN, RunId};
pub use sweep::{Orphan, sweep};

/// Where ledgers live unless a test points elsewhere.
pub const DEFAULT_ROOT: &str = "/run/stackquake";

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("cannot create ledger directory {path}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("ledger {path} already exists (run id taken)")]
    RunIdTaken { path: PathBuf },
    #[error("cannot open ledger {path}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot append to ledger {path}")]
    Append {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read own start time from /proc/self/stat")]
    OwnStat { source: std::io::Error },
    #[error("cannot remove ledger {path}")]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Identifies one Create record, for its later Update and Done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryId(pub u64);

/// An open ledger; cheap to clone, so every world object can keep a handle
/// and write its own Done record when it is dropped.
#[derive(Debug, Clone)]
pub struct Ledger {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    run: RunId,
    path: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    file: File,
    next_id: u64,
    open_entries: Vec<u64>,
}

pub fn ledger_dir(root: &Path) -> PathBuf {
    root.join("ledger")
}

pub fn ledger_path(root: &Path, run: &RunId) -> PathBuf {
    ledger_dir(root).join(format!("{run}.jsonl"))
}

/// Every ledger file under `root`, oldest run first (run ids sort by time).
pub fn ledger_files(root: &Path) -> Vec<PathBuf> {
    let mut ledgers: Vec<PathBuf> = std::fs::read_dir(ledger_dir(root))
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
                .collect()
        })
        .unwrap_or_default();
    ledgers.sort();
    ledgers
}

/// Appends Done records for `ids` to the ledger at `path`, whose owner is
/// gone: cleanup remembers what it removed, so the next one retries only
/// what failed.
pub fn append_done(path: &Path, ids: &[u64]) -> Result<(), LedgerError> {
    let mut file = OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|source| LedgerError::Open {
            path: path.to_path_buf(),
            source,
        })?;
    for id in ids {
        write_line(&mut file, path, &Record::Done { id: *id })?;
    }
    Ok(())
}

impl Ledger {
    /// Creates the ledger of a new run (O_EXCL: a run id is used once) and
    /// writes its header.
    /// A ledger under a run id of its own: ids drawn in the same second
    /// share their time digits and differ in two random ones, so runs
    /// started together (CI jobs, a fleet) may draw one already taken;
    /// this draws again. The ledger file's exclusive creation decides.
    pub fn create_new_run(root: &Path, scenario: &Path) -> Result<(RunId, Ledger), LedgerError> {
        let mut tries = 0;
        loop {
            let run = RunId::generate();
            match Ledger::create(root, &run, scenario) {
                Err(LedgerError::RunIdTaken { .. }) if tries < 50 => tries += 1,
                other => return other.map(|l| (run, l)),
            }
        }
    }

    pub fn create(root: &Path, run: &RunId, scenario: &Path) -> Result<Ledger, LedgerError> {
        let dir = ledger_dir(root);
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|source| LedgerError::CreateDir {
                path: dir.clone(),
                source,
            })?;
        let path = ledger_path(root, run);
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&path)
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::AlreadyExists => LedgerError::RunIdTaken { path: path.clone() },
                _ => LedgerError::Open {
                    path: path.clone(),
                    source,
                },
            })?;
        let me = crate::sys::procstat::read(std::process::id())
            .map_err(|source| LedgerError::OwnStat { source })?;
        let header = RunHeader {
            run_id: run.to_string(),
            pid: std::process::id(),
            pid_starttime: me.starttime,
            started_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            scenario: scenario.to_path_buf(),
        };
        let ledger = Ledger {
            inner: Arc::new(Inner {
                run: run.clone(),
                path,
                state: Mutex::new(State {
                    file,
                    next_id: 1,
                    open_entries: Vec::new(),
                }),
            }),
        };
        ledger.append(&Record::Header(header))?;
        // The directory entry must be durable too, or a crash could leave the
        // objects without the file that names them.
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(ledger)
    }

    pub fn run(&self) -> &RunId {
        &self.inner.run
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Records `object` durably. Call BEFORE creating it.
    pub fn record(&self, object: LedgerObject) -> Result<EntryId, LedgerError> {
        let mut state = self.lock();
        let id = state.next_id;
        state.next_id += 1;
        write_line(
            &mut state.file,
            &self.inner.path,
            &Record::Create { id, object },
        )?;
        state.open_entries.push(id);
        Ok(EntryId(id))
    }

    /// Replaces what is known about an entry (e.g. the loop device number
    /// once the kernel chose it).
    pub fn update(&self, id: EntryId, object: LedgerObject) -> Result<(), LedgerError> {
        self.append(&Record::Update { id: id.0, object })
    }

    /// Marks an entry's object as removed by its owner.
    pub fn done(&self, id: EntryId) -> Result<(), LedgerError> {
        let mut state = self.lock();
        write_line(
            &mut state.file,
            &self.inner.path,
            &Record::Done { id: id.0 },
        )?;
        state.open_entries.retain(|e| *e != id.0);
        Ok(())
    }

    /// Entries recorded but not yet marked done.
    pub fn open_entries(&self) -> usize {
        self.lock().open_entries.len()
    }

    /// Ends a run: deletes the ledger when every object was removed; keeps it
    /// (returning false) when something leaked, so `stackquake cleanup` can
    /// finish the job once this process is gone.
    pub fn finish(&self) -> Result<bool, LedgerError> {
        if self.open_entries() > 0 {
            tracing::warn!(ledger = %self.path().display(), open = self.open_entries(), "run leaves objects behind; ledger kept");
            return Ok(false);
        }
        std::fs::remove_file(self.path()).map_err(|source| LedgerError::Remove {
            path: self.path().to_path_buf(),
            source,
        })?;
        Ok(true)
    }

    fn append(&self, record: &Record) -> Result<(), LedgerError> {
        let mut state = self.lock();
        write_line(&mut state.file, &self.inner.path, record)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-written line in
        // the Vec; the file itself is append-only. Keep going.
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One record = one write(2) of a whole line on an O_APPEND fd, then
/// fdatasync, so the line is on disk before the caller creates the object.
fn write_line(file: &mut File, path: &Path, record: &Record) -> Result<(), LedgerError> {
    let mut line = serde_json::to_vec(record).expect("ledger records always serialize");
    line.push(b'\n');
    file.write_all(&line)
        .and_then(|()| file.sync_data())
        .map_err(|source| LedgerError::Append {
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_started_together_each_get_a_run_id_of_their_own() {
        // 300 ledgers in well under a second: with two random digits (1296
        // ids a second) dozens of draws collide, and each draws again.
        let dir = tempfile::tempdir().unwrap();
        let mut ids = std::collections::BTreeSet::new();
        for _ in 0..300 {
            let (run, _ledger) = Ledger::create_new_run(dir.path(), Path::new("s.yaml")).unwrap();
            assert!(ids.insert(run.to_string()), "{run} given twice");
        }
    }
}
