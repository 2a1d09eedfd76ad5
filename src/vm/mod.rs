//! QEMU guests: argv builder, initramfs builder, KVM probe, boot and watchdog.
//!
//! `run` boots a throwaway microvm guest with a host kernel, shares the
//! host's / read-only over virtio-9p (so the same binaries run inside) and
//! `out_dir` read-write at [`GUEST_OUT_DIR`], runs one job there under
//! `stackquake vm guest-init` ([`guest_init`]) and brings back how it ended.

mod cache;
mod cpio;
mod guest;
mod initramfs;
mod job;
mod kernel;
mod moddep;
mod priority;
mod probe;
mod qemu;
mod qemu_process;
mod runner;
mod vmlinux;

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

pub use cpio::{Entry, EntryKind, NewcArchive, parse as parse_cpio};
pub use guest::guest_init;
pub use job::{
    CONSOLE_FILE, EXIT_FILE, ExitFile, GuestClock, JOB_FILE, RELAY_PREFIX, STAGE_PREFIX,
    STDERR_FILE, STDOUT_FILE,
};
pub use kernel::GuestKernel;
pub use qemu::{Accel, QemuArgs, Share, VmConfig};
pub use runner::run_with_guest_command;

/// Where the job sees the host's `out_dir` inside the guest (read-write
/// 9p). The job also gets it as $STACKQUAKE_OUT.
pub const GUEST_OUT_DIR: &str = "/run/stackquake-out";

/// One command to run in a fresh guest.
#[derive(Debug, Clone)]
pub struct GuestJob {
    /// Absolute program path + args, resolved in the guest (= host's /).
    pub argv: Vec<OsString>,
    /// Added to PATH=<host default> and STACKQUAKE_OUT=GUEST_OUT_DIR.
    pub env: Vec<(OsString, OsString)>,
    pub cwd: PathBuf,
    /// From the moment the guest's userspace is up; QEMU is SIGKILLed after
    /// it (plus a few seconds to power off).
    pub timeout: Duration,
    /// An image path or a series ("6.12"); None = the newest 6.1
    /// (`kernel::DEFAULT_SERIES`). Either must have /lib/modules/<version>.
    pub kernel: Option<PathBuf>,
    pub accel: Accel,
    pub memory_mib: u32,
    /// vCPUs; [`guest_cpus`] says how many for a number of guests at once.
    pub cpus: u32,
    /// Host directory shared read-write; holds the job's files plus
    /// guest-job.json, guest-stdout.log, guest-stderr.log, guest-exit.json
    /// and console.log.
    pub out_dir: PathBuf,
}

/// How a guest run ended. `console` is the full serial log (kernel +
/// guest-init + job output), kept in every case for post-mortems.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestOutcome {
    Exited {
        code: i32,
        console: PathBuf,
        /// QEMU start until guest-init printed its first line.
        boot_time: Duration,
        /// QEMU start until QEMU exited.
        total: Duration,
        /// How long the job ran in the guest.
        job: Duration,
        /// The guest's start-up on its own clock.
        clock: GuestClock,
    },
    /// The job outlived its timeout; QEMU was killed.
    TimedOut { console: PathBuf },
    /// We were told to stop (SIGINT, SIGTERM) and the guest did not finish
    /// within the grace it then gets, or had not booted yet; QEMU was killed.
    Interrupted { console: PathBuf },
    /// The guest never ran the job to completion: boot hang, panic, a
    /// missing mount, or guest-init failing; `reason` says which.
    BootFailed { reason: String, console: PathBuf },
}

/// vCPUs for each of `guests` guests running at once: together as many as
/// the host has cores, each at least one and at most two. Under TCG a
/// second vCPU helps a guest only while a core would otherwise idle: with
/// the cores already shared among guests it cost a quarter more host CPU
/// for the same scenarios (MTTCG's cross-vCPU interrupts and TLB flushes;
/// bench/README.md, "Guest vCPUs").
pub fn guest_cpus(guests: u32) -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    cpus_for(cores, guests)
}

fn cpus_for(cores: u32, guests: u32) -> u32 {
    (cores / guests.max(1)).clamp(1, 2)
}

/// Boots a guest and runs `job` in it, with this executable as the guest's
/// init (`<current_exe> vm guest-init`).
pub fn run(job: &GuestJob) -> Result<GuestOutcome, VmError> {
    let exe = std::env::current_exe().map_err(|source| VmError::CurrentExe { source })?;
    run_with_guest_command(
        job,
        &[exe.into_os_string(), "vm".into(), "guest-init".into()],
    )
}

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("qemu-system-x86_64 not found in PATH: apt-get install qemu-system-x86")]
    QemuMissing,
    #[error(
        "no kernel image{} with modules under {dir}: apt-get install linux-image-amd64 or pass --kernel",
        series.as_ref().map(|s| format!(" of series {s}")).unwrap_or_default()
    )]
    NoKernel {
        dir: PathBuf,
        series: Option<String>,
    },
    #[error(
        "kernel image {path} does not exist: apt-get install linux-image-amd64 or pass another --kernel"
    )]
    KernelMissing { path: PathBuf },
    #[error(
        "cannot tell the version of kernel {path}: name it vmlinuz-<version> to match /lib/modules/<version>"
    )]
    KernelVersionUnknown { path: PathBuf },
    #[error("kernel {kernel} has no modules in {dir}: install the matching linux-image package")]
    ModulesMissing { kernel: PathBuf, dir: PathBuf },
    #[error(
        "module {module} is neither in {dir}/modules.dep nor built in (modules.builtin): the guest needs it to mount the host root over 9p"
    )]
    ModuleMissing { module: String, dir: PathBuf },
    #[error(transparent)]
    BootModule(#[from] moddep::ModuleReadError),
    #[error("busybox not found at {path}: apt-get install busybox-static")]
    BusyboxMissing { path: PathBuf },
    #[error("kvm requested but /dev/kvm cannot be opened: use --accel tcg or auto")]
    KvmUnavailable,
    #[error("cache {path}")]
    Cache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("output directory {path}")]
    OutDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} {path:?} cannot be passed on the kernel command line: {reason}")]
    BadGuestArg {
        what: &'static str,
        path: OsString,
        reason: &'static str,
    },
    #[error("job argv is empty or its program {program:?} is not an absolute path")]
    BadArgv { program: OsString },
    #[error("starting {command}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("waiting for qemu")]
    Wait {
        #[source]
        source: std::io::Error,
    },
    #[error("locating the running executable")]
    CurrentExe {
        #[source]
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::cpus_for;

    #[test]
    fn guests_share_the_cores_one_vcpu_at_least_two_at_most() {
        assert_eq!(cpus_for(2, 1), 2, "a lone guest gets both cores");
        assert_eq!(cpus_for(2, 6), 1);
        assert_eq!(cpus_for(64, 1), 2);
        assert_eq!(cpus_for(64, 16), 2);
        assert_eq!(cpus_for(64, 48), 1);
        assert_eq!(cpus_for(1, 0), 1);
    }
}
