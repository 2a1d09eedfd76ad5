//! `stackquake vm guest-init`: PID 1 inside the guest, on the host's root
//! (read-only 9p). Makes the scratch mounts, runs the job from the results
//! share, records how it ended and powers the guest off.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::mount::{MsFlags, mount};
use nix::sys::reboot::{RebootMode, reboot};
use nix::sys::stat::{Mode, SFlag, makedev, mknod};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;

use super::GUEST_OUT_DIR;
use super::job::{
    BOOT_MARKER, EXIT_FILE, ExitFile, GuestClock, JOB_FILE, JobFile, STDERR_FILE, STDOUT_FILE,
    STOP_REQUEST,
};
use super::qemu::NINEP_MSIZE;

/// Default PATH for the job: the host's, as the host's / is the guest's.
const GUEST_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Directories that get a fresh tmpfs: everything stackquake and the tools
/// it runs (mkfs.xfs, nft, rpc.statd, modprobe) write to. /etc stays the
/// host's, read-only.
const TMPFS_DIRS: &[&str] = &[
    "/tmp", "/run", "/var/tmp", "/mnt", "/var/lib", "/var/log", "/root",
];

/// How long the job's output pipes may stay open after the job exits
/// (a daemon it started may hold them); its output is not worth a hang.
const OUTPUT_DRAIN: Duration = Duration::from_secs(2);

/// Runs as PID 1 in the guest and never returns: the guest powers off.
pub fn guest_init() -> ! {
    println!("{BOOT_MARKER}");
    if let Err(e) = run_guest() {
        // No exit file: the host reports BootFailed and keeps this console.
        eprintln!("stackquake-guest: {e}");
    }
    // No sync(2): every file the host reads was synced when written, and
    // a global sync would wait for ever on a hard NFS mount whose server
    // a scenario left unreachable.
    let err = reboot(RebootMode::RB_POWER_OFF);
    // Unreachable unless reboot(2) failed; PID 1 exiting panics the kernel,
    // and panic=-1 with -no-reboot still ends QEMU.
    eprintln!("stackquake-guest: power off failed: {err:?}");
    std::process::exit(1)
}

/// Where the host's root stays visible after tmpfs is mounted over parts of it.
const HOST_VIEW: &str = "/dev/.stackquake-host";

fn run_guest() -> Result<(), String> {
    let guest_init_ms = clock_ms();
    mount_scratch()?;
    let kernel_ran_init_ms = kernel_ran_init_ms();
    let out = Path::new(GUEST_OUT_DIR);
    let job_path = out.join(JOB_FILE);
    let text = fs::read_to_string(&job_path)
        .map_err(|e| format!("reading {}: {e}", job_path.display()))?;
    let job: JobFile =
        serde_json::from_str(&text).map_err(|e| format!("parsing {}: {e}", job_path.display()))?;
    expose_host_paths(&job.host_paths)?;
    let _ = fs::write("/proc/sys/kernel/hostname", "stackquake-guest");
    static_nodes();
    loopback_up();
    let clock = GuestClock {
        kernel_ran_init_ms,
        guest_init_ms,
        job_ms: clock_ms(),
    };
    let exit = ExitFile {
        clock,
        ..run_job(&job, out)
    };
    println!(
        "stackquake-guest: job exited code={} after {} ms",
        exit.code, exit.runtime_ms
    );
    let exit_path = out.join(EXIT_FILE);
    let json = serde_json::to_vec_pretty(&exit).map_err(|e| e.to_string())?;
    let mut f =
        File::create(&exit_path).map_err(|e| format!("creating {}: {e}", exit_path.display()))?;
    f.write_all(&json)
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("writing {}: {e}", exit_path.display()))
}

/// CLOCK_MONOTONIC in milliseconds: time since the kernel started, the
/// clock of /dev/kmsg's records.
fn clock_ms() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map_or(0, |t| Duration::from(t).as_millis() as u64)
}

