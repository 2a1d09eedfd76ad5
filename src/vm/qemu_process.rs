//! A running QEMU: its serial console read line by line, killed with us and
//! on drop. Shared by the KVM probe and the job runner, below both.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::Duration;

use super::VmError;
use super::job::STOP_REQUEST;
use super::qemu::QemuArgs;

/// A running QEMU whose serial console (its stdout) is read line by line on
/// a thread, and written to through its stdin. Dropping it kills QEMU.
pub(super) struct QemuProcess {
    child: Child,
    lines: Receiver<String>,
    console_in: Option<ChildStdin>,
}

impl QemuProcess {
    /// `quiet_stderr`: the KVM probe expects QEMU to fail loudly (e.g.
    /// "failed to set MSR 0x10a" under nested PVM); that is not news.
    /// `nice`: the value QEMU starts at, if not ours.
    pub(super) fn spawn(
        qemu: &Path,
        args: &QemuArgs,
        quiet_stderr: bool,
        nice: Option<i32>,
    ) -> Result<Self, VmError> {
        let mut cmd = Command::new(qemu);
        cmd.args(&args.0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(if quiet_stderr {
                Stdio::null()
            } else {
                Stdio::inherit()
            });
        // If stackquake dies (SIGKILL, panic abort), QEMU dies with it.
        crate::sys::pdeathsig::kill_with_parent(&mut cmd);
        if let Some(nice) = nice {
            crate::sys::nice::start_at(&mut cmd, nice);
        }
        // Out of our process group: a terminal's Ctrl-C reaches stackquake
        // alone, which asks the guest to stop (`ask_to_stop`) instead of
        // QEMU dying under a job that is halfway through a fault.
        cmd.process_group(0);
        let mut child = cmd.spawn().map_err(|source| VmError::Spawn {
            command: qemu.display().to_string(),
            source,
        })?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let console_in = child.stdin.take();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut buf = Vec::new();
            while let Ok(n) = reader.read_until(b'\n', &mut buf) {
                if n == 0 || tx.send(String::from_utf8_lossy(&buf).into_owned()).is_err() {
                    break;
                }
                buf.clear();
            }
        });
        Ok(Self {
            child,
            lines,
            console_in,
        })
    }

    /// Writes [`STOP_REQUEST`] to the guest's console; guest-init passes it
    /// on to the job as SIGTERM.
    pub(super) fn ask_to_stop(&mut self) {
        if let Some(console) = self.console_in.as_mut()
            && let Err(e) = writeln!(console, "{STOP_REQUEST}")
        {
            tracing::warn!(error = %e, "cannot ask the guest to stop");
        }
    }

    /// The next console line, or None after `wait` (or at EOF).
    pub(super) fn next_line(&mut self, wait: Duration) -> Option<String> {
        match self.lines.recv_timeout(wait) {
            Ok(line) => Some(line),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                // EOF: don't spin; QEMU is exiting.
                thread::sleep(wait);
                None
            }
        }
    }

    pub(super) fn try_wait(&mut self) -> Result<Option<std::process::ExitStatus>, VmError> {
        self.child
            .try_wait()
            .map_err(|source| VmError::Wait { source })
    }

    /// Sets the nice value of every QEMU thread (vCPU, I/O, 9p workers).
    pub(super) fn set_nice(&self, nice: i32) {
        if let Err(e) = crate::sys::nice::set_all_threads(self.child.id(), nice) {
            tracing::warn!(error = %e, nice, "cannot renice the guest's qemu");
        }
    }

    /// SIGKILL and reap: nothing is left behind.
    pub(super) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for QemuProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}
