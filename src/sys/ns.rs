//! Network namespaces: create one pinned by a bind mount the way `ip netns add`
//! does, enter one (setns), delete one, and start a child inside one.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};

/// Where iproute2 keeps named namespaces; `ip netns` lists this directory.
pub const NETNS_RUN_DIR: &str = "/run/netns";

pub fn netns_path(name: &str) -> PathBuf {
    Path::new(NETNS_RUN_DIR).join(name)
}

/// Creates a new network namespace pinned at /run/netns/<name>.
///
/// The unshare happens on a dedicated OS thread that exits afterwards, so no
/// thread of ours ever lingers in the new namespace; the bind mount of
/// /proc/thread-self/ns/net keeps the namespace alive, exactly what iproute2
/// (ip/ipnetns.c netns_add) does, so `ip netns`, `ip -n` and `ip netns exec`
/// all see it.
pub fn create_netns(name: &str) -> io::Result<PathBuf> {
    prepare_run_dir()?;
    let path = netns_path(name);
    // create_new: an existing name belongs to someone else (or to a leak the
    // ledger will report); never adopt it.
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    let target = path.clone();
    let result = std::thread::spawn(move || -> io::Result<()> {
        unshare(CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            Some("none"),
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(io::Error::from)
    })
    .join()
    .unwrap_or_else(|_| Err(io::Error::other("netns creation thread panicked")));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    Ok(path)
}

/// /run/netns must be a shared mount so that a namespace pinned here is
/// visible from other mount namespaces (iproute2 does the same dance:
/// make it shared, and if it is not a mount point yet, bind it onto itself).
fn prepare_run_dir() -> io::Result<()> {
    std::fs::create_dir_all(NETNS_RUN_DIR)?;
    let shared = |()| {
        mount(
            Some(""),
            NETNS_RUN_DIR,
            Some("none"),
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match shared(()) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EINVAL) => {
            mount(
                Some(NETNS_RUN_DIR),
                NETNS_RUN_DIR,
                Some("none"),
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(io::Error::from)?;
            shared(()).map_err(io::Error::from)
        }
        Err(e) => Err(e.into()),
    }
}

/// Removes a namespace pinned at `path`: lazy umount (a process may still sit
/// in it; the namespace dies with its last user) and unlink. Missing is fine.
pub fn delete_netns(path: &Path) -> io::Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(e.into()),
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

pub fn open_netns(path: &Path) -> io::Result<File> {
    File::open(path)
}

/// Moves the calling thread into the network namespace `ns`. Only call this
/// on a thread that was started for the purpose (see `net::Netns::run`).
pub fn enter_netns(ns: impl AsFd) -> io::Result<()> {
    setns(ns, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)
}

/// Makes `cmd` enter the namespace `ns` in the child, after fork and before
/// exec. The fd is owned by the closure (so it lives as long as `cmd`) and is
/// close-on-exec, so the program never inherits it.
pub fn command_in_netns(cmd: &mut Command, ns: OwnedFd) {
    // SAFETY: the closure runs in the forked child before exec, where only
    // async-signal-safe work is allowed: setns(2) is a single syscall and
    // the error conversion allocates nothing (io::Error::from_raw_os_error).
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(std::os::fd::AsRawFd::as_raw_fd(&ns), libc::CLONE_NEWNET) != 0 {
                return Err(io::Error::from_raw_os_error(*libc::__errno_location()));
            }
            Ok(())
        });
    }
}

/// Makes spawning `cmd` fail with `errno` before exec: the fallback when the
/// namespace cannot be handed to the child, so it never runs in the wrong one.
pub fn command_fail_before_exec(cmd: &mut Command, errno: i32) {
    // SAFETY: the closure only builds an io::Error from an integer, which
    // neither allocates nor takes locks, so it is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || Err(io::Error::from_raw_os_error(errno)));
    }
}
