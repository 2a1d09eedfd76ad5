//! `kernel:` settings: global /proc/sys values a scenario depends on (lockd's
//! timeout), set before anything is built and put back after everything is
//! gone. Each change is in the ledger with the value it replaced, so
//! `stackquake cleanup` puts it back after a killed run.

use super::{SetupError, World};
use crate::ledger::{EntryId, Ledger, LedgerObject};
use crate::scenario::Scenario;
use std::path::Path;

const NLM_TIMEOUT: &str = "/proc/sys/fs/nfs/nlm_timeout";

/// One changed setting and the value it replaced.
pub(super) struct KernelSetting {
    name: &'static str,
    path: &'static str,
    restore: String,
    entry: EntryId,
    ledger: Ledger,
}

impl World {
    pub(super) fn build_kernel(
        &mut self,
        s: &Scenario,
        ledger: &Ledger,
        note: &mut dyn FnMut(String),
    ) -> Result<(), SetupError> {
        let Some(timeout) = &s.kernel.nlm_timeout else {
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
        let secs = timeout.value.0.as_secs().to_string();
        let setting = KernelSetting::set("nlm_timeout", NLM_TIMEOUT, &secs, ledger)
            .map_err(|e| err(format!("{NLM_TIMEOUT}: {e}")))?;
        note(format!(
            "kernel nlm_timeout {secs}s (was {}s)",
            setting.restore
        ));
        self.kernel.push(setting);
        Ok(())
    }

    /// Puts every setting back, last changed first.
    pub(super) fn restore_kernel(&mut self, done: &mut dyn FnMut(String, Result<(), String>)) {
        while let Some(setting) = self.kernel.pop() {
            let what = format!("restore kernel {} {}", setting.name, setting.restore);
            done(what, setting.restore().map_err(|e| e.to_string()));
        }
    }
}

impl KernelSetting {
    fn set(
        name: &'static str,
        path: &'static str,
        value: &str,
        ledger: &Ledger,
    ) -> Result<KernelSetting, String> {
        let restore = std::fs::read_to_string(path)
            .map_err(|e| format!("read: {e}"))?
            .trim()
            .to_string();
        let entry = ledger
            .record(LedgerObject::Sysctl {
                path: path.into(),
                restore: restore.clone(),
            })
            .map_err(|e| e.to_string())?;
        let setting = KernelSetting {
            name,
            path,
            restore,
            entry,
            ledger: ledger.clone(),
        };
        if let Err(e) = std::fs::write(path, value) {
            // Nothing changed; the ledger entry is settled by the restore.
            let _ = setting.restore();
            return Err(format!("write {value}: {e}"));
        }
        Ok(setting)
    }

    fn restore(self) -> std::io::Result<()> {
        std::fs::write(self.path, &self.restore)?;
        if let Err(e) = self.ledger.done(self.entry) {
            tracing::warn!(path = self.path, error = %e, "cannot mark setting done in ledger");
        }
        Ok(())
    }
}

/// The pid of a kernel thread named `comm`, if one runs. Kernel threads
/// are the processes with an empty command line.
fn running_kthread(comm: &str) -> Option<u32> {
    let proc = Path::new("/proc");
    std::fs::read_dir(proc).ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let name = std::fs::read_to_string(e.path().join("comm")).ok()?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        (name.trim_end() == comm && cmdline.is_empty()).then_some(pid)
    })
}
