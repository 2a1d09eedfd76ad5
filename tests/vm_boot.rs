//! Real QEMU boots through `stackquake::vm`: a job's exit code and files come
//! back, a job past its timeout is killed, and QEMU dies with its parent.
//! Not root-dependent; fails loudly when qemu, a kernel or busybox is absent.

#[path = "vm_world_support/mod.rs"]
mod support;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use stackquake::vm::{self, Accel, GUEST_OUT_DIR, GuestJob, GuestOutcome};

/// One guest at a time: the dev machines have 2 cores and TCG is CPU-bound,
/// so parallel boots only make every deadline noisier.
static ONE_GUEST: Mutex<()> = Mutex::new(());

/// Env var that turns `host_entry` into a stackquake stand-in for the
/// kill-safety test.
const HOST_ENTRY_OUT: &str = "SQ_VM_TEST_HOST_ENTRY_OUT";

/// The guest's init is this very test binary, running `guest_entry`.
fn guest_command() -> Vec<OsString> {
    let exe = std::env::current_exe().unwrap();
    [
        exe.as_os_str(),
        "guest_entry".as_ref(),
        "--exact".as_ref(),
        "--ignored".as_ref(),
        "--nocapture".as_ref(),
        "--test-threads=1".as_ref(),
    ]
    .iter()
    .map(|s| s.to_os_string())
    .collect()
}

fn job(argv: &[&str], out_dir: &Path, timeout: Duration) -> GuestJob {
    GuestJob {
        argv: argv.iter().map(OsString::from).collect(),
        env: vec![("OUT".into(), GUEST_OUT_DIR.into())],
        cwd: "/".into(),
        timeout,
        kernel: None,
        accel: Accel::Auto,
        memory_mib: 512,
        cpus: stackquake::vm::guest_cpus(1),
        out_dir: out_dir.to_path_buf(),
    }
}

/// QEMU processes whose command line mentions `needle` (the out dir).
fn qemus_mentioning(needle: &Path) -> Vec<u32> {
    let needle = needle.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            cmd.starts_with(
                "qemu-system-x86_64", // argv[0] may be a full path
            ) || cmd.contains("/qemu-system-x86_64\0")
        })
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            String::from_utf8_lossy(&cmd).contains(&needle)
        })
        .collect()
}

#[test]
#[ignore = "entry point for the guest's PID 1; vm_boot tests run it inside QEMU"]
fn guest_entry() {
    // Mounting over /proc on a host would be a disaster: only as PID 1.
    assert_eq!(
        std::process::id(),
        1,
        "guest_entry runs only as a guest's init"
    );
    vm::guest_init();
}

#[test]
#[ignore = "stand-in for a stackquake process; guest_dies_with_its_host starts it"]
fn host_entry() {
    let out: PathBuf = std::env::var_os(HOST_ENTRY_OUT)
        .expect("host_entry is started by guest_dies_with_its_host")
        .into();
    let j = job(&["/bin/sleep", "300"], &out, Duration::from_secs(300));
    let _ = vm::run_with_guest_command(&j, &guest_command());
}

#[test]
fn job_exit_code_files_and_modprobe_come_back() {
    support::require_vm_tools();
    let _one = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let j = job(
        &[
            "/bin/sh",
            "-c",
            "modprobe xfs && grep -q xfs /proc/filesystems && echo hi > $OUT/file; \
             echo on-stdout; echo on-stderr >&2; exit 7",
        ],
        out.path(),
        Duration::from_secs(60),
    );
    let outcome = vm::run_with_guest_command(&j, &guest_command()).unwrap();
    let console = std::fs::read_to_string(out.path().join(vm::CONSOLE_FILE)).unwrap_or_default();
    let GuestOutcome::Exited {
        code,
        boot_time,
        total,
        job: job_time,
        clock,
        ..
    } = outcome
    else {
        panic!("expected Exited, got {outcome:?}\nconsole:\n{console}");
    };
    assert_eq!(code, 7, "console:\n{console}");
    // The guest's start-up on its clock: the kernel's "Run /init" record
    // (read from the ring buffer, not the quiet console), then guest-init,
    // then the job, all inside QEMU's lifetime.
    let init = clock
        .kernel_ran_init_ms
        .expect("the kernel's Run /init record");
    assert!(
        0 < init && init < clock.guest_init_ms && clock.guest_init_ms <= clock.job_ms,
        "{clock:?}"
    );
    assert!(
        Duration::from_millis(clock.job_ms) + job_time < total,
        "{clock:?} {job_time:?} {total:?}"
    );
    assert_eq!(
        std::fs::read_to_string(out.path().join("file")).unwrap(),
        "hi\n",
        "modprobe xfs or the rw share failed; console:\n{console}"
    );
    let read = |name| std::fs::read_to_string(out.path().join(name)).unwrap();
    assert_eq!(read(vm::STDOUT_FILE), "on-stdout\n");
    assert_eq!(read(vm::STDERR_FILE), "on-stderr\n");
    assert!(
        console.contains("on-stdout"),
        "job output echoed on the console"
    );
    assert!(boot_time < total, "{boot_time:?} vs {total:?}");
    eprintln!("boot {boot_time:?}, total {total:?}");
}

