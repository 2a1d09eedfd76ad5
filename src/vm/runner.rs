//! Booting one guest for one job: preparing the results share, spawning
//! QEMU (killed with us), watching the console, and the watchdog that
//! SIGKILLs QEMU when the boot or the job outlives its deadline.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::job::{
    BOOT_MARKER, CONSOLE_FILE, EXIT_FILE, ExitFile, JOB_FILE, JobFile, RELAY_PREFIX, STDERR_FILE,
    STDOUT_FILE,
};
use super::kernel::GuestKernel;
use super::priority::GuestPriority;
use super::qemu::{QemuArgs, Share, VmConfig};
use super::qemu_process::QemuProcess;
use super::{GuestJob, GuestOutcome, VmError, cache, initramfs, probe, vmlinux};

/// From QEMU start to guest-init's first line. A TCG boot takes 2-5 s on a
/// busy 2-core host; a boot that hangs (KVM on nested PVM, TSC calibration)
/// never gets there, so this only has to be generous, not tight.
const BOOT_TIMEOUT: Duration = Duration::from_secs(40);
/// After the job's timeout: time for guest-init to write the exit file and
/// power off before the watchdog fires.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// After we were told to stop: time for the job to heal its faults, tear
/// its world down (a hard NFS mount's unmount has deadlines of its own)
/// and report, before QEMU is killed.
const STOP_GRACE: Duration = Duration::from_secs(60);

/// Like [`super::run`], with an explicit guest init command (absolute
/// program + args, visible in the guest at the same path). Tests use it to
/// run a test binary as the guest's init.
pub fn run_with_guest_command(
    job: &GuestJob,
    guest_cmd: &[OsString],
) -> Result<GuestOutcome, VmError> {
    let qemu = find_qemu()?;
    let kernel = match &job.kernel {
        Some(spec) => GuestKernel::resolve(spec, Path::new("/boot"))?,
        None => GuestKernel::default_in(Path::new("/boot"))?,
    };
    let init_args = guest_cmd
        .iter()
        .map(|a| cmdline_word("guest init argument", a))
        .collect::<Result<Vec<_>, _>>()?;
    let out_dir = prepare_out_dir(job)?;
    let cache_dir = cache::cache_dir();
    let initramfs = initramfs::ensure(&kernel, &cache_dir)?;
    let accel = probe::resolve(job.accel, &qemu, &kernel, &cache_dir)?;
    let console = out_dir.join(CONSOLE_FILE);
    let boot_image = vmlinux::ensure(&kernel, &cache_dir).unwrap_or_else(|| kernel.image.clone());
    let cfg = VmConfig {
        kernel: boot_image,
        initramfs: Some(initramfs),
        memory_mib: job.memory_mib,
        cpus: job.cpus,
        accel,
        shares: vec![
            Share {
                tag: "sqroot".into(),
                host_path: "/".into(),
                readonly: true,
            },
            Share {
                tag: "sqout".into(),
                host_path: out_dir.clone(),
                readonly: false,
            },
        ],
        kernel_cmdline_extra: vec![],
        console_log: Some(console.clone()),
        tsc_khz: probe::host_tsc_khz(),
        init_args,
    };
    let args = QemuArgs::build(&cfg);
    tracing::info!(kernel = %kernel.image.display(), ?accel, "booting guest");
    tracing::debug!(qemu = %qemu.display(), args = ?args.0, "qemu command line");
    let outcome = boot_and_watch(&qemu, &args, job.timeout, &out_dir, &console)?;
    match outcome {
        // A boot that never reached userspace is the rare hang measured on
        // loaded hosts; one retry, keeping the first console for inspection.
        GuestOutcome::BootFailed { ref reason, .. } if reason.starts_with(NO_USERSPACE) => {
            let first = out_dir.join("console-attempt1.log");
            let _ = fs::rename(&console, &first);
            tracing::warn!(reason, kept = %first.display(), "guest boot hung; retrying once");
            boot_and_watch(&qemu, &args, job.timeout, &out_dir, &console)
        }
        other => Ok(other),
    }
}

