//! `Mount`: a mounted filesystem, unmounted on drop with escalation.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::mount::MsFlags;

use super::BlockError;
use crate::ledger::{EntryId, Ledger, LedgerObject};
use crate::sys;

/// Per escalation step; an NFS umount under a stalled server would
/// otherwise block teardown forever.
const DEFAULT_UMOUNT_DEADLINE: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct Mount {
    target: PathBuf,
    ledger: Ledger,
    entry: EntryId,
    umount_deadline: Duration,
    unmounted: bool,
}

impl Mount {
    /// mount(2) with the full option string in `data` (no helper parses it:
    /// for NFS pass `addr=,vers=3,proto=tcp,port=,mountport=,…`). The NFS
    /// client uses the mounting thread's netns, so for NFS call this inside
    /// `Netns::run`; the returned value can be dropped on any thread.
    // `Mount::mount` is the name the engine calls; it reads as the verb.
    #[allow(clippy::self_named_constructors)]
    pub fn mount(
        source: &str,
        target: &Path,
        fstype: &str,
        flags: MsFlags,
        data: &str,
        ledger: &Ledger,
    ) -> Result<Mount, BlockError> {
        // Canonical, so is_mounted() and the ledger agree with mountinfo.
        let target = std::fs::canonicalize(target).map_err(|source| BlockError::Inspect {
            path: target.to_path_buf(),
            source,
        })?;
        let entry = ledger
            .record(LedgerObject::Mount {
                target: target.clone(),
            })
            .map_err(|source| BlockError::Ledger {
                what: format!("mount at {}", target.display()),
                source,
            })?;
        let options = data;
        let data = (!data.is_empty()).then_some(data);
        if let Err(errno) = nix::mount::mount(Some(source), &target, Some(fstype), flags, data) {
            let _ = ledger.done(entry);
            return Err(BlockError::Mount {
                source_spec: source.to_string(),
                target,
                fstype: fstype.into(),
                options: options.into(),
                source: errno,
            });
        }
        tracing::info!(source, target = %target.display(), fstype, "mounted");
        Ok(Mount {
            target,
            ledger: ledger.clone(),
            entry,
            umount_deadline: DEFAULT_UMOUNT_DEADLINE,
            unmounted: false,
        })
    }

    pub fn target(&self) -> &Path {
        &self.target
    }

    /// How long each umount step may block before escalating.
    pub fn set_umount_deadline(&mut self, deadline: Duration) {
        self.umount_deadline = deadline;
    }

    /// Unmounts now, returning which step worked.
    pub fn unmount(mut self) -> Result<Option<sys::umount::UmountStep>, BlockError> {
        self.remove()
    }

    fn remove(&mut self) -> Result<Option<sys::umount::UmountStep>, BlockError> {
        if self.unmounted {
            return Ok(None);
        }
        self.unmounted = true;
        let step = unmount(&self.target, self.umount_deadline)?;
        if let Err(e) = self.ledger.done(self.entry) {
            tracing::warn!(target = %self.target.display(), error = %e, "cannot mark mount done in ledger");
        }
        Ok(step)
    }
}

/// Unmounts everything mounted on `target`, each with escalation (plain,
/// forced, lazy; `deadline` per step): the one removal of a mount, for
/// `Mount`'s drop and `stackquake cleanup`. Several mounts may be stacked on
/// one target (a killed op may have mounted twice); all are peeled. Returns
/// the step that removed the last one, None if nothing was mounted.
pub fn unmount(
    target: &Path,
    deadline: Duration,
) -> Result<Option<sys::umount::UmountStep>, BlockError> {
    let mut last = None;
    for _ in 0..8 {
        if !sys::mountinfo::is_mount_point(target) {
            return Ok(last);
        }
        let outcome = sys::umount::umount_escalating(target, deadline);
        if !outcome.is_gone() {
            let steps = outcome
                .failures
                .iter()
                .map(|(s, f)| format!("{s}: {f}"))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(BlockError::Umount {
                target: target.to_path_buf(),
                steps,
            });
        }
        if outcome.unmounted_by.is_none() {
            return Ok(last);
        }
        last = outcome.unmounted_by;
    }
    Err(BlockError::Umount {
        target: target.to_path_buf(),
        steps: "still mounted after 8 unmounts".into(),
    })
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            tracing::error!(error = %e, "mount left behind");
        }
    }
}

/// True when `target` is a mount point in /proc/self/mountinfo (exact
/// match on the canonical path; a path below a mount point is not one).
pub fn is_mounted(target: &Path) -> bool {
    let target = std::fs::canonicalize(target).unwrap_or_else(|_| target.to_path_buf());
    sys::mountinfo::is_mount_point(&target)
}
