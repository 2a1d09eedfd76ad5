//! Abort probes: what must stay true while the timeline runs. The first
//! one that fails heals every fault at once and ends the run ABORTED, so a
//! rehearsal stops hurting the moment it hurts more than it may.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct AbortProbe {
    pub id: String,
    /// Where it is written, e.g. `abort[1]`.
    pub path: String,
    pub check: ProbeCheck,
    /// How often a command or read probe runs (a workload probe watches
    /// every op as it runs, so it has none).
    pub every: Duration,
    /// The bound: a probe that has not answered within it fails, and so
    /// does a workload op that takes longer.
    pub within: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeCheck {
    /// A command in a host's namespace that must exit 0.
    Command { host: String, command: Vec<String> },
    /// A file (a scenario path) whose first bytes must stay readable.
    Readable { path: String },
    /// No op of this workload may take longer than the bound, including
    /// one still running.
    OpLatency { workload: String },
}