/// When the kernel ran the initramfs's /init, from its "Run /init as init
/// process" record (logged with `quiet` too, just not on the console).
fn kernel_ran_init_ms() -> Option<u64> {
    let mut kmsg = crate::observe::Kmsg::open_at_start().ok()?;
    kmsg.read_available()
        .into_iter()
        .find(|r| r.text.starts_with("Run /init as init process"))
        .map(|r| r.usec / 1000)
}

fn mount_scratch() -> Result<(), String> {
    let nodev = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    let fs = |src: &str, target: &str, fstype: &str, flags: MsFlags, data: Option<&str>| {
        mount(Some(src), target, Some(fstype), flags, data)
            .map_err(|e| format!("mounting {fstype} on {target}: {e}"))
    };
    fs("proc", "/proc", "proc", nodev | MsFlags::MS_NOEXEC, None)?;
    fs("sysfs", "/sys", "sysfs", nodev | MsFlags::MS_NOEXEC, None)?;
    fs(
        "devtmpfs",
        "/dev",
        "devtmpfs",
        MsFlags::MS_NOSUID,
        Some("mode=0755"),
    )?;
    // Keep the host's view of what the tmpfs mounts below will hide; a plain
    // (non-recursive) bind of / holds just the 9p root.
    fs::create_dir_all(HOST_VIEW).map_err(|e| format!("creating {HOST_VIEW}: {e}"))?;
    fs("/", HOST_VIEW, "none", MsFlags::MS_BIND, None)?;
    for dir in TMPFS_DIRS {
        if Path::new(dir).is_dir() {
            fs("tmpfs", dir, "tmpfs", MsFlags::MS_NOSUID, Some("mode=0755"))?;
        }
    }
    // devpts and /dev/shm live on the fresh devtmpfs, which is writable.
    let _ = fs::create_dir_all("/dev/pts").and_then(|()| fs::create_dir_all("/dev/shm"));
    fs(
        "devpts",
        "/dev/pts",
        "devpts",
        nodev,
        Some("ptmxmode=0666,mode=0620"),
    )?;
    fs("tmpfs", "/dev/shm", "tmpfs", nodev, Some("mode=1777"))?;
    // Modules the job needs come from the host's /lib/modules via modprobe.
    fs("debugfs", "/sys/kernel/debug", "debugfs", nodev, None).ok();
    fs::create_dir_all(GUEST_OUT_DIR).map_err(|e| format!("creating {GUEST_OUT_DIR}: {e}"))?;
    // cache=none: the host reads these files right after the guest ends.
    let opts = format!("trans=virtio,version=9p2000.L,msize={NINEP_MSIZE}");
    fs("sqout", GUEST_OUT_DIR, "9p", MsFlags::empty(), Some(&opts))
}

/// Binds each job path that a scratch tmpfs hides back from the host's
/// view, read-only, at the same place. A file brings its directory (the
/// scenarios beside it, a binary's neighbours), except a file right in a
/// scratch directory, which comes alone: the host's whole /tmp over the
/// guest's would leave the run no scratch ("create /tmp/stackquake/…:
/// Read-only file system" for a scenario saved in /tmp).
fn expose_host_paths(paths: &[PathBuf]) -> Result<(), String> {
    let host_view = |p: &Path| Path::new(HOST_VIEW).join(p.strip_prefix("/").unwrap_or(p));
    let mut shown: Vec<&Path> = Vec::new();
    for path in paths {
        let Some(scratch) = TMPFS_DIRS
            .iter()
            .map(Path::new)
            .find(|d| path.starts_with(d))
        else {
            continue;
        };
        let is_file = host_view(path).is_file();
        let show = match path.parent() {
            Some(dir) if is_file && dir != scratch => dir,
            _ => path.as_path(),
        };
        if show == scratch {
            return Err(format!(
                "{} is the guest's scratch directory and cannot be shown whole: \
                 name the files in it, or move them into a directory below it",
                show.display()
            ));
        }
        if shown.iter().any(|s| show.starts_with(s)) {
            continue;
        }
        let made = if show == path && is_file {
            File::create(path).map(drop)
        } else {
            fs::create_dir_all(show)
        };
        made.map_err(|e| format!("creating {}: {e}", show.display()))?;
        let bind = |flags: MsFlags| {
            mount(
                Some(&host_view(show)),
                show,
                None::<&str>,
                flags,
                None::<&str>,
            )
            .map_err(|e| format!("exposing host {}: {e}", show.display()))
        };
        bind(MsFlags::MS_BIND)?;
        bind(MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY)?;
        shown.push(show);
    }
    Ok(())
}

