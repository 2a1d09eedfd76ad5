//! A snapshot of what a (possibly hung) task is doing, from /proc.

use std::path::PathBuf;
use std::time::SystemTime;

use super::ObserveError;
use crate::sys::procstat;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSample {
    pub pid: u32,
    /// R, S, D (uninterruptible: the hang we look for), Z, T, …
    pub state: char,
    /// Kernel function the task sleeps in; "0" while running.
    pub wchan: String,
    /// /proc/<pid>/stack; root only, and absent on kernels without
    /// CONFIG_STACKTRACE.
    pub stack: Option<String>,
    pub at: SystemTime,
}

/// Samples process `pid`: its main thread, or, when that is not in D
/// state, the first of its threads that is. A workload that does its
/// blocking calls on threads (a `mount_storm` issues each mount(2) on a
/// thread of its own and joins them) hangs in those threads while the main
/// thread only waits in a futex, and the hang an operator needs to see is
/// the kernel stack of the thread in the kernel.
pub fn sample_task(pid: u32) -> Result<TaskSample, ObserveError> {
    let main = sample_thread(pid, &format!("/proc/{pid}"))?;
    if main.state == 'D' {
        return Ok(main);
    }
    let mut tids: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|t| t.file_name().to_str()?.parse().ok())
        .filter(|&tid| tid != pid)
        .collect();
    tids.sort_unstable();
    // A thread may end between the listing and its sample: skip it.
    let blocked = tids.into_iter().find_map(|tid| {
        sample_thread(pid, &format!("/proc/{pid}/task/{tid}"))
            .ok()
            .filter(|s| s.state == 'D')
    });
    Ok(blocked.unwrap_or(main))
}

/// One thread's state, wchan and stack from `dir` (`/proc/<pid>` or
/// `/proc/<pid>/task/<tid>`), reported under the process's pid.
fn sample_thread(pid: u32, dir: &str) -> Result<TaskSample, ObserveError> {
    let at = SystemTime::now();
    let stat_path = PathBuf::from(format!("{dir}/stat"));
    let stat = std::fs::read_to_string(&stat_path)
        .and_then(|text| {
            procstat::parse(&text).ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, "unparsable stat")
            })
        })
        .map_err(|source| ObserveError::Read {
            path: stat_path,
            source,
        })?;
    let wchan_path = PathBuf::from(format!("{dir}/wchan"));
    let wchan = std::fs::read_to_string(&wchan_path).map_err(|source| ObserveError::Read {
        path: wchan_path,
        source,
    })?;
    let stack = std::fs::read_to_string(format!("{dir}/stack")).ok();
    Ok(TaskSample {
        pid,
        state: stat.state,
        wchan: wchan.trim().to_string(),
        stack,
        at,
    })
}
