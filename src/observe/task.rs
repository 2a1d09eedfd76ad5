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

pub fn sample_task(pid: u32) -> Result<TaskSample, ObserveError> {
    let at = SystemTime::now();
    let stat = procstat::read(pid).map_err(|source| ObserveError::Read {
        path: PathBuf::from(format!("/proc/{pid}/stat")),
        source,
    })?;
    let wchan_path = PathBuf::from(format!("/proc/{pid}/wchan"));
    let wchan = std::fs::read_to_string(&wchan_path).map_err(|source| ObserveError::Read {
        path: wchan_path,
        source,
    })?;
    let stack = std::fs::read_to_string(format!("/proc/{pid}/stack")).ok();
    Ok(TaskSample {
        pid,
        state: stat.state,
        wchan: wchan.trim().to_string(),
        stack,
        at,
    })
}
