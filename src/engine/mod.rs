//! plan → setup → timeline → verdict → teardown, for one scenario.
//!
//! The engine is single-threaded apart from the workload reader threads: a
//! loop that pumps workload reports and kernel log records every few tens of
//! milliseconds while it waits out a step, so a hung workload or a stalled
//! mount never stops it from healing faults and tearing down.

mod require;
mod workloads;
mod world;

pub use require::{kernel_release, which};
pub use world::{SetupError, World};

use crate::block::FsState;
use crate::expect::{self, Probe};
use crate::fault::{self, Active};
use crate::journal::{Event, Journal};
use crate::ledger::{DEFAULT_ROOT, Ledger, LedgerObject, RunId};
use crate::observe::Kmsg;
use crate::report::{ScenarioResult, Verdict};
use crate::scenario::{FsStateName, Scenario, Target};
use crate::workload::{Spec, monotonic_ns};
use std::path::{Path, PathBuf};
use std::time::Duration;
use workloads::Running;

/// How often the engine looks at workloads and the kernel log while waiting.
const TICK: Duration = Duration::from_millis(25);
/// How long workloads may keep running after the faults are healed.
const GRACE: Duration = Duration::from_secs(1);

pub struct RunOptions {
    /// The target as the scenario sees it (`vm` inside the guest).
    pub target: Target,
    /// Where runs keep their private roots and server directories.
    pub scratch: PathBuf,
}

/// Why a timeline stopped early.
enum Abort {
    Timeout,
    Signal,
    Fault(String),
}

impl std::fmt::Display for Abort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Abort::Timeout => f.write_str("scenario timeout reached"),
            Abort::Signal => f.write_str("interrupted by a signal"),
            Abort::Fault(e) => write!(f, "fault injection failed: {e}"),
        }
    }
}

/// The state of a run while its timeline executes.
struct Live<'a> {
    scenario: &'a Scenario,
    world: World,
    journal: Journal,
    kmsg: Kmsg,
    workloads: Vec<Running>,
    active: Vec<(String, Active)>,
    /// The timeline's zero on CLOCK_MONOTONIC.
    t0: u64,
    /// CLOCK_MONOTONIC after which the scenario has timed out.
    deadline: u64,
}

pub fn run_scenario(file: &Path, s: &Scenario, opts: &RunOptions) -> ScenarioResult {
    let started = std::time::Instant::now();
    let mut result = ScenarioResult {
        id: s.id.value.clone(),
        title: s.title.clone(),
        file: file.display().to_string(),
        verdict: Verdict::Error,
        reason: None,
        duration_s: 0.0,
        outcomes: Vec::new(),
        journal: Journal::default(),
    };
    if let Some(why) = require::unmet(s, opts.target) {
        result.verdict = Verdict::Skip;
        result.reason = Some(why);
        return result;
    }
    match run(file, s, opts, &mut result) {
        Ok(()) => {}
        Err(e) => {
            result.verdict = Verdict::Error;
            result.reason = Some(e);
        }
    }
    result.duration_s = started.elapsed().as_secs_f64();
    result
}

