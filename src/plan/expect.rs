//! Expectations as the matchers evaluate them: workloads, steps and images
//! named by id, errnos as numbers, patterns compiled, each event matcher
//! with its window.

use super::{KernelRange, KernelVersion};
use regex::Regex;
use schemars::JsonSchema;
use serde::Deserialize;
use std::time::Duration;

/// Which part of the run an event matcher looks at: from the start of
/// `during.0` to the end of `during.1`, or from the end of `after` on, or
/// (neither) the whole run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Window {
    pub during: Option<(String, String)>,
    pub after: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Expectation {
    Errno {
        workload: String,
        errno: i32,
        window: Window,
    },
    NoErrors {
        workload: String,
        window: Window,
    },
    Kmsg {
        pattern: Regex,
        absent: bool,
        window: Window,
    },
    Hang {
        workload: String,
        state: Option<TaskState>,
        wchan: Option<Regex>,
        /// Matched against the hung task's kernel stack.
        stack: Option<Regex>,
        window: Window,
        /// Where a task sleeps is a kernel function's name, which changes
        /// between kernels: the expectation is judged only on these.
        kernel: KernelRange,
    },
    NoHang {
        workload: String,
        window: Window,
    },
    StallsAtLeast {
        workload: String,
        duration: Duration,
        window: Window,
    },
    ResumesWithin {
        workload: String,
        duration: Duration,
        after: String,
    },
    Data {
        workload: String,
        verify: Verify,
    },
    ExitCode {
        step: String,
        code: i32,
    },
    FsState {
        image: String,
        state: FsStateName,
        /// The step at whose end it is probed; None: the last step to end.
        at: Option<String>,
    },
    Mounted {
        mount: String,
        present: bool,
        at: Option<String>,
    },
    MountFails {
        mount: String,
        errno: Option<i32>,
    },
    /// History checkers (src/expect/history.rs).
    MutualExclusion {
        /// Each flock workload with the lock its ops take.
        workloads: Vec<(String, super::LockMode)>,
    },
    Order {
        first: EventRef,
        then: EventRef,
        at_least: Option<Duration>,
        at_most: Option<Duration>,
    },
    NeverResumes {
        workload: String,
        after: String,
    },
}

/// One kind of moment in the journal, named by what it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventRef {
    Op { workload: String, op: OpEvent },
    Step { step: String, edge: Edge },
    Fault { step: String, edge: Edge },
}

/// What of a workload's ops an event reference means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OpEvent {
    /// A flock op's lock call returned with the lock.
    Acquired,
    /// A flock op's unlock call began.
    Released,
    /// An op ended without an error.
    Succeeded,
    /// An op ended with an errno (or an exec op with a non-zero code).
    Failed,
}

/// Which edge of a step (`begin`, `end`, and `ready` for an exec with
/// `ready:`) or of its fault (`injected`, `healed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Edge {
    Begin,
    /// An exec step's command printed its `ready` line.
    Ready,
    End,
    Injected,
    Healed,
}

impl OpEvent {
    pub fn word(self) -> &'static str {
        match self {
            OpEvent::Acquired => "acquired",
            OpEvent::Released => "released",
            OpEvent::Succeeded => "succeeded",
            OpEvent::Failed => "failed",
        }
    }
}

impl Edge {
    pub fn word(self) -> &'static str {
        match self {
            Edge::Begin => "begin",
            Edge::Ready => "ready",
            Edge::End => "end",
            Edge::Injected => "injected",
            Edge::Healed => "healed",
        }
    }
}

impl std::fmt::Display for EventRef {
    /// `b acquired`, `step hold end`, `fault crash healed`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EventRef::Op { workload, op } => write!(f, "{workload} {}", op.word()),
            EventRef::Step { step, edge } => write!(f, "step {step} {}", edge.word()),
            EventRef::Fault { step, edge } => write!(f, "fault {step} {}", edge.word()),
        }
    }
}

impl Expectation {
    /// Whether it is judged on `kernel` (only `hang` names kernel internals).
    pub fn applies_on(&self, kernel: &KernelVersion) -> bool {
        match self {
            Expectation::Hang { kernel: range, .. } => range.covers(kernel),
            _ => true,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Expectation::Errno { .. } => "errno",
            Expectation::NoErrors { .. } => "no_errors",
            Expectation::Kmsg { .. } => "kmsg",
            Expectation::Hang { .. } => "hang",
            Expectation::NoHang { .. } => "no_hang",
            Expectation::StallsAtLeast { .. } => "stalls_at_least",
            Expectation::ResumesWithin { .. } => "resumes_within",
            Expectation::Data { .. } => "data",
            Expectation::ExitCode { .. } => "exit_code",
            Expectation::FsState { .. } => "fs_state",
            Expectation::Mounted { .. } => "mounted",
            Expectation::MountFails { .. } => "mount_fails",
            Expectation::MutualExclusion { .. } => "mutual_exclusion",
            Expectation::Order { .. } => "order",
            Expectation::NeverResumes { .. } => "never_resumes",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FsStateName {
    Ok,
    ReadOnly,
    Shutdown,
}

/// A task state as /proc/<pid>/stat spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum TaskState {
    /// Uninterruptible sleep: the hang of a hard NFS mount or a stuck disk.
    D,
    /// Interruptible sleep: waiting on a lock or a socket.
    S,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verify {
    /// Every record whose op was acknowledged is present and intact.
    AllAcknowledged,
}

/// When `data` expectations read the workloads' files back, relative to
/// the heal of the faults still in force when the timeline ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DataCheck {
    /// Heal, give workloads their grace, stop them, then read back: the
    /// file is final, but a heal that breaks the path (restoring a broken
    /// MTU) leaves the read to the scenario timeout.
    #[default]
    AfterHeal,
    /// Read back first, over the world as the timeline left it (workloads
    /// still running), then heal.
    BeforeHeal,
}
