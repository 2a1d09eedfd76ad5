//! Finding and running the programs stackquake drives (ip, nft, rpc.nfsd,
//! mkfs.xfs, qemu…). A failure names the whole command line, its exit
//! status and its stderr; each layer's error type keeps those fields.

use std::path::PathBuf;
use std::process::Command;

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

/// The program and its arguments, space-separated, for messages.
pub fn command_line(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd` to completion (stdin closed); its stdout, or why not.
pub fn output(mut cmd: Command) -> Result<String, CommandError> {
    let command = command_line(&cmd);
    tracing::debug!(%command, "running");
    let out = cmd.output().map_err(|source| CommandError::Spawn {
        command: command.clone(),
        source,
    })?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    Err(CommandError::Failed {
        command,
        status: out.status.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
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
}
