//! `kernel:` settings: global /proc/sys values a scenario depends on (lockd's
//! timeout), set before anything is built and put back after everything is
//! gone (ledgered by `sysctl::Changed`).

use super::{SetupError, World};
use crate::ledger::Ledger;
use crate::plan::Plan;
use crate::sysctl::Changed;
use std::path::Path;

const NLM_TIMEOUT: &str = "/proc/sys/fs/nfs/nlm_timeout";

/// One changed setting, by its scenario key.
pub(super) struct KernelSetting {
    key: &'static str,
    changed: Changed,
}

impl World {
    pub(super) fn build_kernel(
        &mut self,
        s: &Plan,
        ledger: &Ledger,
        note: &mut dyn FnMut(String),
    ) -> Result<(), SetupError> {
        let Some(timeout) = s.nlm_timeout else {
            return Ok(());
        };
        let err = |detail: String| SetupError::Kernel {
            setting: "nlm_timeout".into(),
            detail,
        };
        // lockd copies nlm_timeout when its service starts (fs/lockd/svc.c
        // lockd_get) and every NLM client it binds uses that copy: with a
        // lockd already up, the new value would silently not apply.
        if let Some(pid) = running_kthread("lockd") {
            return Err(err(format!(
                "lockd is already running (pid {pid}) and keeps the timeout it started \
                 with; unmount this machine's NFSv3 mounts and stop its nfsd, or use --vm"
            )));
        }
        let secs = timeout.as_secs().to_string();
        let changed = Changed::set(Path::new(NLM_TIMEOUT), &secs, Some(ledger))
            .map_err(|e| err(e.to_string()))?;
        note(format!(
            "kernel nlm_timeout {secs}s (was {}s)",
            changed.was()
        ));
        self.kernel.push(KernelSetting {
            key: "nlm_timeout",
            changed,
        });
        Ok(())
    }

    /// Puts every setting back, last changed first.
    pub(super) fn restore_kernel(&mut self, log: &mut super::TeardownLog) {
        while let Some(s) = self.kernel.pop() {
            let what = format!("restore kernel {} {}", s.key, s.changed.was());
            log.record(what, s.changed.restore());
        }
    }
}

/// The pid of a kernel thread named `comm`, if one runs. Kernel threads
/// are the processes with an empty command line.
fn running_kthread(comm: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let name = std::fs::read_to_string(e.path().join("comm")).ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        (name.trim_end() == comm && cmdline.is_empty()).then_some(pid)
    })
}