const NO_USERSPACE: &str = "guest did not reach userspace";

/// Held from QEMU's start until its guest reaches userspace (or fails to).
static BOOT_GATE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn boot_and_watch(
    qemu: &Path,
    args: &QemuArgs,
    timeout: Duration,
    out_dir: &Path,
    console: &Path,
) -> Result<GuestOutcome, VmError> {
    let _ = fs::remove_file(out_dir.join(EXIT_FILE));
    // One guest boots at a time in this process (`run --jobs`): four TCG
    // guests started together on a loaded 2-core host all hung before
    // userspace (last console line at 3-6 s guest time, then nothing for
    // 40 s) and all four booted on the retry. Running guests overlap freely.
    let mut boot_gate = Some(BOOT_GATE.lock().unwrap_or_else(|e| e.into_inner()));
    let start = Instant::now();
    let mut priority = GuestPriority::booting();
    let mut vm = QemuProcess::spawn(qemu, args, false, Some(priority.nice()))?;
    let mut booted: Option<Instant> = None;
    let mut stop_asked: Option<Instant> = None;
    let mut last_lines: Vec<String> = Vec::new();
    let exited = loop {
        if let Some(line) = vm.next_line(Duration::from_millis(50)) {
            // The guest engine's progress, shown live as if it ran here.
            if let Some(progress) = relayed_progress(&line) {
                eprintln!("{progress}");
            }
            if let Some(nice) = priority.follow(&line) {
                vm.set_nice(nice);
            }
            if booted.is_none() && line.contains(BOOT_MARKER) {
                booted = Some(Instant::now());
                drop(boot_gate.take());
                tracing::info!(boot = ?start.elapsed(), "guest userspace up");
            }
            last_lines.push(line);
            if last_lines.len() > 20 {
                last_lines.remove(0);
            }
            continue;
        }
        if let Some(status) = vm.try_wait()? {
            break status;
        }
        let now = Instant::now();
        if crate::sys::termination_requested() {
            match (booted, stop_asked) {
                (Some(_), None) => {
                    tracing::info!("asking the guest's job to stop");
                    vm.ask_to_stop();
                    stop_asked = Some(now);
                }
                (Some(_), Some(t)) if now - t <= STOP_GRACE => {}
                _ => {
                    vm.kill();
                    return Ok(GuestOutcome::Interrupted {
                        console: console.to_path_buf(),
                    });
                }
            }
        }
        match booted {
            None if now - start > BOOT_TIMEOUT => {
                vm.kill();
                return Ok(GuestOutcome::BootFailed {
                    reason: format!(
                        "{NO_USERSPACE} within {BOOT_TIMEOUT:?} (qemu killed); last console lines: {}",
                        tail(&last_lines)
                    ),
                    console: console.to_path_buf(),
                });
            }
            Some(t) if now - t > timeout + SHUTDOWN_GRACE => {
                vm.kill();
                tracing::warn!(?timeout, "guest job timed out; qemu killed");
                return Ok(GuestOutcome::TimedOut {
                    console: console.to_path_buf(),
                });
            }
            _ => {}
        }
    };
    let total = start.elapsed();
    let exit_path = out_dir.join(EXIT_FILE);
    let exit: Option<ExitFile> = fs::read(&exit_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    Ok(match (exit, booted) {
        (
            Some(ExitFile {
                error: Some(error), ..
            }),
            _,
        ) => GuestOutcome::BootFailed {
            reason: format!("guest could not start the job: {error}"),
            console: console.to_path_buf(),
        },
        (Some(exit), Some(t)) => GuestOutcome::Exited {
            code: exit.code,
            console: console.to_path_buf(),
            boot_time: t - start,
            total,
            job: Duration::from_millis(exit.runtime_ms),
            clock: exit.clock,
        },
        (_, None) => GuestOutcome::BootFailed {
            reason: format!(
                "{NO_USERSPACE}: qemu exited ({exited}); last console lines: {}",
                tail(&last_lines)
            ),
            console: console.to_path_buf(),
        },
        (None, Some(_)) => GuestOutcome::BootFailed {
            reason: format!(
                "guest ended without writing {EXIT_FILE} (qemu {exited}); last console lines: {}",
                tail(&last_lines)
            ),
            console: console.to_path_buf(),
        },
    })
}

fn tail(lines: &[String]) -> String {
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

/// Makes `out_dir` absolute, clears the previous run's files and writes
/// the job for guest-init.
fn prepare_out_dir(job: &GuestJob) -> Result<PathBuf, VmError> {
    let program = job.argv.first().cloned().unwrap_or_default();
    if !Path::new(&program).is_absolute() {
        return Err(VmError::BadArgv { program });
    }
    let io = |source| VmError::OutDir {
        path: job.out_dir.clone(),
        source,
    };
    fs::create_dir_all(&job.out_dir).map_err(io)?;
    let out_dir = fs::canonicalize(&job.out_dir).map_err(io)?;
    for name in [JOB_FILE, EXIT_FILE, STDOUT_FILE, STDERR_FILE, CONSOLE_FILE] {
        let _ = fs::remove_file(out_dir.join(name));
    }
    let file = JobFile::for_job(job.argv.clone(), job.env.clone(), job.cwd.clone());
    let json = serde_json::to_vec_pretty(&file).expect("job serializes");
    fs::write(out_dir.join(JOB_FILE), json).map_err(io)?;
    Ok(out_dir)
}

/// The kernel splits its command line on spaces (quotes only partly
/// honoured), so init arguments must be plain words.
fn cmdline_word(what: &'static str, arg: &OsString) -> Result<String, VmError> {
    let bad = |reason| VmError::BadGuestArg {
        what,
        path: arg.clone(),
        reason,
    };
    let s = arg.to_str().ok_or_else(|| bad("not UTF-8"))?;
    if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c == '"') {
        return Err(bad("empty, or contains whitespace or quotes"));
    }
    Ok(s.to_string())
}

pub(super) fn find_qemu() -> Result<PathBuf, VmError> {
    crate::tools::which("qemu-system-x86_64").ok_or(VmError::QemuMissing)
}

/// The guest engine's progress line in a console line, if it is one
/// (kernel messages may share the console, so the marker may not start it).
fn relayed_progress(console_line: &str) -> Option<&str> {
    console_line
        .split_once(RELAY_PREFIX)
        .map(|(_, progress)| progress.trim_end())
}

#[cfg(test)]
mod tests {
    use super::super::qemu::Accel;
    use super::*;

    #[test]
    fn only_marked_console_lines_are_relayed_without_the_marker() {
        let line = format!("{RELAY_PREFIX}  sc   +1.05s begin  steady\r\n");
        assert_eq!(relayed_progress(&line), Some("  sc   +1.05s begin  steady"));
        assert_eq!(
            relayed_progress("[    1.2] XFS (loop0): Mounting V5\r\n"),
            None
        );
    }

    #[test]
    fn cmdline_words_reject_spaces_and_quotes() {
        assert_eq!(
            cmdline_word("x", &"/usr/bin/stackquake".into()).unwrap(),
            "/usr/bin/stackquake"
        );
        assert!(cmdline_word("x", &"/a b/stackquake".into()).is_err());
        assert!(cmdline_word("x", &"/a\"b".into()).is_err());
        assert!(cmdline_word("x", &"".into()).is_err());
    }

    #[test]
    fn relative_program_is_refused_before_booting() {
        let dir = tempfile::tempdir().unwrap();
        let job = GuestJob {
            argv: vec!["true".into()],
            env: vec![],
            cwd: "/".into(),
            timeout: Duration::from_secs(1),
            kernel: None,
            accel: Accel::Tcg,
            memory_mib: 256,
            cpus: 1,
            out_dir: dir.path().into(),
        };
        assert!(matches!(
            prepare_out_dir(&job),
            Err(VmError::BadArgv { .. })
        ));
    }
}
