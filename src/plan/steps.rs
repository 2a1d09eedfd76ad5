//! The timeline as a plan holds it: one flat list of steps, each with its
//! place (group, `after:`) as indices into that list and one typed action.

use super::Fault;
use regex::Regex;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Step {
    pub id: String,
    /// Where it is written, e.g. `steps[2].parallel[0]`.
    pub path: String,
    /// The `parallel` step this one is a member of.
    pub group: Option<usize>,
    /// The step named by `after:` (always an earlier one).
    pub after: Option<usize>,
    pub offset: Duration,
    /// How long the step may run before the run stops as FAIL.
    pub timeout: Option<Duration>,
    pub action: Action,
}

#[derive(Debug, Clone)]
pub enum Action {
    Wait(Duration),
    /// Injected when the step begins; healed after `heal_after` (the step
    /// then ends), or at the end of the run, or (`kept`) never: the world's
    /// teardown removes it with its namespace.
    Fault {
        fault: Fault,
        heal_after: Option<Duration>,
        kept: bool,
    },
    /// A command in a host's namespace; the step ends when it exits. With
    /// `ready`, it is ready once a line of its output matches: the step's
    /// `start` workloads wait for that, not for the spawn.
    Exec {
        host: String,
        command: Vec<String>,
        ready: Option<Regex>,
    },
    /// The group's members begin with it; it ends with its last member.
    Parallel(Vec<usize>),
    /// Waits for the operator: the step ends when someone confirms (Enter
    /// on the run's terminal, SIGUSR1, or the step's continue file), so an
    /// operator's own action happens at a known point of the timeline.
    Pause {
        message: String,
    },
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Wait(_) => "wait",
            Action::Fault { .. } => "fault",
            Action::Exec { .. } => "exec",
            Action::Parallel(_) => "parallel",
            Action::Pause { .. } => "pause",
        }
    }
}
