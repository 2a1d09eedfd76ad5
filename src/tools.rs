//! Finding and running the programs stackquake drives (ip, nft, dmsetup,
//! rpc.nfsd, mkfs.xfs, modprobe…): the one runner every layer uses. A
//! failure names the whole command line, its exit status and its stderr;
//! each layer's error enum wraps `CommandError` with `#[from]`.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("cannot run `{command}`")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
}

impl CommandError {
    /// The program ran and said one of `markers` on stderr.
    pub fn stderr_says(&self, markers: &[&str]) -> bool {
        matches!(self, CommandError::Failed { stderr, .. } if markers.iter().any(|m| stderr.contains(m)))
    }
}

/// What one run of a program gets besides its argv.
#[derive(Debug, Clone, Copy, Default)]
pub struct Input<'a> {
    /// Written to its stdin, which is then closed (None: /dev/null). A
    /// failure quotes it: for `nft -f -` the script is the command.
    pub stdin: Option<&'a str>,
    /// Where it runs when its argv does not say so (a namespace entered
    /// between fork and exec), for messages.
    pub place: Option<&'a str>,
}

/// The program and its arguments, space-separated, for messages.
pub fn command_line(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd` to completion (stdin closed); its stdout, or why not.
pub fn output(cmd: Command) -> Result<String, CommandError> {
    output_with(cmd, Input::default())
}

/// Runs `cmd` to completion and ignores its stdout.
pub fn run(cmd: Command) -> Result<(), CommandError> {
    output(cmd).map(drop)
}

/// Runs `cmd` to completion with `input`; its stdout, or why not.
pub fn output_with(cmd: Command, input: Input<'_>) -> Result<String, CommandError> {
    output_bytes(cmd, input).map(|out| String::from_utf8_lossy(&out).into_owned())
}

/// Like [`output_with`], for a program whose stdout is binary (a
/// decompressor): its bytes as they came.
pub fn output_bytes(mut cmd: Command, input: Input<'_>) -> Result<Vec<u8>, CommandError> {
    let mut command = command_line(&cmd);
    if let Some(place) = input.place {
        command = format!("{command} (in {place})");
    }
    tracing::debug!(%command, stdin = input.stdin.unwrap_or(""), "running");
    let spawn = |source| CommandError::Spawn {
        command: command.clone(),
        source,
    };
    cmd.stdin(match input.stdin {
        Some(_) => Stdio::piped(),
        None => Stdio::null(),
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    // This thread waits for the program, so it outlives it; if stackquake
    // is killed meanwhile, the program (an `ip -n sq-<run>-…`, a mkfs.xfs
    // on the run's image) dies with it instead of acting on a world that
    // `cleanup` is taking apart.
    crate::sys::pdeathsig::kill_with_parent(&mut cmd);
    let mut child = cmd.spawn().map_err(spawn)?;
    if let Some(text) = input.stdin {
        // Dropped at the end of this block: the program sees end of input.
        let mut pipe = child.stdin.take().expect("stdin was piped");
        if let Err(e) = pipe.write_all(text.as_bytes()) {
            drop(pipe);
            let _ = child.wait();
            return Err(spawn(e));
        }
    }
    let out = child.wait_with_output().map_err(spawn)?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    let mut stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if let Some(text) = input.stdin {
        stderr.push_str("\ninput was:\n");
        stderr.push_str(text);
    }
    Err(CommandError::Failed {
        command,
        status: out.status.to_string(),
        stderr,
    })
}

/// Runs a removal (`ip link del`, `dmsetup remove`, `nft delete table`…):
/// Ok(true) when it removed something, Ok(false) when its stderr says the
/// object was already gone (one of `absent`), which every undo tolerates.
pub fn remove(cmd: Command, absent: &[&str]) -> Result<bool, CommandError> {
    tolerate_absent(run(cmd), absent)
}

/// `result` of a removal, with an "already gone" failure turned into Ok(false).
pub fn tolerate_absent(
    result: Result<(), CommandError>,
    absent: &[&str],
) -> Result<bool, CommandError> {
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.stderr_says(absent) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Loads kernel modules (`modprobe -a …`). Callers that can live without
/// them (a later check decides) ignore the error; its stderr says why.
pub fn modprobe(modules: &[&str]) -> Result<(), CommandError> {
    let mut cmd = Command::new("modprobe");
    cmd.arg("-a").args(modules);
    run(cmd)
}

/// The path of `tool` on PATH: the lookup every `Command::new(tool)` (and
/// `nsenter … tool`) makes, so a tool found here is one those can start.
pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    }

    #[test]
    fn finds_a_shell_and_not_a_made_up_name() {
        assert!(super::which("sh").is_some_and(|p| p.is_absolute()));
        assert_eq!(super::which("no-such-tool-stackquake"), None);
    }

    #[test]
    fn output_is_stdout_and_a_failure_names_command_status_and_stderr() {
        let mut ok = std::process::Command::new("sh");
        ok.args(["-c", "echo out; echo err >&2"]);
        assert_eq!(super::output(ok).unwrap(), "out\n");
        let mut bad = std::process::Command::new("sh");
        bad.args(["-c", "echo why >&2; exit 3"]);
        let e = super::output(bad).unwrap_err().to_string();
        assert!(e.contains("`sh -c echo why >&2; exit 3` failed"), "{e}");
        assert!(e.contains("exit status: 3") && e.ends_with(": why"), "{e}");
        let missing = std::process::Command::new("no-such-tool-stackquake");
        assert!(matches!(
            super::output(missing),
            Err(super::CommandError::Spawn { .. })
        ));
    }

    #[test]
    fn stdin_is_fed_and_quoted_on_failure_with_the_place() {
        let input = Input {
            stdin: Some("a\nb\n"),
            place: None,
        };
        assert_eq!(output_with(sh("wc -l"), input).unwrap().trim(), "2");
        let input = Input {
            stdin: Some("the script\n"),
            place: Some("netns x"),
        };
        let e = output_with(sh("cat >/dev/null; echo no >&2; exit 1"), input)
            .unwrap_err()
            .to_string();
        assert!(e.contains("failed") && e.contains("(in netns x)`"), "{e}");
        assert!(e.ends_with(": no\ninput was:\nthe script\n"), "{e}");
    }

    #[test]
    fn a_removal_tolerates_only_the_absent_markers() {
        assert!(remove(sh("true"), &["gone"]).unwrap());
        assert!(!remove(sh("echo 'it is gone' >&2; exit 1"), &["gone"]).unwrap());
        let e = remove(sh("echo busy >&2; exit 1"), &["gone"]).unwrap_err();
        assert!(e.to_string().ends_with(": busy"), "{e}");
    }
}
