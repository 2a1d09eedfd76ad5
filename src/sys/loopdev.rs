//! Loop devices through /dev/loop-control and the loop ioctls (linux/loop.h).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

// linux/loop.h ioctl numbers ('L' = 0x4C).
const LOOP_SET_FD: libc::c_ulong = 0x4C00;
const LOOP_CLR_FD: libc::c_ulong = 0x4C01;
const LOOP_SET_STATUS64: libc::c_ulong = 0x4C04;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;

const LO_NAME_SIZE: usize = 64;
const LO_KEY_SIZE: usize = 32;

/// linux/loop.h `struct loop_info64`.
#[repr(C)]
#[derive(Clone, Copy)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; LO_NAME_SIZE],
    lo_crypt_name: [u8; LO_NAME_SIZE],
    lo_encrypt_key: [u8; LO_KEY_SIZE],
    lo_init: [u64; 2],
}

/// linux/loop.h `struct loop_config` (LOOP_CONFIGURE, Linux 5.8+).
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

const _: () = assert!(std::mem::size_of::<LoopInfo64>() == 232);
const _: () = assert!(std::mem::size_of::<LoopConfig>() == 304);

/// How many times a free device is re-requested when another process
/// attached it between LOOP_CTL_GET_FREE and our configure (EBUSY).
const RACE_RETRIES: u32 = 20;

/// Attaches `backing` (opened read-write) to a free loop device and returns
/// its number. LO_FLAGS_AUTOCLEAR stays off: the device must outlive our fd so
/// that the ledger, not the kernel, decides when it goes away; lo_file_name
/// carries the backing path so `losetup -l` shows it.
pub fn attach(backing: &Path) -> io::Result<u32> {
    let file = OpenOptions::new().read(true).write(true).open(backing)?;
    let control = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/loop-control")?;
    let mut info = zeroed_info();
    let name = backing.as_os_str().as_bytes();
    let n = name.len().min(LO_NAME_SIZE - 1);
    info.lo_file_name[..n].copy_from_slice(&name[..n]);

    let mut last = io::Error::from_raw_os_error(libc::EBUSY);
    for _ in 0..RACE_RETRIES {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device
        // number or -1; the fd is a valid open /dev/loop-control.
        let nr = unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE) };
        if nr < 0 {
            return Err(io::Error::last_os_error());
        }
        let nr = nr as u32;
        let dev = match OpenOptions::new()
            .read(true)
            .write(true)
            .open(device_path(nr))
        {
            Ok(d) => d,
            // udev may not have created the node yet, or it was removed.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                last = e;
                std::thread::sleep(std::time::Duration::from_millis(10));
                continue;
            }
            Err(e) => return Err(e),
        };
        match configure(&dev, &file, &info) {
            Ok(()) => return Ok(nr),
            // Another process won the race for this free device.
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                tracing::debug!(
                    device = nr,
                    "loop device taken by another process, retrying"
                );
                last = e;
            }
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

