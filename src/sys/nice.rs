//! A process's nice value, for every one of its threads: Linux keeps it
//! per thread, and setpriority(2) on a pid reaches only its main thread.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// The calling thread's nice value.
pub fn own() -> io::Result<i32> {
    // getpriority(2) may return -1 as a value: only errno tells.
    nix::errno::Errno::clear();
    // SAFETY: getpriority takes two integers and touches no memory of ours.
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    if nice == -1 && nix::errno::Errno::last_raw() != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(nice)
}

/// Makes the process `cmd` spawns start at `nice`, before its first
/// instruction: every thread it starts inherits it.
pub fn start_at(cmd: &mut Command, nice: i32) {
    // SAFETY: the closure runs between fork and exec in the child and
    // calls only setpriority(2) (async-signal-safe, no allocation, no
    // locks), on the child alone.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setpriority(libc::PRIO_PROCESS, 0, nice) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Sets `nice` on every thread of `pid` (a child of ours: its thread ids
/// cannot be reused by another process while we have not reaped it).
/// Threads it starts later inherit the value from the thread that starts
/// them. A thread that ended meanwhile is not an error.
pub fn set_all_threads(pid: u32, nice: i32) -> io::Result<()> {
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let Some(tid) = task?.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        // SAFETY: setpriority takes integers and touches no memory of ours.
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, nice) } != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ESRCH) {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// The nice value of each thread of `pid`, as /proc shows it.
pub fn of_all_threads(pid: u32) -> io::Result<Vec<i32>> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let stat = match std::fs::read_to_string(task?.path().join("stat")) {
            Ok(s) => s,
            // The thread ended since the directory was read.
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let stat = super::procstat::parse(&stat)
            .ok_or_else(|| io::Error::other(format!("unparsable task stat {stat:?}")))?;
        out.push(stat.nice);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_thread_of_a_child_takes_the_new_value() {
        use std::io::BufRead;
        // Four threads; setpriority(2) on the pid alone would reach one.
        let mut child = std::process::Command::new("/usr/bin/python3")
            .args([
                "-c",
                "import threading, time\n\
                 for _ in range(3): threading.Thread(target=time.sleep, args=(60,)).start()\n\
                 print('ready', flush=True)\n\
                 time.sleep(60)",
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("/usr/bin/python3 (ci/setup installs it)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "ready\n");
        let pid = child.id();
        let base = own().unwrap();
        assert_eq!(of_all_threads(pid).unwrap(), vec![base; 4]);
        let lower = (base + 3).min(19);
        assert_ne!(lower, base, "the test runs at nice 19 already");
        set_all_threads(pid, lower).unwrap();
        assert_eq!(of_all_threads(pid).unwrap(), vec![lower; 4]);
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn a_child_started_at_a_value_runs_at_it_from_the_start() {
        let nice = (own().unwrap() + 2).min(19);
        let mut cmd = std::process::Command::new("sleep");
        cmd.arg("30");
        start_at(&mut cmd, nice);
        let mut child = cmd.spawn().unwrap();
        assert_eq!(of_all_threads(child.id()).unwrap(), vec![nice]);
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
