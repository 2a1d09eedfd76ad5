//! A run while its timeline executes: steps begun and ended on schedule,
//! faults injected and healed, workloads and the kernel log pumped every
//! tick, state probes taken as steps end.

use super::error::{StartError, WorkloadsError};
use super::exec::{self, ExecChild};
use super::in_force::InForce;
use super::pause::Waiting;
use super::probes::{Probes, Spawning, Tripped};
use super::rpc_calls::StepCalls;
use super::schedule::{Due, Scheduler};
use super::timeline::Timeline;
use super::verify;
use super::workloads::{self, Running};
use super::world::World;
use crate::block::FsState;
use crate::expect::{self, Probe};
use crate::fault::{self, Active};
use crate::journal::{Event, Journal, Observer};
use crate::ledger::{EntryId, Ledger, LedgerObject};
use crate::observe::{KernelClock, Kmsg};
use crate::plan::{Action, DataCheck, Expectation, FsStateName, Plan, Step};
use crate::workload::verify::Request;
use crate::workload::{Spec, Storm, monotonic_ns};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How often the engine looks at workloads, exec steps and the kernel log
/// while waiting. Op times come from the workloads and kernel log times
/// from the kernel, so the tick only bounds how late an exec step's end or
/// an op past its deadline is noticed; each wake costs an emulated guest
/// about a millisecond of host CPU (40 a second were a twentieth of a core).
const TICK: Duration = Duration::from_millis(100);
/// How long workloads may keep running after the faults are healed.
const GRACE: Duration = Duration::from_secs(1);
/// The least time `data` checks get to read files back, even when the
/// timeline used up the scenario timeout: a file that answers is read in
/// well under this; one that does not is not waited for longer.
const VERIFY_FLOOR: Duration = Duration::from_secs(5);

/// Why a timeline stopped early.
#[derive(Debug)]
pub enum Abort {
    /// The world could not be built (or its workloads started).
    Setup(StartError),
    Timeout,
    Signal,
    Fault(crate::fault::FaultError),
    Exec(super::exec::ExecError),
    StepTimeout {
        step: String,
        limit: Duration,
    },
    /// An exec step's command exited without printing its `ready` line.
    NotReady {
        step: String,
        ready: String,
    },
    /// Reading these workloads' files back outlived the scenario timeout.
    VerifyTimeout {
        workloads: Vec<String>,
    },
    /// An abort probe failed: every fault was healed at once.
    Probe(Tripped),
}

impl std::fmt::Display for Abort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Abort::Setup(e) => write!(f, "{e}"),
            Abort::Timeout => f.write_str("scenario timeout reached"),
            Abort::Signal => f.write_str("interrupted by a signal"),
            Abort::Fault(e) => write!(f, "fault injection failed: {e}"),
            Abort::Exec(e) => write!(f, "{e}"),
            Abort::VerifyTimeout { workloads } => write!(
                f,
                "scenario timeout reached while reading back the file of workload {}: \
                 the read did not return (see data_check in docs/scenarios.md)",
                workloads.join(", ")
            ),
            Abort::Probe(t) => write!(f, "abort probe {} failed: {}", t.probe, t.why),
            Abort::NotReady { step, ready } => write!(
                f,
                "step {step}'s command exited without printing a line matching /{ready}/ \
                 (its `ready`), so what follows it never started"
            ),
            Abort::StepTimeout { step, limit } => write!(
                f,
                "step {step} did not end within its timeout of {}",
                humantime::format_duration(*limit)
            ),
        }
    }
}

