//! Global kernel settings (/proc/sys files) a run changes and puts back:
//! a scenario's `kernel:` settings, and the lockd grace period and ports
//! knfsd needs while `rpc.nfsd` brings lockd up. Each change is recorded in
//! the ledger with the value it replaces before it is made, so `stackquake
//! cleanup` puts it back after a killed run, the same way `restore` does.

use std::path::{Path, PathBuf};

use crate::ledger::{EntryId, Ledger, LedgerError, LedgerObject};

#[derive(Debug, thiserror::Error)]
pub enum SysctlError {
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing {value} to {}: {source}", path.display())]
    Write {
        path: PathBuf,
        value: String,
        source: std::io::Error,
    },
    #[error("cannot record {} in the ledger: {source}", path.display())]
    Ledger { path: PathBuf, source: LedgerError },
}

/// The value in `path`, without its newline.
pub fn read(path: &Path) -> Result<String, SysctlError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|source| SysctlError::Read {
            path: path.into(),
            source,
        })
}

/// Writes `value` to `path`.
pub fn write(path: &Path, value: &str) -> Result<(), SysctlError> {
    std::fs::write(path, value).map_err(|source| SysctlError::Write {
        path: path.into(),
        value: value.into(),
        source,
    })
}

/// Puts `value` back into `path`: the one undo of a setting, for
/// `Changed`'s drop and `stackquake cleanup`. Ok(false): it already holds
/// `value`, so nothing was written.
pub fn restore(path: &Path, value: &str) -> Result<bool, SysctlError> {
    if read(path)? == value {
        return Ok(false);
    }
    write(path, value)?;
    Ok(true)
}

/// A setting changed by this run. Dropping it puts the old value back
/// (`restore` does the same and reports).
#[derive(Debug)]
pub struct Changed {
    path: PathBuf,
    was: String,
    entry: Option<(EntryId, Ledger)>,
    restored: bool,
}

impl Changed {
    /// Records the old value (when there is a ledger), then writes `value`.
    pub fn set(path: &Path, value: &str, ledger: Option<&Ledger>) -> Result<Changed, SysctlError> {
        let was = read(path)?;
        let entry = match ledger {
            Some(l) => {
                let id = l
                    .record(LedgerObject::Sysctl {
                        path: path.into(),
                        restore: was.clone(),
                    })
                    .map_err(|source| SysctlError::Ledger {
                        path: path.into(),
                        source,
                    })?;
                Some((id, l.clone()))
            }
            None => None,
        };
        let mut changed = Changed {
            path: path.into(),
            was,
            entry,
            restored: false,
        };
        if let Err(e) = write(path, value) {
            // Nothing changed; settle the ledger entry without a write.
            changed.restored = true;
            changed.done();
            return Err(e);
        }
        Ok(changed)
    }

    /// The value before this run changed it.
    pub fn was(&self) -> &str {
        &self.was
    }

    pub fn restore(mut self) -> Result<(), SysctlError> {
        self.put_back()
    }

    fn put_back(&mut self) -> Result<(), SysctlError> {
        if self.restored {
            return Ok(());
        }
        restore(&self.path, &self.was)?;
        self.restored = true;
        self.done();
        Ok(())
    }

    fn done(&mut self) {
        if let Some((id, ledger)) = self.entry.take()
            && let Err(e) = ledger.done(id)
        {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot mark setting done in ledger");
        }
    }
}

impl Drop for Changed {
    fn drop(&mut self) {
        if let Err(e) = self.put_back() {
            tracing::error!(error = %e, "kernel setting not put back");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::RunId;

    // A regular file stands in for the /proc/sys one: the logic is the same
    // (read, record, write, put back); the crash test and the guest runs use
    // the real files.
    fn setting(value: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("setting");
        std::fs::write(&path, format!("{value}\n")).unwrap();
        (dir, path)
    }

    #[test]
    fn set_records_the_old_value_and_restore_puts_it_back() {
        let (dir, path) = setting("10");
        let ledger = Ledger::create(dir.path(), &RunId::generate(), Path::new("t.yaml")).unwrap();
        let changed = Changed::set(&path, "5", Some(&ledger)).unwrap();
        assert_eq!(changed.was(), "10");
        assert_eq!(read(&path).unwrap(), "5");
        assert_eq!(ledger.open_entries(), 1, "the old value is in the ledger");
        changed.restore().unwrap();
        assert_eq!(read(&path).unwrap(), "10");
        assert_eq!(ledger.open_entries(), 0);
    }

    #[test]
    fn dropping_puts_it_back_too() {
        let (_dir, path) = setting("4045");
        drop(Changed::set(&path, "0", None).unwrap());
        assert_eq!(read(&path).unwrap(), "4045");
    }

    #[test]
    fn a_missing_setting_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nlm_timeout");
        let e = Changed::set(&path, "5", None).unwrap_err();
        assert!(e.to_string().contains("nlm_timeout"), "{e}");
    }
}
