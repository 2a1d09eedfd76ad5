//! plan → setup → timeline → verdict → teardown, for one scenario.
//!
//! The engine is single-threaded apart from the workload reader threads: a
//! loop that pumps workload reports and kernel log records every few tens of
//! milliseconds while it waits out a step, so a hung workload or a stalled
//! mount never stops it from healing faults and tearing down.

mod artifacts;
mod error;
mod exec;
mod in_force;
mod kfeature;
mod live;
mod pause;
mod probes;
mod require;
mod rpc_calls;
mod schedule;
mod timeline;
mod verify;
mod workloads;
mod world;

pub use error::{RunError, StartError, WorkloadsError};
pub use kfeature::{Evidence, KernelConfig, Presence};
pub use require::{kernel_release, unmet};
pub use timeline::{Anchor, Planned, Timeline};
pub use world::{SetupError, World};

use crate::expect;
use crate::journal::{Event, Journal, Observer, TEARDOWN_STAGE, TIMELINE_STAGE};
use crate::ledger::{DEFAULT_ROOT, Ledger, LedgerObject};
use crate::observe::Kmsg;
use crate::plan::{KernelVersion, Plan, Target};
use crate::report::{ScenarioResult, Verdict};
use crate::workload::monotonic_ns;
use live::{Abort, Live};
pub use probes::read_probe;
use std::path::{Path, PathBuf};

pub struct RunOptions {
    /// The target as the scenario sees it (`vm` inside the guest).
    pub target: Target,
    /// Where runs keep their private roots and server directories.
    pub scratch: PathBuf,
    /// Where per-step artifacts go (kmsg slice, stacks, mountstats), if anywhere.
    pub artifacts: Option<PathBuf>,
    /// Who watches the run as it happens, if anyone.
    pub observer: Option<Box<dyn Observer>>,
}

/// Why this machine cannot run scenarios on a target at all — not one
/// scenario's unmet requirement (a SKIP), but the environment: exit 69.
#[derive(Debug, thiserror::Error)]
#[error("{what}\n  hint: {hint}")]
pub struct Unavailable {
    what: String,
    hint: String,
}

/// Checks what every run on `target` needs before anything is touched.
pub fn preflight(target: Target) -> Result<(), Unavailable> {
    if target == Target::Host && !nix::unistd::geteuid().is_root() {
        return Err(Unavailable {
            what: "the host target needs root: a run creates network namespaces, mounts, \
                   loop devices and firewall rules on this machine"
                .into(),
            hint: "run it as root (sudo stackquake run --target host …), or use --target vm, \
                   which builds the world inside a throwaway QEMU guest"
                .into(),
        });
    }
    if target == Target::Staging && !nix::unistd::geteuid().is_root() {
        return Err(Unavailable {
            what: "the staging target needs root: a rehearsal adds an nftables table, \
                   mounts and processes on this client"
                .into(),
            hint: "run it as root on the staging client (sudo stackquake run --target staging …); \
                   `stackquake plan --target staging` shows what it would change"
                .into(),
        });
    }
    Ok(())
}

pub fn run_scenario(file: &Path, s: &Plan, mut opts: RunOptions) -> ScenarioResult {
    let started = std::time::Instant::now();
    let mut result = ScenarioResult {
        id: s.id.clone(),
        title: s.title.clone(),
        file: file.display().to_string(),
        verdict: Verdict::Error,
        kernel: kernel_release(),
        reason: None,
        duration_s: 0.0,
        outcomes: Vec::new(),
        journal: Journal::default(),
        files_dir: None,
    };
    if let Some(why) = require::unmet(s, opts.target) {
        result.verdict = Verdict::Skip;
        result.reason = Some(why);
        return result;
    }
    match run(file, s, &mut opts, &mut result) {
        Ok(()) => apply_xfail(s, &kernel_release(), &mut result),
        Err(e) => {
            result.verdict = Verdict::Error;
            result.reason = Some(e.to_string());
        }
    }
    result.duration_s = started.elapsed().as_secs_f64();
    result
}

