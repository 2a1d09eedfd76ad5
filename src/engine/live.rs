//! A run while its timeline executes: steps begun and ended on schedule,
//! faults injected and healed, workloads and the kernel log pumped every
//! tick, state probes taken as steps end.

use super::error::{StartError, WorkloadsError};
use super::exec::{self, ExecChild};
use super::in_force::InForce;
use super::schedule::{Due, Scheduler};
use super::timeline::Timeline;
use super::workloads::{self, Running};
use super::world::World;
use crate::block::FsState;
use crate::expect::{self, Probe};
use crate::fault::{self, Active};
use crate::journal::{Event, Journal, Observer};
use crate::ledger::{EntryId, Ledger, LedgerObject};
use crate::observe::Kmsg;
use crate::plan::{Action, Expectation, FsStateName, Plan, Step};
use crate::workload::{Spec, Storm, monotonic_ns};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How often the engine looks at workloads and the kernel log while waiting.
const TICK: Duration = Duration::from_millis(25);
/// How long workloads may keep running after the faults are healed.
const GRACE: Duration = Duration::from_secs(1);

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
}

impl std::fmt::Display for Abort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Abort::Setup(e) => write!(f, "{e}"),
            Abort::Timeout => f.write_str("scenario timeout reached"),
            Abort::Signal => f.write_str("interrupted by a signal"),
            Abort::Fault(e) => write!(f, "fault injection failed: {e}"),
            Abort::Exec(e) => write!(f, "{e}"),
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
    workloads: Vec<Running>,
    /// Faults in force, and the order they heal in.
    active: InForce<Active>,
    execs: Vec<(usize, ExecChild)>,
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
        Live {
            plan,
            world: World::default(),
            journal,
            kmsg,
            workloads: Vec::new(),
            active: InForce::default(),
            execs: Vec::new(),
            t0,
            scratch,
            artifacts,
            storm_mounts: Vec::new(),
            ledger: None,
            observer: None,
        }
    }

    pub fn into_parts(self) -> (World, Journal) {
        (self.world, self.journal)
    }

    pub fn now(&self) -> u64 {
        monotonic_ns().saturating_sub(self.t0)
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
            let ns = self.world.netns(&w.host).expect("validated host");
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
        // A workload with `start:` waits for its step (see `begin`).
        for (running, w) in self.workloads.iter_mut().zip(&self.plan.workloads) {
            if w.start.is_none() {
                running.go();
            }
        }
        Ok(())
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
        for r in self.kmsg.read_available() {
            self.journal.push(Event::Kmsg {
                seq: r.seq,
                level: r.level,
                text: r.text,
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
        if let Err(e) = crate::observe::write_marker(&text) {
            tracing::warn!("cannot write kernel log marker: {e}");
        }
    }

    pub fn timeline(&mut self, ledger: &Ledger) -> Result<(), Abort> {
        let timeline = Timeline::resolve(self.plan);
        let mut schedule = Scheduler::new(&timeline, self.plan.timeout);
        loop {
            self.check()?;
            for i in self.exited_execs() {
                schedule.exited(i);
            }
            // Carry out whatever is due, repeatedly, so a chain of steps
            // does not lose a tick at each link.
            while let Some(due) = schedule.due(self.now()) {
                match due {
                    Due::Begin(i) => {
                        self.begin(i, timeline.steps[i].step, ledger)?;
                        schedule.began(i, self.now());
                    }
                    Due::End(i) => {
                        let step = timeline.steps[i].step;
                        if let Action::Fault {
                            heal_after: Some(_),
                            ..
                        } = &step.action
                        {
                            self.heal_step(&step.id);
                        }
                        self.pump();
                        let t = self.end(&step.id);
                        schedule.ended(i, t);
                        self.observe(&step.id, schedule.all_done());
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

    /// Begins step `i`: marks it, injects its fault or spawns its command.
    fn begin(&mut self, i: usize, step: &Step, ledger: &Ledger) -> Result<(), Abort> {
        let id = step.id.clone();
        self.marker(&id, "begin");
        let t = self.now();
        self.journal.push(Event::StepBegin {
            step: id.clone(),
            t_ns: t,
        });
        tracing::info!(step = %id, "begin");
        if let Some(dir) = &self.artifacts {
            super::artifacts::step_began(dir, &id);
        }
        match &step.action {
            Action::Fault { fault, .. } => {
                let active = fault::inject(fault, &self.world).map_err(Abort::Fault)?;
                let t = self.now();
                self.journal.push(Event::FaultInjected {
                    step: id.clone(),
                    fault: fault.kind().into(),
                    t_ns: t,
                });
                self.active.injected(&id, active);
            }
            Action::Exec { host, command } => {
                let ns = self.world.netns(host).expect("validated host");
                let out = self.scratch.join(format!("exec-{id}.out"));
                let child = exec::spawn(&id, ns, command, &self.world.root, out, ledger)
                    .map_err(Abort::Exec)?;
                self.execs.push((i, child));
            }
            Action::Wait(_) | Action::Parallel(_) => {}
        }
        // Workloads that start with this step go once its fault is in
        // force: a mount started into a firewall must meet the rule.
        for (running, w) in self.workloads.iter_mut().zip(&self.plan.workloads) {
            if w.start.as_deref() == Some(id.as_str()) {
                running.go();
            }
        }
        Ok(())
    }

    /// The exec steps whose command ended since the last look, with their
    /// exit recorded.
    fn exited_execs(&mut self) -> Vec<usize> {
        let now = self.now();
        let mut exited = Vec::new();
        let mut k = 0;
        while k < self.execs.len() {
            match self.execs[k].1.poll(now) {
                Some(event) => {
                    self.journal.push(event);
                    exited.push(self.execs.remove(k).0);
                }
                None => k += 1,
            }
        }
        exited
    }

    /// Marks the end of a step; returns its run time.
    fn end(&mut self, id: &str) -> u64 {
        self.marker(id, "end");
        let t = self.now();
        self.journal.push(Event::StepEnd {
            step: id.to_string(),
            t_ns: t,
        });
        tracing::info!(step = %id, "end");
        t
    }

    fn heal_step(&mut self, step: &str) {
        if let Some((step, active)) = self.active.take(step) {
            self.heal(step, active);
        }
    }

    fn heal(&mut self, step: String, active: Active) {
        // Counters first: healing removes the rule or qdisc that holds them.
        let (matched, uncounted) = match fault::fired(&active, &self.world) {
            Some(Ok(n)) => (Some(n), None),
            Some(Err(e)) => (None, Some(e.to_string())),
            None => (None, None),
        };
        let error = fault::heal(&active, &self.world)
            .err()
            .map(|e| e.to_string());
        let fault = active.kind().to_string();
        let t = self.now();
        self.journal.push(Event::FaultHealed {
            step,
            fault,
            t_ns: t,
            error,
            unit: matched.map(|_| active.unit().to_string()),
            matched,
            uncounted,
        });
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
    /// kernel lines, and read back the records `data` matchers check.
    pub fn finish(&mut self) {
        while let Some((step, active)) = self.active.last() {
            self.heal(step, active);
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
            let _ = self.wait(GRACE);
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
        self.verify_data();
        self.show_progress(false);
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

    fn verify_data(&mut self) {
        for e in &self.plan.expect {
            let Expectation::Data { workload, .. } = e else {
                continue;
            };
            let w = self.plan.workload(workload).expect("validated workload");
            let acknowledged: Vec<u64> = self
                .journal
                .events
                .iter()
                .filter_map(|ev| match ev {
                    Event::Op {
                        workload: id,
                        seq,
                        errno: None,
                        ..
                    } if *id == w.id => Some(*seq),
                    _ => None,
                })
                .collect();
            let path = w
                .path
                .as_ref()
                .map(|p| self.world.path(p))
                .unwrap_or_default();
            let event = match crate::workload::verify::verify(
                &path,
                w.op,
                &w.id,
                w.record_size as usize,
                &acknowledged,
            ) {
                Ok(v) => Event::Verified {
                    workload: w.id.clone(),
                    acknowledged: v.acknowledged,
                    intact: v.intact,
                    missing: v.missing.into_iter().take(20).collect(),
                    corrupt: v.corrupt,
                    error: None,
                },
                Err(err) => Event::Verified {
                    workload: w.id.clone(),
                    acknowledged: acknowledged.len() as u64,
                    intact: 0,
                    missing: Vec::new(),
                    corrupt: 0,
                    error: Some(format!("read {}: {err}", path.display())),
                },
            };
            self.journal.push(event);
        }
    }
}
