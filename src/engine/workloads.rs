//! Workload children as the engine sees them: spawned inside their host's
//! netns, read line by line on reader threads, watched against deadlines,
//! and stopped without ever blocking on a task stuck in the kernel.

use crate::journal::{Event, MountCall};
use crate::ledger::Ledger;
use crate::net::Netns;
use crate::process::Recorded;
use crate::workload::{Report, Spec};
use std::io::BufRead;
use std::process::{ChildStdin, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

pub struct Running {
    pub id: String,
    child: Recorded,
    /// Closed to tell the child to start its ops (see `Report::Ready`).
    go: Option<ChildStdin>,
    reports: Receiver<Report>,
    deadline: Duration,
    /// The op in flight: seq, start, and whether it was already sampled.
    in_flight: Option<(u64, u64, bool)>,
    /// Sent SIGTERM at its `stop` step; reaped at the end of the run.
    terminated: bool,
    /// mount_storm: how many mounts an op makes, and the op in flight's
    /// mounts so far (see `Report::Mounted`).
    storm_parallel: u32,
    mounts: Vec<MountCall>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot start workload {id}: {source}")]
pub struct SpawnError {
    id: String,
    source: std::io::Error,
}

pub fn spawn(
    spec: &Spec,
    ns: Option<&Netns>,
    deadline: Duration,
    ledger: &Ledger,
) -> Result<Running, SpawnError> {
    let err = |source| SpawnError {
        id: spec.id.clone(),
        source,
    };
    let exe = std::env::current_exe().map_err(err)?;
    let json = serde_json::to_string(spec).expect("spec serializes");
    let mut cmd = crate::net::command_at(ns, &exe);
    cmd.arg("workload")
        .arg(json)
        // The go barrier: the child starts its ops when this pipe closes.
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    crate::process::tie_to_run(&mut cmd, ledger);
    let mut child =
        crate::process::spawn_recorded(&mut cmd, Some(ledger)).map_err(|e| match e {
            crate::process::SpawnError::Spawn { source, .. } => err(source),
            other => err(std::io::Error::other(other)),
        })?;
    let stdout = child.child.stdout.take().expect("stdout was piped");
    let go = child.child.stdin.take();
    let (tx, rx) = channel();
    let id = spec.id.clone();
    std::thread::Builder::new()
        .name(format!("sq-wl-{id}"))
        .spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str::<Report>(&line) {
                    Ok(r) => {
                        if tx.send(r).is_err() {
                            break;
                        }
                    }
                    Err(e) => tracing::warn!(workload = %id, "unreadable report {line:?}: {e}"),
                }
            }
        })
        .map_err(err)?;
    Ok(Running {
        id: spec.id.clone(),
        child,
        go,
        reports: rx,
        deadline,
        in_flight: None,
        terminated: false,
        storm_parallel: spec.storm.as_ref().map_or(0, |s| s.parallel),
        mounts: Vec::new(),
    })
}

