//! `exec` steps (and `exec` abort probes): a command run to completion in a
//! host's namespace, its output kept in the scratch directory, killed if
//! the step times out.

use crate::journal::Event;
use crate::ledger::Ledger;
use crate::net::Netns;
use crate::process::{Recorded, SpawnError};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

/// The first this-many bytes of a command's output go into the journal.
const OUTPUT_KEPT: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("create {}: {source}", path.display())]
    Output {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("exec {program}: {}", why(source))]
    Spawn { program: String, source: SpawnError },
}

/// What went wrong, without repeating the command line the step shows.
fn why(e: &SpawnError) -> String {
    match e {
        SpawnError::Spawn { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

pub struct ExecChild {
    step: String,
    child: Recorded,
    output: PathBuf,
}

pub fn spawn(
    step: &str,
    ns: Option<&Netns>,
    command: &[String],
    root: &std::path::Path,
    output: PathBuf,
    ledger: &Ledger,
) -> Result<ExecChild, ExecError> {
    let (program, args) = command
        .split_first()
        .expect("validated: a command has its program");
    let output_err = |source| ExecError::Output {
        path: output.clone(),
        source,
    };
    let out = std::fs::File::create(&output).map_err(output_err)?;
    let err = out.try_clone().map_err(output_err)?;
    let mut cmd = crate::net::command_at(ns, program);
    cmd.args(args)
        // Relative paths name the scenario's paths: `mnt/vol/x` is /mnt/vol/x.
        .current_dir(root)
        .env("STACKQUAKE_ROOT", root)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    crate::process::tie_to_run(&mut cmd, ledger);
    let child = crate::process::spawn_recorded(&mut cmd, Some(ledger)).map_err(|source| {
        ExecError::Spawn {
            program: program.clone(),
            source,
        }
    })?;
    Ok(ExecChild {
        step: step.to_string(),
        child,
        output,
    })
}

/// How a command ended.
pub struct Exit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// The first KiB of its stdout and stderr.
    pub output: String,
}

impl ExecChild {
    /// The exit event once the command has ended.
    pub fn poll(&mut self, t_ns: u64) -> Option<Event> {
        let Exit {
            code,
            signal,
            output,
        } = self.try_exit()?;
        Some(Event::Exec {
            step: self.step.clone(),
            code,
            signal,
            output,
            t_ns,
        })
    }

    /// Whether a whole line of its output so far matches `ready`.
    pub fn printed(&self, ready: &regex::Regex) -> bool {
        let Ok(output) = std::fs::read(&self.output) else {
            return false;
        };
        // A line still being written is not judged until its newline.
        let whole = output
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(&[][..], |end| &output[..end]);
        String::from_utf8_lossy(whole)
            .lines()
            .any(|line| ready.is_match(line))
    }

    /// How the command ended, once it has.
    pub fn try_exit(&mut self) -> Option<Exit> {
        let status = self.child.child.try_wait().ok().flatten()?;
        self.child.reaped();
        let mut output = std::fs::read(&self.output).unwrap_or_default();
        output.truncate(OUTPUT_KEPT);
        Some(Exit {
            code: status.code(),
            signal: std::os::unix::process::ExitStatusExt::signal(&status),
            output: String::from_utf8_lossy(&output).into_owned(),
        })
    }

    /// SIGKILL and reap, without waiting long on a task stuck in the kernel.
    pub fn kill(mut self, t_ns: u64) -> Option<Event> {
        if self.child.kill(Duration::from_secs(2)).is_ok()
            && let Some(e) = self.poll(t_ns)
        {
            return Some(e);
        }
        std::thread::spawn(move || self.child.child.wait());
        None
    }
}