/// Device nodes whose first open loads their module (`/dev/loop-control`
/// → loop, `/dev/fuse`, `/dev/net/tun`...). Without udev nobody creates
/// them (`kmod static-nodes` does on a normal boot), and `mount -o loop`
/// then fails with EPERM instead of loading loop.ko.
fn static_nodes() {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let path = format!("/lib/modules/{}/modules.devname", release.trim());
    let Ok(text) = fs::read_to_string(&path) else {
        eprintln!("stackquake-guest: no {path}; modules load only by modprobe");
        return;
    };
    for (name, kind, dev) in text.lines().filter_map(parse_devname) {
        let node = Path::new("/dev").join(name);
        if let Some(parent) = node.parent() {
            let _ = fs::create_dir_all(parent);
        }
        let _ = mknod(&node, kind, Mode::from_bits_truncate(0o600), dev);
    }
}

/// One modules.devname line, "loop loop-control c10:237" → (name, type, dev).
fn parse_devname(line: &str) -> Option<(&str, SFlag, u64)> {
    let mut words = line.split_whitespace();
    let (_module, name, spec) = (words.next()?, words.next()?, words.next()?);
    if line.starts_with('#') || name.contains("..") {
        return None;
    }
    let kind = match spec.as_bytes().first()? {
        b'c' => SFlag::S_IFCHR,
        b'b' => SFlag::S_IFBLK,
        _ => return None,
    };
    let (major, minor) = spec[1..].split_once(':')?;
    Some((
        name,
        kind,
        makedev(major.parse().ok()?, minor.parse().ok()?),
    ))
}

fn loopback_up() {
    let status = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .env("PATH", GUEST_PATH)
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        eprintln!("stackquake-guest: ip link set lo up failed: {status:?}");
    }
}

fn run_job(job: &JobFile, out: &Path) -> ExitFile {
    let start = Instant::now();
    let failed = |error: String| ExitFile {
        code: 127,
        signal: None,
        error: Some(error),
        runtime_ms: start.elapsed().as_millis() as u64,
        clock: GuestClock::default(),
    };
    let Some((program, args)) = job.argv.split_first() else {
        return failed("empty argv".into());
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(&job.cwd)
        .env_clear()
        .env("PATH", GUEST_PATH)
        .env("STACKQUAKE_OUT", GUEST_OUT_DIR)
        .envs(job.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return failed(format!("spawning {}: {e}", program.to_string_lossy())),
    };
    let (done_tx, done_rx) = mpsc::channel();
    let mut drains = 0;
    if let Some(pipe) = child.stdout.take() {
        tee(
            pipe,
            out.join(STDOUT_FILE),
            std::io::stdout(),
            done_tx.clone(),
        );
        drains += 1;
    }
    if let Some(pipe) = child.stderr.take() {
        tee(
            pipe,
            out.join(STDERR_FILE),
            std::io::stderr(),
            done_tx.clone(),
        );
        drains += 1;
    }
    let pid = Pid::from_raw(child.id() as i32);
    forward_stop_requests(pid);
    let status = reap_until(pid);
    let deadline = Instant::now() + OUTPUT_DRAIN;
    for _ in 0..drains {
        let left = deadline.saturating_duration_since(Instant::now());
        if done_rx.recv_timeout(left).is_err() {
            eprintln!("stackquake-guest: job output still open after exit; not waiting");
            break;
        }
    }
    let (code, signal) = match status {
        Some(s) => match (s.code(), s.signal()) {
            (Some(c), _) => (c, None),
            (None, Some(sig)) => (128 + sig, Some(sig)),
            (None, None) => (255, None),
        },
        None => return failed("lost track of the job process".into()),
    };
    ExitFile {
        code,
        signal,
        error: None,
        runtime_ms: start.elapsed().as_millis() as u64,
        clock: GuestClock::default(),
    }
}

/// Passes the host's [`STOP_REQUEST`] on to the job as SIGTERM. The request
/// comes in on the serial console, which the kernel gave PID 1 as stdin.
fn forward_stop_requests(job: Pid) {
    use std::io::BufRead;
    thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { return };
            if line.trim() == STOP_REQUEST {
                eprintln!("stackquake-guest: the host asked the job to stop");
                let _ = nix::sys::signal::kill(job, nix::sys::signal::Signal::SIGTERM);
            }
        }
    });
}

