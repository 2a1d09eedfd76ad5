//! Shared by the root_nfs_*kernel tests: a hand-built busybox initramfs that
//! boots the guest kernel with this test binary inside, and the loud guard.
//! (These tests predate `stackquake::vm`; moving them onto it is planned.)
//! Also the QEMU boot, console capture and step checks both tests share.

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The kernel NFSv3 client's modules, in insmod order (the initramfs has
/// no modprobe database).
pub const NFS_CLIENT_MODULES: &[&str] = &[
    "net/sunrpc/sunrpc.ko",
    "fs/nfs_common/grace.ko",
    "fs/lockd/lockd.ko",
    "fs/nfs_common/nfs_acl.ko",
    "fs/netfs/netfs.ko",
    "fs/fscache/fscache.ko",
    "fs/nfs/nfs.ko",
    "fs/nfs/nfsv3.ko",
];

/// How the guest is booted.
pub struct Boot<'a> {
    pub kver: &'a str,
    pub initrd: &'a Path,
    pub memory_mb: u32,
    /// The kernel's console loglevel: 5 shows lockd's notices.
    pub loglevel: u8,
    /// QEMU is killed after this long.
    pub timeout: Duration,
}

/// Boots the guest under TCG (a stock kernel hangs under this machine's
/// nested KVM) with no network device, waits for it to power off or time
/// out, and returns its console (also echoed to stderr).
pub fn boot(b: &Boot) -> String {
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-m", &b.memory_mb.to_string()])
        .args(["-smp", "1", "-nographic", "-no-reboot"])
        .args([
            "-nic",
            "none",
            "-kernel",
            &format!("/boot/vmlinuz-{}", b.kver),
        ])
        .arg("-initrd")
        .arg(b.initrd)
        .arg("-append")
        .arg(format!(
            "console=ttyS0 panic=-1 loglevel={} rdinit=/init",
            b.loglevel
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting qemu");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stdout.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let deadline = Instant::now() + b.timeout;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let console = reader.join().unwrap();
    eprintln!("{console}");
    console
}

/// The guest script ran to its end (`SQ-DONE`), no step printed `SQ-FAIL`,
/// and each of `steps` printed `SQ-OK <step>`.
pub fn assert_steps_ok(console: &str, steps: &[&str]) {
    assert!(
        console.contains("SQ-DONE"),
        "guest did not finish the script"
    );
    assert!(!console.contains("SQ-FAIL"), "a guest step failed");
    for step in steps {
        assert!(
            console.contains(&format!("SQ-OK {step}")),
            "step {step} not ok"
        );
    }
}

/// Panics unless we are root and every tool is on PATH; `hint` names the
/// Debian packages that provide them.
pub fn require_root_and_tools(tools: &[&str], hint: &str) {
    assert!(nix::unistd::geteuid().is_root(), "this test needs root");
    for tool in tools {
        let ok = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "{tool} missing (Debian: {hint})");
    }
}

/// The guest kernel: Debian's 6.1 (linux-image-amd64), whatever its ABI number.
pub fn guest_kernel_version() -> String {
    let mut found: Vec<String> = std::fs::read_dir("/lib/modules")
        .expect("/lib/modules missing (Debian: linux-image-amd64)")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|v| v.starts_with("6.1.") && Path::new(&format!("/boot/vmlinuz-{v}")).exists())
        .collect();
    found.sort();
    found
        .pop()
        .expect("no 6.1 kernel with modules in /boot (Debian: linux-image-amd64)")
}

pub fn which(tool: &str) -> PathBuf {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .unwrap();
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// Copies a dynamically linked program and the libraries ldd lists.
pub fn copy_with_libs(root: &Path, prog: &Path, dest: &str) {
    std::fs::copy(prog, root.join(dest)).unwrap();
    let out = Command::new("ldd").arg(prog).output().unwrap();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let lib = line
            .split_whitespace()
            .find(|w| w.starts_with('/'))
            .map(PathBuf::from);
        if let Some(lib) = lib {
            let target = root.join(lib.strip_prefix("/").unwrap());
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::copy(&lib, &target).unwrap();
        }
    }
}

/// A busybox initramfs with `modules` (insmod order, listed in
/// /modules.list), the dynamically linked `programs` (host tool, path in the
/// initramfs) with their libraries, this test binary as /bin/sqtest, and
/// `script` as /init.
pub fn build_initramfs(
    work: &Path,
    kver: &str,
    modules: &[&str],
    programs: &[(&str, &str)],
    script: &str,
) -> PathBuf {
    let root = work.join("root");
    for d in [
        "bin",
        "modules",
        "proc",
        "sys",
        "dev",
        "tmp",
        "lib64",
        "lib/x86_64-linux-gnu",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy(which("busybox"), root.join("bin/busybox")).unwrap();
    for (tool, dest) in programs {
        copy_with_libs(&root, &which(tool), dest);
    }
    copy_with_libs(&root, &std::env::current_exe().unwrap(), "bin/sqtest");
    let mut list = String::new();
    for m in modules {
        let src = Path::new("/lib/modules").join(kver).join("kernel").join(m);
        let name = Path::new(m).file_name().unwrap();
        std::fs::copy(&src, root.join("modules").join(name))
            .unwrap_or_else(|e| panic!("copying {}: {e}", src.display()));
        list.push_str(&format!("{}\n", name.to_string_lossy()));
    }
    std::fs::write(root.join("modules.list"), list).unwrap();
    std::fs::write(root.join("init"), script).unwrap();
    let status = Command::new("sh")
        .arg("-c")
        .arg("chmod 755 init bin/* && find . | cpio -o -H newc --quiet > ../initramfs.cpio")
        .current_dir(&root)
        .status()
        .unwrap();
    assert!(status.success(), "cpio failed");
    work.join("initramfs.cpio")
}