fn run(
    file: &Path,
    s: &Plan,
    opts: &mut RunOptions,
    result: &mut ScenarioResult,
) -> Result<(), RunError> {
    let (run, ledger) = Ledger::create_new_run(Path::new(DEFAULT_ROOT), file)?;
    let run_id = run.as_str().to_string();
    let scratch = opts.scratch.join(&run_id);
    let scratch_entry = ledger.record(LedgerObject::TempDir {
        path: scratch.clone(),
    })?;
    std::fs::create_dir_all(&scratch).map_err(|source| RunError::Scratch {
        path: scratch.clone(),
        source,
    })?;
    let kmsg = Kmsg::open_at_end()?;
    let t0 = monotonic_ns();
    let mut live = Live::new(
        s,
        Journal {
            run_id: run_id.clone(),
            events: Vec::new(),
        },
        kmsg,
        t0,
        scratch.clone(),
        opts.artifacts.clone(),
    );
    live.observer = opts.observer.take();
    live.stage("setup");
    let setup = live
        .world
        .build(
            s,
            opts.target,
            &run,
            &scratch,
            &ledger,
            &mut live.journal.events,
        )
        .map_err(StartError::from)
        .and_then(|()| {
            live.start_captures();
            live.start_workloads(&ledger).map_err(StartError::from)
        });
    let timeline = match setup {
        Ok(()) => {
            live.stage(TIMELINE_STAGE);
            live.timeline(&ledger)
        }
        Err(e) => Err(Abort::Setup(e)),
    };
    let mut aborted = timeline.err();
    if let Some(a) = &aborted {
        live.aborted(a);
    }
    if let Some(late) = live.finish() {
        live.aborted(&late);
        aborted = aborted.or(Some(late));
    }
    live.stage(TEARDOWN_STAGE);
    let (world, mut journal, mut observer) = live.into_parts();
    world.teardown(&mut journal.events);
    match std::fs::remove_dir_all(&scratch) {
        Ok(()) => {
            let _ = ledger.done(scratch_entry);
        }
        Err(e) => journal.push(Event::Teardown {
            what: format!("remove {}", scratch.display()),
            error: Some(e.to_string()),
        }),
    }
    let leaks: Vec<String> = journal
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Teardown {
                what,
                error: Some(err),
            } => Some(format!("{what}: {err}")),
            _ => None,
        })
        .collect();
    if leaks.is_empty() {
        ledger.finish()?;
    }
    if let Some(o) = &mut observer {
        o.stage(&journal, "evaluating");
    }
    result.outcomes = expect::evaluate(s, &journal, &KernelVersion::of(&kernel_release()));
    result.journal = journal;
    (result.verdict, result.reason) = if let Some(abort) = aborted {
        // A step that never ends is the system's behaviour, not the harness's.
        let verdict = match abort {
            Abort::StepTimeout { .. } => Verdict::Fail,
            // A probe said stop: its own verdict, unless teardown failed.
            Abort::Probe(_) if leaks.is_empty() => Verdict::Aborted,
            _ => Verdict::Error,
        };
        (verdict, Some(abort.to_string()))
    } else if let Some(why) = unfired_fault(&result.journal) {
        (Verdict::Error, Some(why))
    } else if !leaks.is_empty() {
        (
            Verdict::Error,
            Some(format!("teardown left: {}", leaks.join("; "))),
        )
    } else if let Some(failed) = result.outcomes.iter().find(|o| !o.passed) {
        (
            Verdict::Fail,
            Some(format!("{}: {}", failed.expectation, failed.detail)),
        )
    } else {
        (Verdict::Pass, None)
    };
    Ok(())
}

/// The first fault that matched nothing, or whose counters could not be
/// read: a fault that never fired tested nothing, so the run is an ERROR,
/// not a PASS (or a FAIL blamed on the system).
fn unfired_fault(journal: &Journal) -> Option<String> {
    journal.events.iter().find_map(|e| match e {
        Event::FaultHealed {
            step,
            fault,
            matched: Some(0),
            unit,
            ..
        } => Some(format!(
            "{fault} at step {step} never fired: it matched no {} while active",
            unit.as_deref().unwrap_or("packet")
        )),
        Event::FaultHealed {
            step,
            fault,
            uncounted: Some(why),
            ..
        } => Some(format!(
            "{fault} at step {step}: cannot tell whether it fired: {why}"
        )),
        _ => None,
    })
}

/// XFAIL for a predicted failure, XPASS for a pass the scenario did not
/// expect, on kernels in the xfail's range.
pub fn apply_xfail(s: &Plan, release: &str, result: &mut ScenarioResult) {
    let Some(x) = &s.xfail else { return };
    if !x.covers(&KernelVersion::of(release)) {
        return;
    }
    let link = x
        .link
        .as_deref()
        .map(|l| format!(" ({l})"))
        .unwrap_or_default();
    match result.verdict {
        Verdict::Fail => {
            result.verdict = Verdict::Xfail;
            result.reason = Some(format!(
                "known failure: {}{link}; {}",
                x.reason,
                result.reason.take().unwrap_or_default()
            ));
        }
        Verdict::Pass => {
            result.verdict = Verdict::Xpass;
            result.reason = Some(format!("passed, but xfail expects: {}{link}", x.reason));
        }
        _ => {}
    }
}
