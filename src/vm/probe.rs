//! Choosing KVM or TCG. KVM with a stock Debian kernel hangs at boot on the
//! dev machines (nested PVM), so `Accel::Auto` boots the kernel once under
//! KVM, waits a few seconds for its first console line, and caches the
//! answer per kernel + qemu + host kernel.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use super::VmError;
use super::cache::ContentHash;
use super::kernel::GuestKernel;
use super::qemu::{Accel, QemuArgs, VmConfig};
use super::qemu_process::QemuProcess;

/// A KVM guest prints "Linux version" within well under a second; the
/// nested-PVM hang prints nothing, ever.
const PROBE_TIMEOUT: Duration = Duration::from_secs(4);

/// Turns Auto into Kvm or Tcg; Kvm is refused early when /dev/kvm is unusable.
pub fn resolve(
    accel: Accel,
    qemu: &Path,
    kernel: &GuestKernel,
    cache: &Path,
) -> Result<Accel, VmError> {
    match accel {
        Accel::Tcg => Ok(Accel::Tcg),
        Accel::Kvm if kvm_openable() => Ok(Accel::Kvm),
        Accel::Kvm => Err(VmError::KvmUnavailable),
        Accel::Auto if !kvm_openable() => Ok(Accel::Tcg),
        Accel::Auto => {
            let path = cache.join(format!("kvm-probe-{}", probe_key(qemu, kernel)));
            match fs::read_to_string(&path).ok().as_deref().map(str::trim) {
                Some("kvm") => return Ok(Accel::Kvm),
                Some("tcg") => return Ok(Accel::Tcg),
                _ => {}
            }
            let accel = if kvm_boots(qemu, kernel)? {
                Accel::Kvm
            } else {
                Accel::Tcg
            };
            tracing::info!(?accel, cached = %path.display(), "kvm probe");
            let word = if accel == Accel::Kvm { "kvm" } else { "tcg" };
            let _ = fs::create_dir_all(cache).and_then(|()| fs::write(&path, word));
            Ok(accel)
        }
    }
}

fn kvm_openable() -> bool {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

/// Identity of the things that decide whether KVM boots: both binaries
/// (path, size, mtime) and the host kernel release.
fn probe_key(qemu: &Path, kernel: &GuestKernel) -> String {
    let mut h = ContentHash::default();
    for p in [qemu, kernel.image.as_path()] {
        h.update(p.as_os_str().as_encoded_bytes());
        if let Ok(m) = fs::metadata(p) {
            h.update(&m.len().to_le_bytes())
                .update(&m.mtime().to_le_bytes());
        }
    }
    let release = fs::read("/proc/sys/kernel/osrelease").unwrap_or_default();
    h.update(&release);
    h.hex()
}

/// Boots the bare kernel (no initramfs: it would panic later, we never
/// wait that long) under KVM and watches for its banner.
fn kvm_boots(qemu: &Path, kernel: &GuestKernel) -> Result<bool, VmError> {
    let cfg = VmConfig {
        kernel: kernel.image.clone(),
        initramfs: None,
        memory_mib: 256,
        cpus: 1,
        accel: Accel::Kvm,
        shares: vec![],
        kernel_cmdline_extra: vec!["earlyprintk=ttyS0".into(), "loglevel=8".into()],
        console_log: None,
        tsc_khz: None,
        init_args: vec![],
    };
    let mut vm = QemuProcess::spawn(qemu, &QemuArgs::build(&cfg), true, None)?;
    let deadline = Instant::now() + PROBE_TIMEOUT;
    while Instant::now() < deadline {
        if let Some(line) = vm.next_line(Duration::from_millis(50)) {
            if line.contains("Linux version") {
                vm.kill();
                return Ok(true);
            }
        } else if vm.try_wait()?.is_some() {
            return Ok(false);
        }
    }
    vm.kill();
    Ok(false)
}

/// The host TSC frequency in kHz, from /proc/cpuinfo. Under TCG the guest's
/// TSC is the host's, so this is the right value for tsc_early_khz.
pub fn host_tsc_khz() -> Option<u64> {
    let text = fs::read_to_string("/proc/cpuinfo").ok()?;
    parse_cpu_mhz(&text)
}

fn parse_cpu_mhz(cpuinfo: &str) -> Option<u64> {
    let line = cpuinfo.lines().find(|l| l.starts_with("cpu MHz"))?;
    let mhz: f64 = line.split(':').nth(1)?.trim().parse().ok()?;
    (mhz > 0.0).then(|| (mhz * 1000.0).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_mhz_becomes_khz() {
        let text = "processor\t: 0\nmodel name\t: X\ncpu MHz\t\t: 2596.142\ncache size\t: 1 KB\n";
        assert_eq!(parse_cpu_mhz(text), Some(2_596_142));
        assert_eq!(parse_cpu_mhz("processor\t: 0\n"), None);
        assert_eq!(parse_cpu_mhz("cpu MHz\t: 0.000\n"), None);
    }
}