pub struct Live<'a> {
    plan: &'a Plan,
    pub world: World,
    pub journal: Journal,
    kmsg: Kmsg,
    /// Places kernel log lines on the run's clock.
    kernel_clock: KernelClock,
    step_calls: StepCalls,
    workloads: Vec<Running>,
    /// Faults in force, and the order they heal in.
    active: InForce<Active>,
    execs: Vec<(usize, ExecChild)>,
    /// Exec steps whose command has not printed its `ready` line yet,
    /// with the pattern it is awaited by.
    awaiting_ready: Vec<(usize, &'a regex::Regex)>,
    /// Pause steps waiting for the operator.
    pauses: Vec<Waiting>,
    /// The timeline's zero on CLOCK_MONOTONIC.
    t0: u64,
    scratch: PathBuf,
    artifacts: Option<PathBuf>,
    /// mount_storm mount points, recorded before the children mount them.
    storm_mounts: Vec<(PathBuf, EntryId)>,
    ledger: Option<Ledger>,
    pub observer: Option<Box<dyn Observer>>,
}

impl<'a> Live<'a> {
    pub fn new(
        plan: &'a Plan,
        journal: Journal,
        kmsg: Kmsg,
        t0: u64,
        scratch: PathBuf,
        artifacts: Option<PathBuf>,
    ) -> Live<'a> {
        let mut live = Live {
            plan,
            world: World::default(),
            journal,
            kmsg,
            kernel_clock: KernelClock::default(),
            step_calls: StepCalls::default(),
            workloads: Vec::new(),
            active: InForce::default(),
            execs: Vec::new(),
            awaiting_ready: Vec::new(),
            pauses: Vec::new(),
            t0,
            scratch,
            artifacts,
            storm_mounts: Vec::new(),
            ledger: None,
            observer: None,
        };
        // The first bridge between the kernel log's clock and ours, before
        // setup logs anything worth placing.
        let begins = format!("stackquake[{}]: run begins", live.journal.run_id);
        live.write_kmsg(&begins);
        live
    }

    pub fn into_parts(self) -> (World, Journal, Option<Box<dyn Observer>>) {
        (self.world, self.journal, self.observer)
    }

    /// Records why the run stopped early.
    pub fn aborted(&mut self, why: &Abort) {
        let t_ns = self.now();
        self.journal.push(Event::Aborted {
            reason: why.to_string(),
            t_ns,
        });
    }

    pub fn now(&self) -> u64 {
        monotonic_ns().saturating_sub(self.t0)
    }

    /// Starts the in-process servers' captures, beside the step artifacts.
    pub fn start_captures(&self) {
        if let Some(dir) = &self.artifacts {
            super::rpc_calls::start_captures(&self.world, dir);
        }
    }

    pub fn start_workloads(&mut self, ledger: &Ledger) -> Result<(), WorkloadsError> {
        self.ledger = Some(ledger.clone());
        for w in &self.plan.workloads {
            let storm = w.mount.as_ref().map(|m| self.storm(m, &w.id, w.parallel));
            let spec = Spec {
                id: w.id.clone(),
                op: w.op,
                path: w
                    .path
                    .as_ref()
                    .map(|p| self.world.path(p))
                    .unwrap_or_default(),
                every_ms: w.every.as_millis() as u64,
                fsync: w.fsync,
                record_size: w.record_size as usize,
                count: w.count,
                lock: w.lock,
                hold_ms: w.hold.as_millis() as u64,
                command: w.command.clone(),
                storm: storm.transpose()?,
                hold_open: w.hold_open,
                root: self.world.root.clone(),
            };
            if let Some(storm) = &spec.storm {
                // Ledgered before the child can mount: a SIGKILL mid-storm
                // leaves mounts that cleanup must find.
                for target in storm.targets() {
                    let entry = ledger.record(LedgerObject::Mount {
                        target: target.clone(),
                    })?;
                    self.storm_mounts.push((target, entry));
                }
            }
            let ns = self.world.place(&w.host);
            let running = workloads::spawn(&spec, ns, w.deadline, ledger)?;
            self.workloads.push(running);
        }
        // All start together once each has prepared; one that cannot
        // prepare within its deadline starts late rather than holding the
        // others back for ever.
        let spawned = Instant::now();
        for (running, w) in self.workloads.iter_mut().zip(&self.plan.workloads) {
            if !running.await_ready(spawned + w.deadline) {
                tracing::warn!(
                    "workload {} not ready after {:?}; starting the others",
                    running.id,
                    w.deadline
                );
            }
        }
        self.release_workloads(None);
        Ok(())
    }

    /// Lets the workloads whose `start` is `step` (None: the timeline's
    /// start) begin their ops.
    fn release_workloads(&mut self, step: Option<&str>) {
        for running in &mut self.workloads {
            let w = self.plan.workload(&running.id).expect("planned workload");
            if w.start.as_deref() == step {
                running.go();
            }
        }
    }

    /// Stops the workloads whose `stop` is `step`, after collecting what
    /// they reported.
    fn stop_workloads(&mut self, step: &str) {
        self.pump();
        for running in &mut self.workloads {
            let w = self.plan.workload(&running.id).expect("planned workload");
            if w.stop.as_deref() == Some(step) {
                running.terminate();
            }
        }
    }

    /// What a mount_storm workload mounts: the same source, type and options
    /// as the world's mount `id`, at directories in the scratch area.
    fn storm(&self, id: &str, workload: &str, parallel: u32) -> Result<Storm, WorkloadsError> {
        let (source, fstype, data) =
            self.world
                .mount_source(id)
                .ok_or_else(|| WorkloadsError::NotMounted {
                    workload: workload.to_string(),
                    mount: id.to_string(),
                })?;
        Ok(Storm {
            source,
            fstype,
            data,
            dir: self.scratch.join(format!("storm-{workload}")),
            parallel,
        })
    }

    /// Reads what workloads and the kernel reported since the last pump.
    fn pump(&mut self) {
        let now = monotonic_ns();
        for w in &mut self.workloads {
            w.pump(self.t0, now, &mut self.journal.events);
        }
        let records = self.kmsg.read_available();
        let logged = self.kernel_clock.place(&records);
        for (r, logged) in records.into_iter().zip(logged) {
            self.journal.push(Event::Kmsg {
                seq: r.seq,
                level: r.level,
                text: r.text,
                t_ns: logged.map(|mono| mono.saturating_sub(self.t0)),
            });
        }
    }

    /// Pumps, and stops on a signal (the scheduler owns the timeout).
    fn check(&mut self) -> Result<(), Abort> {
        self.pump();
        self.show_progress(true);
        if crate::sys::termination_requested() {
            return Err(Abort::Signal);
        }
        Ok(())
    }

    /// Shows new journal events (and a spinner frame while waiting).
    fn show_progress(&mut self, waiting: bool) {
        let now = self.now();
        if let Some(o) = &mut self.observer {
            o.catch_up(&self.journal.events);
            if waiting {
                o.waiting(now);
            } else {
                o.finished();
            }
        }
    }

    /// Waits `d` while pumping; stops early on a signal.
    fn wait(&mut self, d: Duration) -> Result<(), Abort> {
        let until = monotonic_ns() + d.as_nanos() as u64;
        loop {
            self.check()?;
            let now = monotonic_ns();
            if now >= until {
                return Ok(());
            }
            std::thread::sleep(TICK.min(Duration::from_nanos(until - now)));
        }
    }

    fn marker(&mut self, step: &str, edge: &str) {
        let text = Journal::marker(&self.journal.run_id, step, edge);
        self.write_kmsg(&text);
    }

    /// Writes one of our lines into the kernel log; each also bridges the
    /// log's clock to ours.
    fn write_kmsg(&mut self, text: &str) {
        let before = monotonic_ns();
        match crate::observe::write_marker(text) {
            Ok(()) => self.kernel_clock.wrote(text, before, monotonic_ns()),
            Err(e) => tracing::warn!("cannot write kernel log marker: {e}"),
        }
    }

    /// Runs the timeline with the abort probes watching it; they stop
    /// with it.
    pub fn timeline(&mut self, ledger: &Ledger) -> Result<(), Abort> {
        let mut probes = Probes::new(&self.plan.abort, self.now());
        let result = self.steps(ledger, &mut probes);
        probes.stop(self.now());
        result
    }

    /// The first probe that failed, if one did: recorded, and every fault
    /// healed at once (the run then ends as after any abort).
    fn watch(&mut self, probes: &mut Probes, ledger: &Ledger) -> Result<(), Abort> {
        let now = self.now();
        let spawning = Spawning {
            world: &self.world,
            scratch: &self.scratch,
            ledger,
        };
        let Some(tripped) = probes.poll(
            now,
            self.t0,
            &spawning,
            &self.journal.events,
            &self.workloads,
        ) else {
            return Ok(());
        };
        self.journal.push(Event::ProbeFailed {
            probe: tripped.probe.clone(),
            reason: tripped.why.clone(),
            t_ns: now,
        });
        self.heal_all_at_once();
        Err(Abort::Probe(tripped))
    }

    fn steps(&mut self, ledger: &Ledger, probes: &mut Probes) -> Result<(), Abort> {
        let timeline = Timeline::resolve(self.plan);
        let mut schedule = Scheduler::new(&timeline, self.plan.timeout);
        loop {
            self.check()?;
            self.watch(probes, ledger)?;
            self.readied();
            for i in self.exited_execs()? {
                schedule.event_ended(i);
            }
            for i in self.confirmed_pauses() {
                schedule.event_ended(i);
            }
            // Carry out whatever is due, repeatedly, so a chain of steps
            // does not lose a tick at each link.
            while let Some(due) = schedule.due(self.now()) {
                match due {
                    Due::Begin(_) => {
                        let now = self.now();
                        let due = schedule.begins_due(now);
                        let (faults, others): (Vec<usize>, Vec<usize>) =
                            due.into_iter().partition(|&i| {
                                matches!(timeline.steps[i].step.action, Action::Fault { .. })
                            });
                        // A wait or a command counts from when it really
                        // began (a step `timeout` bounds the command's run).
                        for i in others {
                            self.begin(i, timeline.steps[i].step, ledger)?;
                            schedule.began(i, self.now());
                        }
                        // A fault's `for:` counts from when it is in force:
                        // counted from its plan, a slow injection (nft took
                        // 6 s in a loaded emulated guest) cut the fault short,
                        // and a step the engine reached late was healed the
                        // moment it went in. Faults injected together heal
                        // together.
                        if !faults.is_empty() {
                            let steps: Vec<&Step> =
                                faults.iter().map(|&i| timeline.steps[i].step).collect();
                            self.inject_together(&steps)?;
                            let in_force = self.now();
                            for i in faults {
                                schedule.began(i, in_force);
                            }
                        }
                    }
                    Due::End(_) => {
                        let ends = schedule.ends_due(self.now());
                        let healing: Vec<&Step> = ends
                            .iter()
                            .map(|&i| timeline.steps[i].step)
                            .filter(|step| {
                                matches!(
                                    step.action,
                                    Action::Fault {
                                        heal_after: Some(_),
                                        ..
                                    }
                                )
                            })
                            .collect();
                        self.heal_together(&healing);
                        self.pump();
                        for i in ends {
                            let step = timeline.steps[i].step;
                            let t = self.end(&step.id);
                            self.stop_workloads(&step.id);
                            schedule.ended(i, t);
                            self.observe(&step.id, schedule.all_done());
                        }
                    }
                    Due::ScenarioTimeout => return Err(Abort::Timeout),
                    Due::TimedOut(i) => {
                        let step = timeline.steps[i].step;
                        let limit = step.timeout.expect("only a step with a timeout times out");
                        let t_ns = self.now();
                        self.journal.push(Event::StepTimedOut {
                            step: step.id.clone(),
                            limit_ns: limit.as_nanos() as u64,
                            t_ns,
                        });
                        return Err(Abort::StepTimeout {
                            step: step.id.clone(),
                            limit,
                        });
                    }
                }
            }
            if schedule.all_done() {
                return Ok(());
            }
            // Wake for the next step boundary if it comes before the tick.
            let now = self.now();
            let nap = schedule
                .next_wakeup(now)
                .map_or(TICK, |t| TICK.min(Duration::from_nanos(t - now)));
            std::thread::sleep(nap);
        }
    }

    /// Marks the beginning of a step.
    fn mark_begin(&mut self, id: &str) {
        self.marker(id, "begin");
        let t = self.now();
        self.journal.push(Event::StepBegin {
            step: id.to_string(),
            t_ns: t,
        });
        tracing::info!(step = %id, "begin");
        self.step_calls.began(id, &self.world);
        if let Some(dir) = &self.artifacts {
            super::artifacts::step_began(dir, id);
        }
    }

    /// Begins step `i` (not a fault: see [`inject_together`](Self::inject_together)):
    /// marks it and spawns its command, if it has one.
    fn begin(&mut self, i: usize, step: &'a Step, ledger: &Ledger) -> Result<(), Abort> {
        let id = step.id.clone();
        self.mark_begin(&id);
        match &step.action {
            Action::Exec {
                host,
                command,
                ready,
            } => {
                let ns = self.world.place(host);
                let out = self.scratch.join(format!("exec-{id}.out"));
                let child = exec::spawn(&id, ns, command, &self.world.root, out, ledger)
                    .map_err(Abort::Exec)?;
                self.execs.push((i, child));
                if let Some(ready) = ready {
                    // Its workloads go once it says it is ready.
                    self.awaiting_ready.push((i, ready));
                    return Ok(());
                }
            }
            Action::Pause { message } => {
                // Beside the step artifacts, where the operator (or CI)
                // finds the run's output; the scratch area without them.
                let dir = self.artifacts.as_ref().unwrap_or(&self.scratch);
                self.pauses.push(Waiting::begin(i, &id, message, dir));
            }
            _ => {}
        }
        self.release_workloads(Some(&id));
        Ok(())
    }

    /// Begins fault steps that are due at the same moment (a `parallel`
    /// group's members) and injects their faults at once, one thread each:
    /// one after another, each `ip`/`nft` call would push the next fault
    /// later by its own run time (issue 13 measured 0.26 s between two).
    fn inject_together(&mut self, steps: &[&Step]) -> Result<(), Abort> {
        for step in steps {
            self.mark_begin(&step.id);
        }
        let world = &self.world;
        let t0 = self.t0;
        let injected: Vec<(Result<Active, fault::FaultError>, u64)> = std::thread::scope(|s| {
            let threads: Vec<_> = steps
                .iter()
                .map(|step| {
                    let Action::Fault {
                        fault, heal_after, ..
                    } = &step.action
                    else {
                        unreachable!("only fault steps are injected")
                    };
                    s.spawn(move || {
                        let r = fault::inject_for(fault, *heal_after, world);
                        (r, monotonic_ns().saturating_sub(t0))
                    })
                })
                .collect();
            threads
                .into_iter()
                .map(|t| t.join().expect("fault injection panicked"))
                .collect()
        });
        // Every fault that went in is recorded (and so healed) before a
        // failed one aborts the run.
        let mut failed = None;
        for (step, (r, t_ns)) in steps.iter().zip(injected) {
            let Action::Fault { fault, kept, .. } = &step.action else {
                continue;
            };
            match r {
                Ok(active) => {
                    self.journal.push(Event::FaultInjected {
                        step: step.id.clone(),
                        fault: fault.kind().into(),
                        t_ns,
                    });
                    // A kept fault is never healed: its guard stays in the
                    // world (or its rule in its namespace) until teardown.
                    if !kept {
                        self.active.injected(&step.id, active);
                    }
                }
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        // Workloads that start with these steps go once the faults are in
        // force: a mount started into a firewall must meet the rule.
        for step in steps {
            self.release_workloads(Some(&step.id));
        }
        failed.map_or(Ok(()), |e| Err(Abort::Fault(e)))
    }

    /// Records the exec steps whose command printed its `ready` line since
    /// the last look, and lets their `start` workloads go.
    fn readied(&mut self) {
        let plan = self.plan;
        let execs = &self.execs;
        let mut printed = Vec::new();
        self.awaiting_ready.retain(|&(i, ready)| {
            let said = execs
                .iter()
                .any(|(j, child)| *j == i && child.printed(ready));
            if said {
                printed.push(i);
            }
            !said
        });
        for i in printed {
            let step = &plan.steps[i].id;
            let t_ns = self.now();
            self.journal.push(Event::Ready {
                step: step.clone(),
                t_ns,
            });
            tracing::info!(step = %step, "ready");
            self.release_workloads(Some(step));
        }
    }

    /// The exec steps whose command ended since the last look, with their
    /// exit recorded; an end before the `ready` line stops the run.
    fn exited_execs(&mut self) -> Result<Vec<usize>, Abort> {
        let now = self.now();
        let mut exited = Vec::new();
        let mut k = 0;
        while k < self.execs.len() {
            match self.execs[k].1.poll(now) {
                Some(event) => {
                    // Its last words may be the ready line.
                    self.readied();
                    self.journal.push(event);
                    let (i, _) = self.execs.remove(k);
                    if let Some((_, ready)) = self.awaiting_ready.iter().find(|(j, _)| *j == i) {
                        return Err(Abort::NotReady {
                            step: self.plan.steps[i].id.clone(),
                            ready: ready.to_string(),
                        });
                    }
                    exited.push(i);
                }
                None => k += 1,
            }
        }
        Ok(exited)
    }

    /// The pause steps confirmed since the last look, with how recorded.
    fn confirmed_pauses(&mut self) -> Vec<usize> {
        if self.pauses.is_empty() {
            return Vec::new();
        }
        // One confirmation goes to every pause waiting when it came.
        let Some(by) = self.pauses[0].confirmed() else {
            return Vec::new();
        };
        let t_ns = self.now();
        let mut confirmed = Vec::new();
        for waiting in std::mem::take(&mut self.pauses) {
            let step = self.plan.steps[waiting.step].id.clone();
            self.journal.push(Event::Continued {
                step,
                by: by.clone(),
                t_ns,
            });
            confirmed.push(waiting.step);
            waiting.end();
        }
        confirmed
    }

    /// Heals every fault still in force at once, one thread each.
    fn heal_all_at_once(&mut self) {
        let mut taken = Vec::new();
        while let Some(fault) = self.active.last() {
            taken.push(fault);
        }
        self.heal_at_once(taken);
    }

    /// Marks the end of a step; returns its run time.
    fn end(&mut self, id: &str) -> u64 {
        self.marker(id, "end");
        let t = self.now();
        self.journal.push(Event::StepEnd {
            step: id.to_string(),
            t_ns: t,
        });
        for calls in self.step_calls.ended(id, &self.world, t) {
            self.journal.push(calls);
        }
        tracing::info!(step = %id, "end");
        t
    }

    /// Heals the faults of `steps`, whose `for:` ends at the same moment,
    /// at once, one thread each (as [`inject_together`](Self::inject_together)).
    fn heal_together(&mut self, steps: &[&Step]) {
        let taken: Vec<(String, Active)> = steps
            .iter()
            .filter_map(|step| self.active.take(&step.id))
            .collect();
        self.heal_at_once(taken);
    }

    fn heal_at_once(&mut self, taken: Vec<(String, Active)>) {
        let world = &self.world;
        let t0 = self.t0;
        let healed: Vec<Event> = std::thread::scope(|s| {
            let threads: Vec<_> = taken
                .into_iter()
                .map(|(step, active)| s.spawn(move || heal(world, t0, step, active)))
                .collect();
            threads
                .into_iter()
                .map(|t| t.join().expect("fault heal panicked"))
                .collect()
        });
        self.journal.events.extend(healed);
    }

    /// Takes the state probes due when `step` ends.
    fn observe(&mut self, step: &str, last: bool) {
        for probe in expect::probes_at(self.plan, step, last) {
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
        if let Some(dir) = self.artifacts.clone() {
            super::artifacts::step_ended(&dir, step, &self.journal, &self.world);
        }
    }

    /// Heal every fault still active, kill commands still running, give
    /// workloads a grace period, stop them, collect the last reports and
    /// kernel lines, and read back the records `data` matchers check —
    /// before the heal instead with `data_check: before_heal`. The read
    /// back holds to the scenario timeout (a hard mount over a path the
    /// heal broke never answers, issue 13): past it, the run stops with
    /// the reason instead of waiting for ever.
    pub fn finish(&mut self) -> Option<Abort> {
        let mut late = None;
        if self.plan.data_check == DataCheck::BeforeHeal {
            self.pump();
            late = self.verify_data();
        }
        for waiting in std::mem::take(&mut self.pauses) {
            waiting.end();
        }
        self.stage("healing faults");
        while let Some((step, active)) = self.active.last() {
            let event = heal(&self.world, self.t0, step, active);
            self.journal.push(event);
        }
        for (_, child) in std::mem::take(&mut self.execs) {
            let t = self.now();
            if let Some(e) = child.kill(t) {
                self.journal.push(e);
            }
        }
        // The grace is for workloads to show how they recover; without any,
        // waiting would only delay the verdict (a second per scenario).
        if !self.workloads.is_empty() {
            self.stage("stopping workloads");
            let _ = self.wait(GRACE.min(self.time_left()));
        }
        self.pump();
        for w in std::mem::take(&mut self.workloads) {
            let id = w.id.clone();
            let error = w.stop(GRACE);
            self.journal.push(Event::Teardown {
                what: format!("stop workload {id}"),
                error,
            });
        }
        self.kill_leftover_processes();
        self.unmount_storms();
        self.pump();
        if self.plan.data_check == DataCheck::AfterHeal {
            late = self.verify_data();
        }
        self.show_progress(false);
        late
    }

    /// What is left of the scenario timeout (counted from before setup).
    fn time_left(&self) -> Duration {
        self.plan
            .timeout
            .saturating_sub(Duration::from_nanos(self.now()))
    }

    /// Tells the observer what the run does next, so that a run killed
    /// from outside (a guest past its limit) still says where it stopped.
    pub fn stage(&mut self, what: &str) {
        if let Some(o) = &mut self.observer {
            o.stage(&self.journal, what);
        }
    }

    /// Grandchildren of workloads and exec steps (`flock … sleep 2`) outlive
    /// the children we killed and would keep the mounts busy.
    fn kill_leftover_processes(&mut self) {
        let run = self.journal.run_id.clone();
        match crate::process::kill_run_processes(&run) {
            Ok(pids) => {
                for pid in pids {
                    self.journal.push(Event::Teardown {
                        what: format!("kill leftover process {pid}"),
                        error: None,
                    });
                }
            }
            Err(e) => self.journal.push(Event::Teardown {
                what: "kill leftover processes".into(),
                error: Some(e),
            }),
        }
    }

    /// A mount_storm child killed between mount and umount leaves mounts in
    /// the scratch area; detach them before anything removes directories.
    fn unmount_storms(&mut self) {
        for (target, entry) in std::mem::take(&mut self.storm_mounts) {
            // Peel stacked mounts too: a killed op may have mounted twice.
            while crate::sys::mountinfo::is_mount_point(&target) {
                if let Err(e) = nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH) {
                    self.journal.push(Event::Teardown {
                        what: format!("unmount storm mount {}", target.display()),
                        error: Some(e.to_string()),
                    });
                    break;
                }
            }
            if !crate::sys::mountinfo::is_mount_point(&target)
                && let Some(l) = &self.ledger
            {
                let _ = l.done(entry);
            }
        }
    }

    /// Reads every `data` workload's file back, each in a child process
    /// of its own (see `engine::verify`), waiting for them until the
    /// scenario timeout (at least [`VERIFY_FLOOR`]). A read that has not
    /// returned by then is recorded as such and its reader killed.
    fn verify_data(&mut self) -> Option<Abort> {
        let requests: Vec<Request> = self
            .plan
            .expect
            .iter()
            .filter_map(|e| match e {
                Expectation::Data { workload, .. } => Some(workload),
                _ => None,
            })
            .map(|workload| {
                let w = self.plan.workload(workload).expect("validated workload");
                Request {
                    path: w
                        .path
                        .as_ref()
                        .map(|p| self.world.path(p))
                        .unwrap_or_default(),
                    op: w.op,
                    workload: w.id.clone(),
                    record_size: w.record_size as usize,
                    acknowledged: self.acknowledged(&w.id),
                }
            })
            .collect();
        if requests.is_empty() {
            return None;
        }
        self.stage("verifying data");
        let readings: Vec<_> = requests
            .iter()
            .map(|r| verify::start(r, self.ledger.as_ref()))
            .collect();
        let until = Instant::now() + self.time_left().max(VERIFY_FLOOR);
        let mut hung = Vec::new();
        for (request, reading) in requests.into_iter().zip(readings) {
            let answer = match reading {
                Ok(reading) => reading.finish(until),
                Err(e) => Some(Err(e)),
            };
            let Request {
                workload,
                acknowledged,
                ..
            } = request;
            let acknowledged = acknowledged.len() as u64;
            let failed = |error: String| Event::Verified {
                workload: workload.clone(),
                acknowledged,
                intact: 0,
                missing: Vec::new(),
                corrupt: 0,
                error: Some(error),
            };
            let event = match answer {
                Some(Ok(v)) => Event::Verified {
                    workload: workload.clone(),
                    acknowledged: v.acknowledged,
                    intact: v.intact,
                    missing: v.missing.into_iter().take(20).collect(),
                    corrupt: v.corrupt,
                    error: None,
                },
                Some(Err(e)) => failed(e),
                None => {
                    hung.push(workload.clone());
                    failed(format!(
                        "reading the file back did not return within the scenario timeout ({})",
                        humantime::format_duration(self.plan.timeout)
                    ))
                }
            };
            self.journal.push(event);
        }
        (!hung.is_empty()).then_some(Abort::VerifyTimeout { workloads: hung })
    }

    /// The records of `workload` whose op succeeded.
    fn acknowledged(&self, workload: &str) -> Vec<u64> {
        self.journal
            .events
            .iter()
            .filter_map(|ev| match ev {
                Event::Op {
                    workload: id,
                    seq,
                    errno: None,
                    ..
                } if id == workload => Some(*seq),
                _ => None,
            })
            .collect()
    }
}

/// Heals one fault, reading its counters first (healing removes the rule
/// or qdisc that holds them); the event says when it was healed.
fn heal(world: &World, t0: u64, step: String, active: Active) -> Event {
    let (matched, uncounted) = match fault::fired(&active, world) {
        Some(Ok(n)) => (Some(n), None),
        Some(Err(e)) => (None, Some(e.to_string())),
        None => (None, None),
    };
    let error = fault::heal(&active, world).err().map(|e| e.to_string());
    Event::FaultHealed {
        step,
        fault: active.kind().to_string(),
        t_ns: monotonic_ns().saturating_sub(t0),
        error,
        unit: matched.map(|_| active.unit().to_string()),
        matched,
        uncounted,
    }
}
