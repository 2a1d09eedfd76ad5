//! The QEMU command line, built by pure functions from a `VmConfig` so every
//! flag is unit-tested (the vmtest approach) and nothing depends on the host.

use std::ffi::OsString;
use std::path::PathBuf;

/// How the guest CPU is executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Accel {
    /// Probe KVM once per kernel+qemu (cached) and fall back to TCG.
    #[default]
    Auto,
    Kvm,
    Tcg,
}

/// A host directory exported to the guest over virtio-9p.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub tag: String,
    pub host_path: PathBuf,
    pub readonly: bool,
}

/// Everything that decides the QEMU argv. `accel` must be resolved (Kvm or
/// Tcg) before building; Auto is treated as Tcg, the choice that never hangs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmConfig {
    pub kernel: PathBuf,
    pub initramfs: Option<PathBuf>,
    pub memory_mib: u32,
    pub cpus: u32,
    pub accel: Accel,
    pub shares: Vec<Share>,
    pub kernel_cmdline_extra: Vec<String>,
    /// QEMU itself copies the serial console here, so it survives even if
    /// the reader of stdout is gone.
    pub console_log: Option<PathBuf>,
    /// TSC frequency handed to the guest under TCG (see `kernel_cmdline`).
    pub tsc_khz: Option<u64>,
    /// Arguments for the initramfs /init, after the kernel's "--".
    pub init_args: Vec<String>,
}

/// The CPU TCG emulates: everything it can, but without ERMS and FSRM.
/// With them the guest kernel and glibc copy and clear memory with
/// `rep movsb`/`stosb`, which TCG runs a byte per iteration: a guest
/// wrote tmpfs at 72-89 MB/s with them and 249-315 MB/s without, and 15
/// seed cases took 19 % less host CPU (bench/README.md).
const TCG_CPU: &str = "max,-erms,-fsrm";

/// The argv of one QEMU invocation (program excluded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuArgs(pub Vec<OsString>);

/// 9p message size: the 6.1 virtio transport caps at 512000 (it logs
/// "Limiting msize" and clamps anything bigger); bigger
/// messages mean fewer round trips when the guest execs host binaries.
pub const NINEP_MSIZE: u32 = 512_000;

impl QemuArgs {
    pub fn build(cfg: &VmConfig) -> Self {
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |items: &[&str]| a.extend(items.iter().map(OsString::from));
        // microvm: no PCI, no firmware tables to walk, virtio-mmio devices
        // announced by ACPI; boots about a second sooner than `-M pc`.
        push(&["-M", "microvm", "-accel", accel_name(cfg.accel)]);
        push(&[
            "-cpu",
            if cfg.accel == Accel::Kvm {
                "host"
            } else {
                TCG_CPU
            },
        ]);
        push(&["-m", &cfg.memory_mib.to_string()]);
        push(&["-smp", &cfg.cpus.to_string()]);
        // No default NIC, VGA, monitor or config file: nothing to probe.
        push(&["-nodefaults", "-no-user-config", "-display", "none"]);
        // A guest reboot or panic (panic=-1) ends QEMU instead of looping.
        push(&["-no-reboot"]);
        let chardev = match &cfg.console_log {
            Some(log) => {
                let mut s = OsString::from("stdio,id=console,signal=off,logfile=");
                s.push(escape_opt(log.as_os_str()));
                s
            }
            None => OsString::from("stdio,id=console,signal=off"),
        };
        a.push("-chardev".into());
        a.push(chardev);
        a.push("-serial".into());
        a.push("chardev:console".into());
        a.push("-kernel".into());
        a.push(cfg.kernel.clone().into_os_string());
        if let Some(initrd) = &cfg.initramfs {
            a.push("-initrd".into());
            a.push(initrd.clone().into_os_string());
        }
        a.push("-append".into());
        a.push(kernel_cmdline(cfg).into());
        for (i, share) in cfg.shares.iter().enumerate() {
            // multidevs=remap: the host root spans several filesystems;
            // without it inode numbers collide in the guest.
            let mut fsdev = OsString::from(format!("local,id=fs{i},path="));
            fsdev.push(escape_opt(share.host_path.as_os_str()));
            fsdev.push(",security_model=none,multidevs=remap");
            if share.readonly {
                fsdev.push(",readonly=on");
            }
            a.push("-fsdev".into());
            a.push(fsdev);
            a.push("-device".into());
            a.push(format!("virtio-9p-device,fsdev=fs{i},mount_tag={}", share.tag).into());
        }
        QemuArgs(a)
    }
}

fn accel_name(accel: Accel) -> &'static str {
    match accel {
        Accel::Kvm => "kvm",
        Accel::Tcg | Accel::Auto => "tcg",
    }
}