/// How long the job may be a zombie that cannot be reaped before we take
/// its exit status from /proc and go on without reaping it.
const STUCK_THREAD_PATIENCE: Duration = Duration::from_secs(5);

/// How often a job that has not been reaped is looked at in /proc: waking
/// costs the emulated CPU, and only a stuck job ever needs the look.
const ZOMBIE_LOOK: Duration = Duration::from_millis(500);

/// As PID 1 we inherit every orphan; a thread reaps them all, blocked in
/// waitpid(2), until ours exits (polling instead woke the guest 50 times a
/// second, a tenth of a host core per guest under TCG).
/// A process is reaped only once all its threads have exited; one thread
/// stuck in the kernel (D state on a hard NFS mount a scenario left
/// unreachable) would keep the guest up until the host kills it, and its
/// results with it. Its status is in /proc as soon as its main thread exits.
fn reap_until(pid: Pid) -> Option<std::process::ExitStatus> {
    let (reaped_tx, reaped) = mpsc::channel();
    thread::spawn(move || reaped_tx.send(reap_orphans_until(pid)));
    let mut zombie_since: Option<Instant> = None;
    loop {
        match reaped.recv_timeout(ZOMBIE_LOOK) {
            Ok(status) => return status,
            Err(mpsc::RecvTimeoutError::Disconnected) => return None,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if let Ok(stat) = crate::sys::procstat::read(pid.as_raw() as u32)
            && stat.state == 'Z'
        {
            let since = *zombie_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= STUCK_THREAD_PATIENCE {
                eprintln!(
                    "stackquake-guest: the job exited but a thread of it is stuck in the \
                     kernel; its exit status comes from /proc/{pid}/stat"
                );
                return stat.exit_code.map(std::process::ExitStatus::from_raw);
            }
        }
    }
}

/// Reaps every child until `pid` is among them; None if it never can be.
fn reap_orphans_until(pid: Pid) -> Option<std::process::ExitStatus> {
    loop {
        match waitpid(Pid::from_raw(-1), None) {
            Ok(WaitStatus::Exited(p, code)) if p == pid => {
                return Some(std::process::ExitStatus::from_raw((code & 0xff) << 8));
            }
            Ok(WaitStatus::Signaled(p, sig, _)) if p == pid => {
                return Some(std::process::ExitStatus::from_raw(sig as i32));
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return None,
        }
    }
}

/// Copies a pipe to a file in the results share and to the console.
fn tee<R, W>(mut pipe: R, path: std::path::PathBuf, mut console: W, done: mpsc::Sender<()>)
where
    R: Read + Send + 'static,
    W: Write + Send + 'static,
{
    thread::spawn(move || {
        let mut file = File::create(&path).ok();
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if let Some(f) = file.as_mut() {
                        let _ = f.write_all(&buf[..n]);
                    }
                    let _ = console.write_all(&buf[..n]);
                    let _ = console.flush();
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        if let Some(f) = file {
            let _ = f.sync_all();
        }
        let _ = done.send(());
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devname_lines_become_nodes() {
        assert_eq!(
            parse_devname("loop loop-control c10:237"),
            Some(("loop-control", SFlag::S_IFCHR, makedev(10, 237)))
        );
        assert_eq!(
            parse_devname("dm_mod mapper/control c10:236"),
            Some(("mapper/control", SFlag::S_IFCHR, makedev(10, 236)))
        );
        assert_eq!(
            parse_devname("# Device nodes to trigger on-demand module loading."),
            None
        );
        assert_eq!(parse_devname("x y z1:2"), None);
        assert_eq!(parse_devname("x ../etc/passwd c1:1"), None);
    }
}
