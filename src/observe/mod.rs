//! Hang detection from /proc and the kernel log from /dev/kmsg.

mod kernel_clock;
mod kmsg;
mod task;

use std::path::PathBuf;

pub use kernel_clock::KernelClock;
pub use kmsg::{Kmsg, KmsgRecord, marker_text, parse_record, write_marker};
pub use task::{TaskSample, sample_task};

#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error("cannot open {path}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot seek to the end of /dev/kmsg")]
    Seek { source: std::io::Error },
    #[error("cannot write marker to /dev/kmsg")]
    Write { source: std::io::Error },
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}