#[test]
fn job_past_its_timeout_is_killed_with_its_guest() {
    support::require_vm_tools();
    let _one = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let timeout = Duration::from_secs(3);
    let j = job(&["/bin/sleep", "300"], out.path(), timeout);
    let start = Instant::now();
    let outcome = vm::run_with_guest_command(&j, &guest_command()).unwrap();
    let elapsed = start.elapsed();
    let console = std::fs::read_to_string(out.path().join(vm::CONSOLE_FILE)).unwrap_or_default();
    assert!(
        matches!(outcome, GuestOutcome::TimedOut { .. }),
        "expected TimedOut, got {outcome:?}\nconsole:\n{console}"
    );
    // Boot (a few s under TCG) + 3 s + 5 s grace: far below sleep's 300 s.
    assert!(elapsed < Duration::from_secs(40), "took {elapsed:?}");
    assert!(
        console.contains("stackquake-guest: userspace up"),
        "{console}"
    );
    assert_eq!(
        qemus_mentioning(out.path()),
        Vec::<u32>::new(),
        "qemu survived"
    );
}

#[test]
fn guest_dies_with_its_host() {
    support::require_vm_tools();
    let _one = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let mut host = Command::new(std::env::current_exe().unwrap())
        .args(["host_entry", "--exact", "--ignored", "--nocapture"])
        .env(HOST_ENTRY_OUT, out.path())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while qemus_mentioning(out.path()).is_empty() {
        assert!(Instant::now() < deadline, "qemu never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    host.kill().unwrap(); // SIGKILL: no destructor, no cleanup code runs
    host.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !qemus_mentioning(out.path()).is_empty() {
        assert!(Instant::now() < deadline, "qemu outlived its parent by 5 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What scenarios build inside the guest: XFS on a loop device on tmpfs,
/// an nftables table, a veth pair, and the NFS client modules.
#[test]
fn guest_has_what_scenarios_need() {
    support::require_vm_tools();
    let _one = ONE_GUEST.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let script = "set -e; \
        truncate -s 320M /tmp/img; mkfs.xfs -q /tmp/img; mkdir /mnt/x; \
        mount -o loop /tmp/img /mnt/x; echo data > /mnt/x/f; umount /mnt/x; echo xfs-ok; \
        nft add table inet sqtest; nft list tables | grep -q sqtest; echo nft-ok; \
        ip link add sqa type veth peer name sqb; ip link show sqb >/dev/null; echo veth-ok; \
        modprobe nfsv3; modprobe nfsv4; grep -qw nfs /proc/filesystems; echo nfs-ok; \
        echo cpus-$(grep -c ^processor /proc/cpuinfo); \
        if grep -qw erms /proc/cpuinfo; then echo erms; else echo no-erms; fi; \
        cat /sys/devices/system/clocksource/clocksource0/current_clocksource";
    let mut j = job(
        &["/bin/sh", "-c", script],
        out.path(),
        Duration::from_secs(120),
    );
    j.memory_mib = 1024;
    // One vCPU, as each of several guests sharing the cores gets; under
    // TCG, whose CPU leaves out ERMS (rep movsb a byte at a time), and
    // timekeeping on the TSC.
    j.cpus = 1;
    j.accel = Accel::Tcg;
    let outcome = vm::run_with_guest_command(&j, &guest_command()).unwrap();
    let console = std::fs::read_to_string(out.path().join(vm::CONSOLE_FILE)).unwrap_or_default();
    assert!(
        matches!(outcome, GuestOutcome::Exited { code: 0, .. }),
        "{outcome:?}\nconsole:\n{console}"
    );
    let stdout = std::fs::read_to_string(out.path().join(vm::STDOUT_FILE)).unwrap();
    assert_eq!(
        stdout, "xfs-ok\nnft-ok\nveth-ok\nnfs-ok\ncpus-1\nno-erms\ntsc\n",
        "console:\n{console}"
    );
}
