//! Expectations as a scenario writes them: typed matchers, each scoped to a
//! window of steps (`during: [a, b]`, `after: a`, or neither: the whole run).

use super::model::Ref;
use super::quantity::Duration;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

pub use super::history::EventRef;
pub use crate::plan::{FsStateName, TaskState, Verify};

/// Steps a matcher looks at: from the start of the first to the end of the
/// last. Absent means the whole timeline.
pub type During = Option<Vec<Ref>>;

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Expectation {
    /// Some operation of the workload failed with this errno.
    Errno {
        #[schemars(with = "String")]
        workload: Ref,
        #[schemars(with = "String")]
        errno: Spanned<String>,
        #[serde(default)]
        #[schemars(with = "Option<Vec<String>>")]
        during: During,
        #[serde(default)]
        #[schemars(with = "Option<String>")]
        after: Option<Ref>,
    },
    /// No operation of the workload failed (an indeterminate op is not a failure).
    NoErrors {
        #[schemars(with = "String")]
        workload: Ref,
        #[serde(default)]
        #[schemars(with = "Option<Vec<String>>")]
        during: During,
        #[serde(default)]
        #[schemars(with = "Option<String>")]
        after: Option<Ref>,
    },
    /// A kernel log line matches this regular expression (or, with
    /// `absent: true`, none does).
    Kmsg {
        #[schemars(with = "String")]
        pattern: Spanned<String>,
        #[serde(default)]
        absent: bool,
        #[serde(default)]
        #[schemars(with = "Option<Vec<String>>")]
        during: During,
        #[serde(default)]
        #[schemars(with = "Option<String>")]
        after: Option<Ref>,
    },
    /// An op of the workload outlived its deadline, its task in this state
    /// and sleeping in a kernel function matching `wchan`. A kernel
    /// function's name is the kernel's own business and changes between
    /// versions: with `kernel:` the expectation is judged only on kernels
    /// in that range (write one per kernel range, each saying what that
    /// kernel does).
    Hang {
        #[schemars(with = "String")]
        workload: Ref,
        #[serde(default)]
        state: Option<TaskState>,
        #[serde(default)]
        #[schemars(with = "Option<String>")]
        wchan: Option<Spanned<String>>,
        /// A regex the hung task's kernel stack (/proc/PID/stack, one
        /// function a line) must match somewhere, e.g. `nfs_match_client`.
        #[serde(default)]
        #[schemars(with = "Option<String>")]
        stack: Option<Spanned<String>>,
        #[serde(default)]
        kernel: Option<Box<super::model::KernelRange>>,
        #[serde(default)]
        #[schemars(with = "Option<Vec<String>>")]
        during: During,
        #[serde(default)]
        #[schemars(with = "Option<String>")]
        after: Option<Ref>,
    },
    /// No op of the workload outlived its deadline.
    NoHang {
        #[schemars(with = "String")]
        workload: Ref,
        #[serde(default)]
        #[schemars(with = "Option<Vec<String>>")]
        during: During,
        #[serde(default)]
        #[schemars(with = "Option<String>")]
        after: Option<Ref>,
    },
    /// Somewhere in the window, no op of the workload completed for at least this long.
    StallsAtLeast {
        #[schemars(with = "String")]
        workload: Ref,
        #[serde(deserialize_with = "super::quantity::nonzero")]
        duration: Duration,
        #[serde(default)]
        #[schemars(with = "Option<Vec<String>>")]
        during: During,
        #[serde(default)]
        #[schemars(with = "Option<String>")]
        after: Option<Ref>,
    },
    /// After the step ends, an op of the workload succeeds within this long.
    ResumesWithin {
        #[schemars(with = "String")]
        workload: Ref,
        #[serde(deserialize_with = "super::quantity::nonzero")]
        duration: Duration,
        #[schemars(with = "String")]
        after: Ref,
    },
    /// Every record the workload wrote and had acknowledged (fsynced, when
    /// `fsync: true`) is in its file, intact, when the timeline ends.
    Data {
        #[schemars(with = "String")]
        workload: Ref,
        verify: Verify,
    },
    /// The `exec` step exited with this code.
    ExitCode {
        #[schemars(with = "String")]
        step: Ref,
        code: i32,
    },
    /// The image's filesystem is in this state when the step ends.
    FsState {
        #[schemars(with = "String")]
        fs: Ref,
        state: FsStateName,
        /// Step at whose end to look; absent means the end of the timeline.
        #[serde(default)]
        #[schemars(with = "Option<String>")]
        at: Option<Ref>,
    },
    /// The NFS mount is refused at setup (with this errno, when given);
    /// the run goes on without it.
    MountFails {
        #[schemars(with = "String")]
        mount: Ref,
        #[serde(default)]
        #[schemars(with = "Option<String>")]
        errno: Option<Spanned<String>>,
    },
    /// The mount of this image or NFS mount is (or is not) listed in mountinfo.
    Mounted {
        #[schemars(with = "String")]
        mount: Ref,
        #[serde(default = "yes")]
        present: bool,
        #[serde(default)]
        #[schemars(with = "Option<String>")]
        at: Option<Ref>,
    },
    /// No two of these flock workloads (one host, one file) are known to
    /// hold the lock at once; `sh` holds may overlap each other. Judged
    /// from each op's own record: held from when its flock call returned
    /// until its unlock call began.
    MutualExclusion {
        #[schemars(with = "Vec<String>")]
        workloads: Vec<Ref>,
    },
    /// The first `then` at or after the first `first` comes at least
    /// `at_least` and at most `at_most` later (neither: just after).
    Order {
        #[schemars(with = "EventRef")]
        first: Box<Spanned<EventRef>>,
        #[schemars(with = "EventRef")]
        then: Box<Spanned<EventRef>>,
        #[serde(default)]
        #[schemars(with = "Option<Duration>")]
        at_least: Option<Spanned<Duration>>,
        #[serde(default)]
        #[schemars(with = "Option<Duration>")]
        at_most: Option<Spanned<Duration>>,
    },
    /// From the step's end to the end of the timeline, no op of the
    /// workload succeeds (the opposite of `resumes_within`).
    NeverResumes {
        #[schemars(with = "String")]
        workload: Ref,
        #[schemars(with = "String")]
        after: Ref,
    },
}

fn yes() -> bool {
    true
}

impl Expectation {
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

    /// The window of an event matcher: `during` steps, or after a step.
    pub fn window(&self) -> Option<(&During, Option<&Ref>)> {
        match self {
            Expectation::Errno { during, after, .. }
            | Expectation::NoErrors { during, after, .. }
            | Expectation::Kmsg { during, after, .. }
            | Expectation::Hang { during, after, .. }
            | Expectation::NoHang { during, after, .. }
            | Expectation::StallsAtLeast { during, after, .. } => Some((during, after.as_ref())),
            _ => None,
        }
    }

    /// The workload a matcher is about, if any.
    pub fn workload(&self) -> Option<&Ref> {
        match self {
            Expectation::Errno { workload, .. }
            | Expectation::NoErrors { workload, .. }
            | Expectation::Hang { workload, .. }
            | Expectation::NoHang { workload, .. }
            | Expectation::StallsAtLeast { workload, .. }
            | Expectation::ResumesWithin { workload, .. }
            | Expectation::NeverResumes { workload, .. }
            | Expectation::Data { workload, .. } => Some(workload),
            _ => None,
        }
    }
}
