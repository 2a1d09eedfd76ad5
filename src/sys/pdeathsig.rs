//! Tying a child process's life to its parent thread with PR_SET_PDEATHSIG,
//! so that no QEMU guest, workload or exec child outlives a killed
//! stackquake.

use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::sys::signal::Signal;

/// Arranges for the child spawned by `cmd` to get SIGKILL when the thread
/// that spawns it exits. Spawn from a thread that lives as long as the child
/// is wanted (the kernel tracks the parent *thread*, prctl(2)).
pub fn kill_with_parent(cmd: &mut Command) {
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs between fork and exec in the child. It calls
    // only prctl(2) and getppid(2) via nix (async-signal-safe syscalls, no
    // allocation, no locks) and touches no state shared with the parent.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            // The parent may have died between fork and prctl; then no
            // signal will ever come, so give up now.
            if nix::unistd::getppid() != parent {
                return Err(std::io::Error::other("parent exited before exec"));
            }
            Ok(())
        });
    }
}