impl Running {
    /// Waits until the child has prepared, or `until`; false if it has not
    /// (stuck preparing, or gone).
    pub fn await_ready(&mut self, until: Instant) -> bool {
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.reports.recv_timeout(left) {
                Ok(Report::Ready) => return true,
                // Nothing else comes before the go; ignore it if it does.
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return false,
            }
        }
    }

    /// The op in flight, if any: its seq and its start on CLOCK_MONOTONIC.
    pub fn op_in_flight(&self) -> Option<(u64, u64)> {
        self.in_flight.map(|(seq, start, _)| (seq, start))
    }

    /// Lets the child start its ops.
    pub fn go(&mut self) {
        self.go = None;
    }

    /// Asks the child to stop (SIGTERM) without waiting for it: the
    /// timeline goes on, and `stop` reaps it at the end of the run. An op
    /// the signal cuts short has no end and is not recorded.
    pub fn terminate(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        self.terminated = true;
    }

    /// Moves finished ops into events, and samples an op past its deadline
    /// once (an indeterminate op, not a failed one). `t0` is the timeline's
    /// start on CLOCK_MONOTONIC; event times are relative to it.
    pub fn pump(&mut self, t0: u64, now: u64, events: &mut Vec<Event>) {
        while let Ok(r) = self.reports.try_recv() {
            match r {
                Report::Ready => {}
                Report::Start { seq, mono_ns } => {
                    self.in_flight = Some((seq, mono_ns, false));
                    self.mounts = (0..self.storm_parallel)
                        .map(|index| MountCall {
                            index,
                            end_ns: None,
                            errno: None,
                        })
                        .collect();
                }
                Report::Mounted {
                    seq,
                    index,
                    mono_ns,
                    errno,
                } => {
                    if self.in_flight.is_some_and(|(s, ..)| s == seq)
                        && let Some(m) = self.mounts.get_mut(index as usize)
                    {
                        m.end_ns = Some(mono_ns.saturating_sub(t0));
                        m.errno = errno;
                    }
                }
                Report::End {
                    seq,
                    mono_ns,
                    errno,
                    stage,
                    exit_code,
                    held,
                } => {
                    let start = match self.in_flight.take() {
                        Some((s, start, _)) if s == seq => start,
                        _ => mono_ns,
                    };
                    events.push(Event::Op {
                        workload: self.id.clone(),
                        seq,
                        start_ns: start.saturating_sub(t0),
                        end_ns: mono_ns.saturating_sub(t0),
                        errno,
                        stage,
                        exit_code,
                        mounts: std::mem::take(&mut self.mounts),
                        hold: held.map(|(a, r)| crate::journal::Hold {
                            acquired_ns: a.saturating_sub(t0),
                            released_ns: r.saturating_sub(t0),
                        }),
                    });
                }
            }
        }
        // A terminated child that is gone has no op in flight; one stuck in
        // the kernel past SIGTERM is still sampled.
        if self.terminated && matches!(self.child.child.try_wait(), Ok(Some(_))) {
            self.in_flight = None;
        }
        if let Some((seq, start, sampled)) = &mut self.in_flight
            && !*sampled
            && now.saturating_sub(*start) > self.deadline.as_nanos() as u64
        {
            *sampled = true;
            let sample = crate::observe::sample_task(self.child.id());
            let (state, wchan, stack) = match sample {
                Ok(s) => (s.state.to_string(), s.wchan, s.stack),
                Err(e) => ("?".into(), format!("unavailable: {e}"), None),
            };
            events.push(Event::Indeterminate {
                workload: self.id.clone(),
                seq: *seq,
                start_ns: start.saturating_sub(t0),
                t_ns: now.saturating_sub(t0),
                state,
                wchan,
                stack,
                mounts: self.mounts.clone(),
            });
        }
    }

    /// SIGTERM, then SIGKILL; never waits on a task that will not die (a
    /// D-state op ends only when the kernel lets it). Returns an error text if
    /// the child could not be reaped in time.
    pub fn stop(mut self, grace: Duration) -> Option<String> {
        use nix::sys::signal::{Signal, kill};
        // Reaped already (stopped at its step): its pid may be another's now.
        if let Ok(Some(_)) = self.child.child.try_wait() {
            self.child.reaped();
            return None;
        }
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        // SIGKILL through the removal cleanup uses; a zombie then is reaped
        // at once.
        if self.reaped_within(grace)
            || (self.child.kill(Duration::from_secs(5)).is_ok()
                && self.reaped_within(Duration::from_secs(1)))
        {
            self.child.reaped();
            return None;
        }
        let state = crate::observe::sample_task(self.child.id())
            .map(|s| format!("state {} in {}", s.state, s.wchan))
            .unwrap_or_default();
        // Reap it whenever the kernel releases it, on a thread nobody joins.
        std::thread::spawn(move || self.child.child.wait());
        Some(format!(
            "workload did not exit after SIGKILL ({state}); left to the kernel"
        ))
    }

    fn reaped_within(&mut self, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}
