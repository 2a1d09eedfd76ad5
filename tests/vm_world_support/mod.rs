//! Shared by the vm_world_* tests (and vm_boot's tool guard): boot a guest whose job is one ignored
//! test of the same binary, and the loud guards on both sides.

#![allow(dead_code)]

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use stackquake::vm::{self, Accel, GUEST_OUT_DIR, GuestJob, GuestOutcome};

/// Panics unless QEMU, a guest kernel and busybox are installed.
pub fn require_vm_tools() {
    assert!(
        stackquake::tools::which("qemu-system-x86_64").is_some(),
        "qemu-system-x86_64 not in PATH: apt-get install qemu-system-x86"
    );
    assert!(
        vm::GuestKernel::default_in(Path::new("/boot")).is_ok(),
        "no /boot/vmlinuz-* with /lib/modules: apt-get install linux-image-amd64"
    );
    assert!(
        Path::new("/usr/bin/busybox").is_file(),
        "/usr/bin/busybox missing: apt-get install busybox-static"
    );
}

/// Panics unless running as a guest's job (the guest sets STACKQUAKE_OUT).
pub fn require_guest() {
    assert!(
        std::env::var_os("STACKQUAKE_OUT").is_some() && std::process::id() != 1,
        "this test body runs only as a guest job; run the test that boots it"
    );
}

/// Boots a guest whose job is `inner` (an ignored test of this binary),
/// and returns the job's stdout. Panics with the console on any failure.
pub fn run_in_guest(inner: &str, timeout: Duration, memory_mib: u32) -> String {
    let out = tempfile::tempdir().unwrap();
    run_in_guest_at(inner, out.path(), &[], timeout, memory_mib, 1)
}

/// `run_in_guest`, keeping what the job wrote to GUEST_OUT_DIR in `out`
/// and passing it `env` besides OUT. `at_once` is how many guests the
/// test boots at the same time: each gets its share of the host's cores
/// as vCPUs (`vm::guest_cpus`), as a fanned-out `run --vm` does.
pub fn run_in_guest_at(
    inner: &str,
    out: &Path,
    env: &[(&str, OsString)],
    timeout: Duration,
    memory_mib: u32,
    at_once: u32,
) -> String {
    let exe = std::env::current_exe().unwrap();
    let args = |first: &str| -> Vec<OsString> {
        [
            exe.as_os_str(),
            first.as_ref(),
            "--exact".as_ref(),
            "--ignored".as_ref(),
            "--nocapture".as_ref(),
            "--test-threads=1".as_ref(),
        ]
        .iter()
        .map(|s| s.to_os_string())
        .collect()
    };
    let job = GuestJob {
        argv: args(inner),
        env: std::iter::once(("OUT".into(), GUEST_OUT_DIR.into()))
            .chain(env.iter().map(|(k, v)| (k.into(), v.clone())))
            .collect(),
        cwd: "/".into(),
        timeout,
        kernel: None,
        accel: Accel::Auto,
        memory_mib,
        cpus: stackquake::vm::guest_cpus(at_once),
        out_dir: out.to_path_buf(),
    };
    let outcome = vm::run_with_guest_command(&job, &args("guest_entry")).unwrap();
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap_or_default();
    let (stdout, stderr, console) = (
        read(vm::STDOUT_FILE),
        read(vm::STDERR_FILE),
        read(vm::CONSOLE_FILE),
    );
    assert!(
        matches!(outcome, GuestOutcome::Exited { code: 0, .. }),
        "{outcome:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- console\n{console}"
    );
    eprintln!("--- guest stdout\n{stdout}");
    stdout
}

/// The guest's PID 1 (must be in each vm_world_* binary).
pub fn guest_init() {
    assert_eq!(
        std::process::id(),
        1,
        "guest_entry runs only as a guest's init"
    );
    vm::guest_init();
}