/// The kernel command line. Each choice was measured (bench/README.md):
/// `quiet` saves the time of printing ~250 lines through an emulated UART;
/// `tsc_early_khz` because under TCG the PIT-based TSC calibration fails
/// now and then on a loaded host and, microvm having no HPET/PM timer as a
/// fallback reference, the boot then hangs forever (1 boot in ~8);
/// `tsc=reliable` because TCG's TSC is one host clock for every vCPU, but
/// the kernel cannot know that of a CPU model without constant_tsc and
/// marks it unstable on a guest with two: timekeeping then falls back to
/// jiffies (4 ms steps in every timestamp) and the tick never stops;
/// `cryptomgr.notests` because the crypto algorithms' boot self-tests were
/// a fifth of the kernel's boot under TCG (`crypto_algapi_init` alone 226
/// ms of 1.6 s): they test the ciphers, not the storage stack.
pub fn kernel_cmdline(cfg: &VmConfig) -> String {
    let mut words: Vec<String> = [
        "console=ttyS0",
        "quiet",
        "panic=-1",
        "rdinit=/init",
        "cryptomgr.notests",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let (Some(khz), true) = (cfg.tsc_khz, cfg.accel != Accel::Kvm) {
        words.push(format!("tsc_early_khz={khz}"));
        words.push("tsc=reliable".into());
    }
    words.extend(cfg.kernel_cmdline_extra.iter().cloned());
    if !cfg.init_args.is_empty() {
        words.push("--".into());
        words.extend(cfg.init_args.iter().cloned());
    }
    words.join(" ")
}

/// QEMU option values are comma-separated; a literal comma is doubled.
fn escape_opt(value: &std::ffi::OsStr) -> OsString {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let mut out = Vec::with_capacity(value.len());
    for &b in value.as_bytes() {
        out.push(b);
        if b == b',' {
            out.push(b',');
        }
    }
    OsString::from_vec(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> VmConfig {
        VmConfig {
            kernel: "/boot/vmlinuz-6.1.0-56-amd64".into(),
            initramfs: Some("/var/cache/stackquake/initramfs-abc.cpio".into()),
            memory_mib: 1024,
            cpus: 2,
            accel: Accel::Tcg,
            shares: vec![
                Share {
                    tag: "sqroot".into(),
                    host_path: "/".into(),
                    readonly: true,
                },
                Share {
                    tag: "sqout".into(),
                    host_path: "/tmp/out,1".into(),
                    readonly: false,
                },
            ],
            kernel_cmdline_extra: vec!["loglevel=4".into()],
            console_log: Some("/tmp/out,1/console.log".into()),
            tsc_khz: Some(2_596_142),
            init_args: vec![
                "/usr/bin/stackquake".into(),
                "vm".into(),
                "guest-init".into(),
            ],
        }
    }

    #[test]
    fn tcg_argv_is_exact() {
        let args = QemuArgs::build(&config());
        let got: Vec<&str> = args.0.iter().map(|s| s.to_str().unwrap()).collect();
        assert_eq!(
            got,
            [
                "-M",
                "microvm",
                "-accel",
                "tcg",
                "-cpu",
                "max,-erms,-fsrm",
                "-m",
                "1024",
                "-smp",
                "2",
                "-nodefaults",
                "-no-user-config",
                "-display",
                "none",
                "-no-reboot",
                "-chardev",
                "stdio,id=console,signal=off,logfile=/tmp/out,,1/console.log",
                "-serial",
                "chardev:console",
                "-kernel",
                "/boot/vmlinuz-6.1.0-56-amd64",
                "-initrd",
                "/var/cache/stackquake/initramfs-abc.cpio",
                "-append",
                "console=ttyS0 quiet panic=-1 rdinit=/init cryptomgr.notests tsc_early_khz=2596142 tsc=reliable loglevel=4 \
                 -- /usr/bin/stackquake vm guest-init",
                "-fsdev",
                "local,id=fs0,path=/,security_model=none,multidevs=remap,readonly=on",
                "-device",
                "virtio-9p-device,fsdev=fs0,mount_tag=sqroot",
                "-fsdev",
                "local,id=fs1,path=/tmp/out,,1,security_model=none,multidevs=remap",
                "-device",
                "virtio-9p-device,fsdev=fs1,mount_tag=sqout",
            ]
        );
    }

    #[test]
    fn kvm_uses_host_cpu_and_trusts_its_own_tsc() {
        let cfg = VmConfig {
            accel: Accel::Kvm,
            ..config()
        };
        let args = QemuArgs::build(&cfg);
        let got: Vec<&str> = args.0.iter().map(|s| s.to_str().unwrap()).collect();
        assert_eq!(&got[2..6], ["-accel", "kvm", "-cpu", "host"]);
        assert!(!kernel_cmdline(&cfg).contains("tsc_early_khz"));
    }

    #[test]
    fn minimal_config_has_no_initrd_shares_or_init_args() {
        let cfg = VmConfig {
            initramfs: None,
            shares: vec![],
            console_log: None,
            init_args: vec![],
            kernel_cmdline_extra: vec![],
            tsc_khz: None,
            ..config()
        };
        let args = QemuArgs::build(&cfg);
        let got: Vec<&str> = args.0.iter().map(|s| s.to_str().unwrap()).collect();
        assert!(!got.contains(&"-initrd") && !got.contains(&"-fsdev"));
        assert!(got.contains(&"stdio,id=console,signal=off"));
        assert_eq!(
            kernel_cmdline(&cfg),
            "console=ttyS0 quiet panic=-1 rdinit=/init cryptomgr.notests"
        );
    }
}
