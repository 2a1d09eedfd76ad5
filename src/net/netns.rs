//! `Netns`: a named network namespace pinned at /run/netns, removed on drop.

use std::fs::File;
use std::path::PathBuf;

use super::NetError;
use crate::ledger::{EntryId, Ledger, LedgerObject, RunId};
use crate::sys;

/// A network namespace `sq-<run>-<host>`, visible to `ip netns`.
///
/// Created in-process (unshare on a throwaway thread + bind mount, see
/// `sys::ns::create_netns`) rather than with `ip netns add`: one syscall
/// path with typed errors, no dependence on iproute2's version, and the
/// same code the ledger's cleanup uses to delete it.
#[derive(Debug)]
pub struct Netns {
    name: String,
    path: PathBuf,
    /// Held open for setns and child spawning; dropped after the unmount.
    file: File,
    ledger: Ledger,
    entry: EntryId,
    deleted: bool,
}

impl Netns {
    /// The conventional name: `sq-<run>-<host>`.
    pub fn name_for(run: &RunId, host: &str) -> String {
        format!("sq-{run}-{host}")
    }

    pub fn create(name: &str, ledger: &Ledger) -> Result<Netns, NetError> {
        let entry = ledger
            .record(LedgerObject::Netns {
                name: name.to_string(),
            })
            .map_err(|source| NetError::Ledger {
                what: format!("netns {name}"),
                source,
            })?;
        let path = sys::ns::create_netns(name).map_err(|source| NetError::CreateNetns {
            name: name.to_string(),
            source,
        })?;
        let file = match sys::ns::open_netns(&path) {
            Ok(f) => f,
            Err(source) => {
                let _ = sys::ns::delete_netns(&path);
                let _ = ledger.done(entry);
                return Err(NetError::OpenNetns { path, source });
            }
        };
        tracing::info!(netns = name, "created netns");
        Ok(Netns {
            name: name.to_string(),
            path,
            file,
            ledger: ledger.clone(),
            entry,
            deleted: false,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// A new fd on this namespace, for setns(2).
    pub fn file(&self) -> Result<File, NetError> {
        self.file.try_clone().map_err(|source| NetError::OpenNetns {
            path: self.path.clone(),
            source,
        })
    }

    /// Runs `f` on a fresh OS thread that entered this namespace, never on
    /// the caller's thread (network namespaces are per thread; a thread
    /// left in the wrong one would leak traffic or sockets). Panics only if
    /// setns itself fails — use `try_run` to get that as an error.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        match self.try_run(f) {
            Ok(v) => v,
            Err(e) => panic!("cannot run inside netns {}: {e}", self.name),
        }
    }

    pub fn try_run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, NetError> {
        let fd = self.file()?;
        let name = &self.name;
        std::thread::scope(|s| {
            let handle = std::thread::Builder::new()
                .name(format!("netns-{name}"))
                .spawn_scoped(s, move || -> Result<T, NetError> {
                    sys::ns::enter_netns(&fd).map_err(|source| NetError::EnterNetns {
                        name: name.clone(),
                        source,
                    })?;
                    drop(fd);
                    Ok(f())
                })
                .map_err(|source| NetError::EnterNetns {
                    name: name.clone(),
                    source,
                })?;
            match handle.join() {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    pub fn set_loopback_up(&self) -> Result<(), NetError> {
        super::ip::ip_in(&self.name, &["link", "set", "dev", "lo", "up"])
    }

    /// Deletes the namespace now (drop does the same but can only log).
    pub fn delete(mut self) -> Result<(), NetError> {
        self.remove()
    }

    fn remove(&mut self) -> Result<(), NetError> {
        if self.deleted {
            return Ok(());
        }
        self.deleted = true;
        delete_netns(&self.name)?;
        if let Err(e) = self.ledger.done(self.entry) {
            tracing::warn!(netns = %self.name, error = %e, "cannot mark netns done in ledger");
        }
        tracing::info!(netns = %self.name, "deleted netns");
        Ok(())
    }
}

/// Deletes namespace `name` (the one removal of a netns: `Netns`'s drop and
/// `stackquake cleanup` both use it). Ok(false): it was already gone.
pub fn delete_netns(name: &str) -> Result<bool, NetError> {
    let path = sys::ns::netns_path(name);
    if !path.exists() {
        return Ok(false);
    }
    sys::ns::delete_netns(&path).map_err(|source| NetError::DeleteNetns {
        name: name.to_string(),
        source,
    })?;
    Ok(true)
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            tracing::error!(netns = %self.name, error = %e, "netns left behind");
        }
    }
}
