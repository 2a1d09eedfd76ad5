//! A daemon of the machine's own, not the run's: a staging client's
//! rpc.statd or rpcbind. It is the one serving the network namespace
//! stackquake runs in (another namespace's daemon of that name is someone
//! else's). Stopping it first starts a watchdog in its namespaces that runs
//! its command line again after a time to live, detached from the run, so
//! the daemon comes back even if stackquake is killed; the heal starts it
//! through the watchdog's namespaces at once and ends the watchdog.

use super::RUN_ENV;
use crate::sys::procstat;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long after its fault was to end a watchdog restarts the daemon: the
/// heal, on time, comes first and ends the watchdog.
pub const WATCHDOG_MARGIN: Duration = Duration::from_secs(5);

/// How long a killed or restarted daemon may take to go or to come back.
const PATIENCE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum OwnDaemonError {
    #[error(
        "no {program} runs in this network namespace: there is none of the client's own to stop"
    )]
    NotRunning { program: String },
    #[error(
        "{program} (pid {pid}) is systemd's {unit}: stackquake does not stop units of a \
         service manager, which would start it again or hold its sockets; rehearse it with \
         exec steps (`systemctl stop {unit}`, then `systemctl start {unit}`)"
    )]
    Managed {
        program: String,
        pid: u32,
        unit: String,
    },
    #[error("cannot read /proc/{pid}: {source}")]
    Proc { pid: u32, source: std::io::Error },
    #[error("{what}: {source}")]
    Spawn {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Kill(#[from] super::ProcessError),
    #[error("{program} did not come back within {PATIENCE:?} of `{command}`")]
    NotBack { program: String, command: String },
}

/// A stopped daemon and the watchdog that will bring it back.
#[derive(Debug)]
pub struct Stopped {
    program: String,
    command: Vec<String>,
    /// The watchdog's pid and start time; its namespaces are the daemon's.
    watchdog: (u32, u64),
}

/// The daemons called `program` (their comm) that serve this process's
/// network namespace, with their command lines.
pub fn find(program: &str) -> Vec<(u32, Vec<String>)> {
    let Ok(ours) = std::fs::read_link("/proc/self/ns/net") else {
        return Vec::new();
    };
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim_end() == program)
        })
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/ns/net")).is_ok_and(|n| n == ours))
        .filter(|&pid| procstat::read(pid).is_ok_and(|s| s.state != 'Z'))
        .filter_map(|pid| {
            let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let command: Vec<String> = raw
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            (!command.is_empty()).then_some((pid, command))
        })
        .collect()
}

/// The systemd unit `pid` runs in, if systemd manages this machine.
fn systemd_unit(pid: u32) -> Option<String> {
    if !std::path::Path::new("/run/systemd/system").is_dir() {
        return None;
    }
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    cgroup
        .lines()
        .filter_map(|l| l.rsplit('/').next())
        .find(|last| last.ends_with(".service"))
        .map(str::to_string)
}

/// Stops the client's own `program`, to be back `lasts` (+ the margin)
/// from now at the latest.
pub fn stop(program: &str, lasts: Duration) -> Result<Stopped, OwnDaemonError> {
    let Some((pid, command)) = find(program).into_iter().next() else {
        return Err(OwnDaemonError::NotRunning {
            program: program.to_string(),
        });
    };
    if let Some(unit) = systemd_unit(pid) {
        return Err(OwnDaemonError::Managed {
            program: program.to_string(),
            pid,
            unit,
        });
    }
    let starttime = procstat::read(pid)
        .map_err(|source| OwnDaemonError::Proc { pid, source })?
        .starttime;
    let back_in = (lasts + WATCHDOG_MARGIN).as_secs_f64();
    let mut watchdog = in_namespaces_of(pid);
    watchdog
        .args(["sh", "-c", "sleep \"$0\" && exec \"$@\""])
        .arg(format!("{back_in:.3}"))
        .args(&command);
    let child = detached(&mut watchdog)
        .spawn()
        .map_err(|source| OwnDaemonError::Spawn {
            what: format!("start the watchdog of {program}"),
            source,
        })?;
    // Not waited for here: it outlives us if we die (init reaps it then);
    // the heal ends and reaps it.
    let wpid = child.id();
    drop(child);
    let wstart = procstat::read(wpid)
        .map_err(|source| OwnDaemonError::Proc { pid: wpid, source })?
        .starttime;
    // nsenter opens the daemon's namespaces after it starts: kill the
    // daemon before that and the watchdog has nowhere to go (and dies).
    if !entered(wpid, pid) {
        let _ = super::kill(wpid, wstart, PATIENCE);
        return Err(OwnDaemonError::Spawn {
            what: format!("start the watchdog of {program}"),
            source: std::io::Error::other("it never entered the daemon's namespaces"),
        });
    }
    super::kill(pid, starttime, PATIENCE)?;
    tracing::info!(
        program,
        pid,
        watchdog = wpid,
        "stopped the client's own daemon"
    );
    Ok(Stopped {
        program: program.to_string(),
        command,
        watchdog: (wpid, wstart),
    })
}

impl Stopped {
    /// Starts the daemon again with its own command line, in its own
    /// namespaces, then ends the watchdog.
    pub fn restart(&self) -> Result<(), OwnDaemonError> {
        let (wpid, wstart) = self.watchdog;
        let command = self.command.join(" ");
        // A shell that puts the daemon in the background and exits: a
        // daemon that stays in the foreground is never our child to reap.
        let mut start = in_namespaces_of(wpid);
        start
            .args(["sh", "-c", "\"$@\" </dev/null >/dev/null 2>&1 &", "sh"])
            .args(&self.command);
        let status = detached(&mut start)
            .status()
            .map_err(|source| OwnDaemonError::Spawn {
                what: format!("start `{command}`"),
                source,
            })?;
        // The watchdog's group: its shell and the sleep it waits in.
        let pid = nix::unistd::Pid::from_raw(wpid as i32);
        if procstat::is_same_process_alive(wpid, wstart) {
            let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
        }
        let _ = super::kill(wpid, wstart, PATIENCE);
        let _ = nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
        let until = Instant::now() + PATIENCE;
        while Instant::now() < until {
            if status.success() && !find(&self.program).is_empty() {
                tracing::info!(program = %self.program, "the client's own daemon is back");
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(OwnDaemonError::NotBack {
            program: self.program.clone(),
            command,
        })
    }
}

/// Whether `watchdog` has become its shell inside the namespaces of `pid`.
fn entered(watchdog: u32, pid: u32) -> bool {
    let ns = |p: u32| std::fs::read_link(format!("/proc/{p}/ns/mnt")).ok();
    let until = Instant::now() + PATIENCE;
    while Instant::now() < until {
        let comm = std::fs::read_to_string(format!("/proc/{watchdog}/comm")).unwrap_or_default();
        if comm.trim_end() == "sh" && ns(watchdog).is_some() && ns(watchdog) == ns(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// `nsenter` into the mount and network namespaces of `pid`: where the
/// daemon ran (its /run, its state directory), whatever ours are.
fn in_namespaces_of(pid: u32) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.arg("-t").arg(pid.to_string()).args(["-m", "-n", "--"]);
    cmd
}

/// Not the run's: no run id to be found and killed by, no parent-death
/// signal, a session of its own, and no terminal.
fn detached(cmd: &mut Command) -> &mut Command {
    cmd.env_remove(RUN_ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
}