fn run(
    file: &Path,
    s: &Scenario,
    opts: &RunOptions,
    result: &mut ScenarioResult,
) -> Result<(), String> {
    let run = RunId::generate();
    let run_id = run.as_str().to_string();
    let scratch = opts.scratch.join(&run_id);
    let ledger =
        Ledger::create(Path::new(DEFAULT_ROOT), &run, file).map_err(|e| format!("ledger: {e}"))?;
    let scratch_entry = ledger
        .record(LedgerObject::TempDir {
            path: scratch.clone(),
        })
        .map_err(|e| format!("ledger: {e}"))?;
    std::fs::create_dir_all(&scratch).map_err(|e| format!("create {}: {e}", scratch.display()))?;
    let kmsg = Kmsg::open_at_end().map_err(|e| format!("kernel log: {e}"))?;
    let t0 = monotonic_ns();
    let mut live = Live {
        scenario: s,
        world: World::default(),
        journal: Journal {
            run_id: run_id.clone(),
            events: Vec::new(),
        },
        kmsg,
        workloads: Vec::new(),
        active: Vec::new(),
        t0,
        deadline: t0 + s.timeout.0.as_nanos() as u64,
    };
    let setup = live
        .world
        .build(s, &run, &scratch, &ledger, &mut live.journal.events)
        .map_err(|e| format!("setup: {e}"))
        .and_then(|()| live.start_workloads(&ledger));
    let timeline = match setup {
        Ok(()) => live.timeline(),
        Err(e) => Err(Abort::Fault(e)),
    };
    let aborted = timeline.err();
    live.finish();
    let Live {
        world, mut journal, ..
    } = live;
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
        ledger.finish().map_err(|e| format!("ledger: {e}"))?;
    }
    result.outcomes = expect::evaluate(s, &journal);
    result.journal = journal;
    (result.verdict, result.reason) = if let Some(abort) = aborted {
        (Verdict::Error, Some(abort.to_string()))
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

impl Live<'_> {
    fn now(&self) -> u64 {
        monotonic_ns().saturating_sub(self.t0)
    }

    fn start_workloads(&mut self, ledger: &Ledger) -> Result<(), String> {
        for w in &self.scenario.workloads {
            let spec = Spec {
                id: w.id.value.clone(),
                op: w.op,
                path: self.world.path(&w.path.value),
                every_ms: w.every.0.as_millis() as u64,
                fsync: w.fsync,
                record_size: w.record_size.0 as usize,
            };
            let ns = self.world.netns(&w.host.value).expect("validated host");
            let running =
                workloads::spawn(&spec, ns, w.deadline.0, ledger).map_err(|e| e.to_string())?;
            self.workloads.push(running);
        }
        Ok(())
    }

    /// Reads what workloads and the kernel reported since the last pump.
    fn pump(&mut self) {
        let now = monotonic_ns();
        for w in &mut self.workloads {
            w.pump(self.t0, now, &mut self.journal.events);
        }
        for r in self.kmsg.read_available() {
            self.journal.push(Event::Kmsg {
                seq: r.seq,
                level: r.level,
                text: r.text,
            });
        }
    }

    /// Waits `d` while pumping; stops early on timeout or a signal.
    fn wait(&mut self, d: Duration) -> Result<(), Abort> {
        let until = monotonic_ns() + d.as_nanos() as u64;
        loop {
            self.pump();
            if crate::sys::termination_requested() {
                return Err(Abort::Signal);
            }
            let now = monotonic_ns();
            if now >= self.deadline {
                return Err(Abort::Timeout);
            }
            if now >= until {
                return Ok(());
            }
            std::thread::sleep(TICK.min(Duration::from_nanos(until - now)));
        }
    }

    fn marker(&mut self, step: &str, edge: &str) {
        let text = Journal::marker(&self.journal.run_id, step, edge);
        if let Err(e) = crate::observe::write_marker(&text) {
            tracing::warn!("cannot write kernel log marker: {e}");
        }
    }

    fn timeline(&mut self) -> Result<(), Abort> {
        let s = self.scenario;
        for (i, step) in s.steps.iter().enumerate() {
            let id = step.id.value.clone();
            self.marker(&id, "begin");
            let t = self.now();
            self.journal.push(Event::StepBegin {
                step: id.clone(),
                t_ns: t,
            });
            if let Some(d) = step.wait {
                self.wait(d.0)?;
            }
            if let Some(f) = &step.fault {
                let active = fault::inject(&f.value, &self.world)
                    .map_err(|e| Abort::Fault(e.to_string()))?;
                let t = self.now();
                self.journal.push(Event::FaultInjected {
                    step: id.clone(),
                    fault: f.value.kind().into(),
                    t_ns: t,
                });
                self.active.push((id.clone(), active));
                if let Some(d) = step.for_ {
                    self.wait(d.0)?;
                    self.heal_last();
                }
            }
            self.pump();
            self.marker(&id, "end");
            let t = self.now();
            self.journal.push(Event::StepEnd {
                step: id.clone(),
                t_ns: t,
            });
            self.observe(&id, i + 1 == s.steps.len());
        }
        Ok(())
    }

    fn heal_last(&mut self) {
        if let Some((step, active)) = self.active.pop() {
            self.heal(step, active);
        }
    }

    fn heal(&mut self, step: String, active: Active) {
        let error = fault::heal(&active, &self.world)
            .err()
            .map(|e| e.to_string());
        let fault = match &active {
            Active::NfsUnexport { .. } => "nfs.unexport".to_string(),
            Active::Permanent { kind } => kind.to_string(),
        };
        let t = self.now();
        self.journal.push(Event::FaultHealed {
            step,
            fault,
            t_ns: t,
            error,
        });
    }

    /// Takes the state probes due when `step` ends.
    fn observe(&mut self, step: &str, last: bool) {
        for probe in expect::probes_at(self.scenario, step, last) {
            let value = match &probe {
                Probe::FsState { image } => match self.world.mountpoint(image) {
                    Some(at) => match crate::block::fs_state(at) {
                        Ok(state) => expect::fs_state_word(match state {
                            FsState::Ok => FsStateName::Ok,
                            FsState::ReadOnly => FsStateName::ReadOnly,
                            FsState::Shutdown => FsStateName::Shutdown,
                        })
                        .to_string(),
                        Err(e) => format!("unknown ({e})"),
                    },
                    None => "not mounted".into(),
                },
                Probe::Mounted { mount } => match self.world.mountpoint(mount) {
                    Some(at) => crate::block::is_mounted(at).to_string(),
                    None => "false".into(),
                },
            };
            let t = self.now();
            self.journal.push(Event::Observed {
                step: step.into(),
                subject: probe.subject(),
                value,
                t_ns: t,
            });
        }
    }

    /// Heal every fault still active, give workloads a grace period, stop
    /// them, and collect the last reports and kernel lines.
    fn finish(&mut self) {
        while let Some((step, active)) = self.active.pop() {
            self.heal(step, active);
        }
        let _ = self.wait(GRACE);
        self.pump();
        for w in std::mem::take(&mut self.workloads) {
            let id = w.id.clone();
            let error = w.stop(GRACE);
            self.journal.push(Event::Teardown {
                what: format!("stop workload {id}"),
                error,
            });
        }
        self.pump();
    }
}