fn configure(dev: &File, backing: &File, info: &LoopInfo64) -> io::Result<()> {
    let config = LoopConfig {
        fd: backing.as_raw_fd() as u32,
        block_size: 0,
        info: *info,
        reserved: [0; 8],
    };
    // SAFETY: LOOP_CONFIGURE reads a `struct loop_config` from the pointer;
    // `config` is a live, correctly laid out (size-asserted) repr(C) value.
    let rc = unsafe {
        libc::ioctl(
            dev.as_raw_fd(),
            LOOP_CONFIGURE,
            &config as *const LoopConfig,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::EINVAL) {
        return Err(err);
    }
    // Kernels before 5.8 reject LOOP_CONFIGURE with EINVAL: take the
    // two-step path, which is not atomic but is the only one they offer.
    // SAFETY: LOOP_SET_FD takes the backing fd as its integer argument.
    let rc = unsafe {
        libc::ioctl(
            dev.as_raw_fd(),
            LOOP_SET_FD,
            backing.as_raw_fd() as libc::c_ulong,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: LOOP_SET_STATUS64 reads a `struct loop_info64` from the pointer.
    let rc = unsafe {
        libc::ioctl(
            dev.as_raw_fd(),
            LOOP_SET_STATUS64,
            info as *const LoopInfo64,
        )
    };
    if rc != 0 {
        let err = io::Error::last_os_error();
        let _ = clear(dev);
        return Err(err);
    }
    Ok(())
}

/// Detaches loop device `nr` (LOOP_CLR_FD). EBUSY means it is still held
/// (mounted, or opened exclusively); ENXIO means it was not attached.
pub fn detach(nr: u32) -> io::Result<()> {
    let dev = OpenOptions::new().read(true).open(device_path(nr))?;
    clear(&dev)
}

fn clear(dev: &File) -> io::Result<()> {
    // SAFETY: LOOP_CLR_FD takes no argument.
    let rc = unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CLR_FD, 0) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

pub fn device_path(nr: u32) -> PathBuf {
    PathBuf::from(format!("/dev/loop{nr}"))
}

/// Attached loop devices and their backing files, from
/// /sys/block/loopN/loop/backing_file (present only while attached).
pub fn attached() -> Vec<(u32, PathBuf)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/sys/block") else {
        return out;
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(nr) = name
            .to_str()
            .and_then(|n| n.strip_prefix("loop"))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(b) = backing_file(nr) {
            out.push((nr, b));
        }
    }
    out.sort();
    out
}

fn zeroed_info() -> LoopInfo64 {
    LoopInfo64 {
        lo_device: 0,
        lo_inode: 0,
        lo_rdevice: 0,
        lo_offset: 0,
        lo_sizelimit: 0,
        lo_number: 0,
        lo_encrypt_type: 0,
        lo_encrypt_key_size: 0,
        lo_flags: 0,
        lo_file_name: [0; LO_NAME_SIZE],
        lo_crypt_name: [0; LO_NAME_SIZE],
        lo_encrypt_key: [0; LO_KEY_SIZE],
        lo_init: [0; 2],
    }
}

/// Detaches `nr`, which must be backed by `backing`, and waits until the
/// kernel really let go. LOOP_CLR_FD on a device someone still holds open
/// does not fail: it sets LO_FLAGS_AUTOCLEAR and returns 0
/// (drivers/block/loop.c loop_clr_fd), so success is judged from sysfs. The
/// ioctl is issued once; re-issuing it could hit another process that
/// re-attached the freed device in the meantime. EBUSY is retried.
pub fn detach_patiently(nr: u32, backing: &Path, patience: std::time::Duration) -> io::Result<()> {
    let until = std::time::Instant::now() + patience;
    let mut issued = false;
    loop {
        let current = backing_file(nr);
        if current.as_deref() != Some(backing) {
            return Ok(());
        }
        if !issued {
            match detach(nr) {
                Ok(()) => {
                    issued = true;
                    // Usually immediate: look again before sleeping.
                    continue;
                }
                Err(e) if e.raw_os_error() == Some(libc::ENXIO) => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
                Err(e) => return Err(e),
            }
        }
        if std::time::Instant::now() >= until {
            let why = if issued {
                "still open, detach deferred until last close"
            } else {
                "busy"
            };
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                format!("loop{nr} still attached after {patience:?}: {why}"),
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The backing file of an attached device (None when detached). A deleted
/// backing file keeps its path with a " (deleted)" suffix, which is stripped.
pub fn backing_file(nr: u32) -> Option<PathBuf> {
    let s = std::fs::read_to_string(format!("/sys/block/loop{nr}/loop/backing_file")).ok()?;
    let s = s.trim_end_matches('\n');
    Some(PathBuf::from(s.strip_suffix(" (deleted)").unwrap_or(s)))
}
