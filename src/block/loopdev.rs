//! `LoopDevice`: a loop device attached to a backing file, detached on drop.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::BlockError;
use crate::ledger::{EntryId, Ledger, LedgerObject};
use crate::sys;

/// How long drop waits for the kernel to release a device that is still
/// open (e.g. a lazily unmounted filesystem finishing its writeback).
const DETACH_PATIENCE: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct LoopDevice {
    nr: u32,
    path: PathBuf,
    name: String,
    backing: PathBuf,
    ledger: Ledger,
    entry: EntryId,
    detached: bool,
}

impl LoopDevice {
    /// Attaches `backing` to a free loop device. The ledger learns the
    /// backing file first (the device number is not known until the kernel
    /// picks one) and the device afterwards.
    pub fn attach(backing: &Path, ledger: &Ledger) -> Result<LoopDevice, BlockError> {
        let attach_err = |source| BlockError::Attach {
            backing: backing.to_path_buf(),
            source,
        };
        // sysfs reports the canonical path; record the same so cleanup matches.
        let backing = std::fs::canonicalize(backing).map_err(attach_err)?;
        let entry = ledger
            .record(LedgerObject::Loop {
                backing_file: backing.clone(),
                device: None,
            })
            .map_err(|source| BlockError::Ledger {
                what: format!("loop for {}", backing.display()),
                source,
            })?;
        let nr = match sys::loopdev::attach(&backing) {
            Ok(nr) => nr,
            Err(source) => {
                let _ = ledger.done(entry);
                return Err(BlockError::Attach { backing, source });
            }
        };
        let path = sys::loopdev::device_path(nr);
        let dev = LoopDevice {
            nr,
            path: path.clone(),
            name: format!("loop{nr}"),
            backing: backing.clone(),
            ledger: ledger.clone(),
            entry,
            detached: false,
        };
        if let Err(e) = ledger.update(
            entry,
            LedgerObject::Loop {
                backing_file: backing,
                device: Some(path),
            },
        ) {
            // The Create record alone still lets cleanup find it.
            tracing::warn!(device = %dev.name, error = %e, "cannot record loop device number");
        }
        tracing::info!(device = %dev.name, backing = %dev.backing.display(), "attached loop device");
        Ok(dev)
    }

    /// /dev/loopN
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// loopN, as the kernel log names it ("XFS (loop0): …").
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn number(&self) -> u32 {
        self.nr
    }

    pub fn backing_file(&self) -> &Path {
        &self.backing
    }

    pub fn detach(mut self) -> Result<Duration, BlockError> {
        self.remove()
    }

    fn remove(&mut self) -> Result<Duration, BlockError> {
        if self.detached {
            return Ok(Duration::ZERO);
        }
        self.detached = true;
        let started = Instant::now();
        detach_loops(&self.backing)?;
        let took = started.elapsed();
        if let Err(e) = self.ledger.done(self.entry) {
            tracing::warn!(device = %self.name, error = %e, "cannot mark loop done in ledger");
        }
        tracing::info!(device = %self.name, ?took, "detached loop device");
        Ok(took)
    }
}

/// Detaches every loop device backed by `backing_file` (canonical, as
/// sysfs shows it): the one removal of a loop device, for `LoopDevice`'s
/// drop and `stackquake cleanup` (whose ledger may know the backing file
/// only: the device number is recorded after the attach). Ok(false): none
/// was attached.
pub fn detach_loops(backing_file: &Path) -> Result<bool, BlockError> {
    let devices: Vec<u32> = sys::loopdev::attached()
        .into_iter()
        .filter(|(_, b)| b == backing_file)
        .map(|(nr, _)| nr)
        .collect();
    for &nr in &devices {
        sys::loopdev::detach_patiently(nr, backing_file, DETACH_PATIENCE).map_err(|source| {
            BlockError::Detach {
                device: sys::loopdev::device_path(nr),
                source,
            }
        })?;
    }
    Ok(!devices.is_empty())
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            tracing::error!(device = %self.name, error = %e, "loop device left attached");
        }
    }
}
