//! What host and guest exchange: through the results share, the job the
//! host asks for, the exit status the guest reports, and their names; on
//! the console, the lines the host watches for.

use std::ffi::OsString;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Written by the host before boot; read by `guest_init`.
pub const JOB_FILE: &str = "guest-job.json";
/// Written by `guest_init` after the job ends; its absence means the guest
/// never finished (boot failure, panic or watchdog).
pub const EXIT_FILE: &str = "guest-exit.json";
/// The job's stdout and stderr, also echoed on the console.
pub const STDOUT_FILE: &str = "guest-stdout.log";
pub const STDERR_FILE: &str = "guest-stderr.log";
/// The serial console, written by QEMU itself.
pub const CONSOLE_FILE: &str = "console.log";

/// Printed by `guest_init` on the console as soon as it runs: the host
/// measures boot time up to this line and starts the job's deadline there.
pub const BOOT_MARKER: &str = "stackquake-guest: userspace up";

/// Marks a progress line the guest's engine writes to the console (see
/// `report::Progress::relayed`), so the host running `--vm` can pick it out
/// and show it live.
pub const RELAY_PREFIX: &str = "stackquake-progress: ";

/// Marks the line the guest's engine writes to the console when its run
/// moves on to another stage (setup, timeline, teardown…): the host
/// schedules the guest's QEMU by it (`priority`).
pub const STAGE_PREFIX: &str = "stackquake-stage: ";

/// The line the host writes to the guest's serial console when it was told
/// to stop (SIGINT, SIGTERM): guest-init then sends the job SIGTERM, and
/// the job heals its faults, tears its world down and reports, as on a host.
pub const STOP_REQUEST: &str = "stackquake-stop";

/// What to run in the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFile {
    pub argv: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
    pub cwd: PathBuf,
    /// Host paths the job was given (its program, file arguments, cwd) that
    /// must stay visible in the guest even under the tmpfs it mounts over
    /// /tmp, /root… — a checkout in /tmp is common, in CI too.
    #[serde(default)]
    pub host_paths: Vec<PathBuf>,
}

impl JobFile {
    /// The program and every absolute path argument that exists on the
    /// host, plus the working directory (the guest decides how much of
    /// each it shows: `guest::expose_host_paths`).
    pub fn for_job(
        argv: Vec<std::ffi::OsString>,
        env: Vec<(OsString, OsString)>,
        cwd: PathBuf,
    ) -> JobFile {
        let mut host_paths: Vec<PathBuf> = argv
            .iter()
            .map(PathBuf::from)
            .filter(|p| p.is_absolute() && p.exists())
            .collect();
        host_paths.push(cwd.clone());
        host_paths.sort();
        host_paths.dedup();
        JobFile {
            argv,
            env,
            cwd,
            host_paths,
        }
    }
}

/// How the job ended, as seen by the guest's PID 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitFile {
    /// The exit code, or 128 + signal number as a shell reports it.
    pub code: i32,
    pub signal: Option<i32>,
    /// Empty when the job ran; otherwise why it could not be started.
    pub error: Option<String>,
    pub runtime_ms: u64,
    #[serde(default)]
    pub clock: GuestClock,
}

/// Where a guest's start-up went, on its own clock (CLOCK_MONOTONIC, which
/// starts with the kernel): when the kernel ran the initramfs's /init (its
/// "Run /init" record, None if the ring buffer lost it), when guest-init
/// began on the host root, and when the job was started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestClock {
    pub kernel_ran_init_ms: Option<u64>,
    pub guest_init_ms: u64,
    pub job_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    #[test]
    fn host_paths_are_the_existing_absolute_arguments_and_the_cwd() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.yaml");
        std::fs::write(&file, "").unwrap();
        let job = JobFile::for_job(
            vec![
                "/bin/sh".into(),
                "run".into(),
                file.clone().into(),
                "/nonexistent/x".into(),
            ],
            vec![],
            "/".into(),
        );
        assert_eq!(
            job.host_paths,
            vec![PathBuf::from("/"), PathBuf::from("/bin/sh"), file]
        );
    }

    #[test]
    fn job_round_trips_non_utf8_arguments() {
        let job = JobFile {
            argv: vec!["/bin/sh".into(), OsString::from_vec(vec![0xff, b'x'])],
            env: vec![("OUT".into(), "/run/stackquake-out".into())],
            cwd: "/".into(),
            host_paths: vec![],
        };
        let text = serde_json::to_string(&job).unwrap();
        assert_eq!(serde_json::from_str::<JobFile>(&text).unwrap(), job);
    }
}
