//! `exec` steps: a command run to completion in a host's namespace, its
//! output kept in the scratch directory, killed if the step times out.

use crate::journal::Event;
use crate::ledger::{EntryId, Ledger, LedgerObject};
use crate::net::Netns;
use std::path::PathBuf;
use std::process::{Child, Stdio};

/// The first this-many bytes of a command's output go into the journal.
const OUTPUT_KEPT: usize = 1024;

pub struct ExecChild {
    step: String,
    child: Child,
    output: PathBuf,
    ledger: Ledger,
    entry: Option<EntryId>,
}

pub fn spawn(
    step: &str,
    ns: &Netns,
    command: &[String],
    root: &std::path::Path,
    output: PathBuf,
    ledger: &Ledger,
) -> Result<ExecChild, String> {
    let (program, args) = command.split_first().ok_or("empty command")?;
    let out =
        std::fs::File::create(&output).map_err(|e| format!("create {}: {e}", output.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = crate::net::command_in(ns, program);
    cmd.args(args)
        // Relative paths name the scenario's paths: `mnt/vol/x` is /mnt/vol/x.
        .current_dir(root)
        .env("STACKQUAKE_ROOT", root)
        // See workloads::spawn: found by cleanup, dies with the engine.
        .env(crate::process::RUN_ENV, ledger.run().as_str())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    crate::sys::pdeathsig::kill_with_parent(&mut cmd);
    let child = cmd.spawn().map_err(|e| format!("exec {program}: {e}"))?;
    let entry = crate::sys::procstat::read(child.id()).ok().and_then(|st| {
        ledger
            .record(LedgerObject::Process {
                pid: child.id(),
                starttime: st.starttime,
            })
            .ok()
    });
    Ok(ExecChild {
        step: step.to_string(),
        child,
        output,
        ledger: ledger.clone(),
        entry,
    })
}

impl ExecChild {
    /// The exit event once the command has ended.
    pub fn poll(&mut self, t_ns: u64) -> Option<Event> {
        let status = self.child.try_wait().ok().flatten()?;
        if let Some(entry) = self.entry.take() {
            let _ = self.ledger.done(entry);
        }
        let mut output = std::fs::read(&self.output).unwrap_or_default();
        output.truncate(OUTPUT_KEPT);
        Some(Event::Exec {
            step: self.step.clone(),
            code: status.code(),
            signal: std::os::unix::process::ExitStatusExt::signal(&status),
            output: String::from_utf8_lossy(&output).into_owned(),
            t_ns,
        })
    }

    /// SIGKILL and reap, without waiting long on a task stuck in the kernel.
    pub fn kill(mut self, t_ns: u64) -> Option<Event> {
        let _ = self.child.kill();
        for _ in 0..100 {
            if let Some(e) = self.poll(t_ns) {
                return Some(e);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        std::thread::spawn(move || self.child.wait());
        None
    }
}
