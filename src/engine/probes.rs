//! Abort probes while the timeline runs. `exec` and `readable` probes are
//! child processes, started every `every` (never two of one probe at once)
//! and killed at `within`: a read of a hard NFS mount may never return, and
//! must not hold the engine. Workload probes look at the ops the workload
//! reported and at the one in flight. The first probe that fails trips.

use super::exec::{self, ExecChild, Exit};
use super::workloads::Running;
use super::world::World;
use crate::journal::Event;
use crate::ledger::Ledger;
use crate::plan::{AbortProbe, ProbeCheck};
use std::path::Path;
use std::time::Duration;

/// The most of a file a `readable` probe reads: its first bytes prove the
/// file answers; reading all of a database image every second would be load.
const READ_BYTES: usize = 64 * 1024;

/// A probe that failed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tripped {
    pub probe: String,
    pub why: String,
}

/// Where probe children run: the world's namespaces and root, the run's
/// scratch area for their output, and its ledger.
pub struct Spawning<'c> {
    pub world: &'c World,
    pub scratch: &'c Path,
    pub ledger: &'c Ledger,
}

pub struct Probes<'p> {
    probes: Vec<State<'p>>,
}

struct State<'p> {
    probe: &'p AbortProbe,
    /// Run time (ns) at which it runs next.
    next_ns: u64,
    /// The child running now, and the run time it began.
    child: Option<(ExecChild, u64)>,
}

impl<'p> Probes<'p> {
    /// Probes that start at run time `now`.
    pub fn new(probes: &'p [AbortProbe], now: u64) -> Probes<'p> {
        Probes {
            probes: probes
                .iter()
                .map(|probe| State {
                    probe,
                    next_ns: now,
                    child: None,
                })
                .collect(),
        }
    }

    /// Starts the probes that are due, collects those that ended, and
    /// returns the first failure. `t0`: the run's zero on CLOCK_MONOTONIC.
    pub fn poll(
        &mut self,
        now: u64,
        t0: u64,
        spawning: &Spawning,
        events: &[Event],
        workloads: &[Running],
    ) -> Option<Tripped> {
        for state in &mut self.probes {
            let probe = state.probe;
            let tripped = |why: String| Tripped {
                probe: probe.id.clone(),
                why,
            };
            if let ProbeCheck::OpLatency { workload } = &probe.check {
                if let Some(why) = op_latency(workload, probe.within, now, t0, events, workloads) {
                    return Some(tripped(why));
                }
                continue;
            }
            if let Some((child, began)) = &mut state.child {
                let began = *began;
                if let Some(exit) = child.try_exit() {
                    state.child = None;
                    if let Some(why) = failed(&probe.check, &exit) {
                        return Some(tripped(why));
                    }
                } else if now.saturating_sub(began) > probe.within.as_nanos() as u64 {
                    let (child, _) = state.child.take().expect("a running probe");
                    let _ = child.kill(now);
                    return Some(tripped(format!(
                        "{} did not answer within {}",
                        what(&probe.check),
                        humantime::format_duration(probe.within)
                    )));
                }
            }
            if state.child.is_none() && now >= state.next_ns {
                state.next_ns = now + probe.every.as_nanos() as u64;
                match start(probe, spawning) {
                    Ok(child) => state.child = Some((child, now)),
                    Err(e) => return Some(tripped(format!("cannot run it: {e}"))),
                }
            }
        }
        None
    }

    /// Kills the probes still running (the timeline is over).
    pub fn stop(self, now: u64) {
        for state in self.probes {
            if let Some((child, _)) = state.child {
                let _ = child.kill(now);
            }
        }
    }
}

fn start(probe: &AbortProbe, spawning: &Spawning) -> Result<ExecChild, exec::ExecError> {
    let Spawning {
        world,
        scratch,
        ledger,
    } = spawning;
    let out = scratch.join(format!("probe-{}.out", probe.id));
    match &probe.check {
        ProbeCheck::Command { host, command } => exec::spawn(
            &probe.id,
            world.place(host),
            command,
            &world.root,
            out,
            ledger,
        ),
        ProbeCheck::Readable { path } => {
            let exe = std::env::current_exe()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "/proc/self/exe".into());
            let file = world.path(path).to_string_lossy().into_owned();
            let command = [exe, "read-probe".into(), file];
            exec::spawn(&probe.id, None, &command, &world.root, out, ledger)
        }
        ProbeCheck::OpLatency { .. } => unreachable!("workload probes run no child"),
    }
}

/// What the probe checks, as its failure names it.
fn what(check: &ProbeCheck) -> String {
    match check {
        ProbeCheck::Command { command, .. } => format!("`{}`", command.join(" ")),
        ProbeCheck::Readable { path } => format!("reading {path}"),
        ProbeCheck::OpLatency { workload } => format!("workload {workload}"),
    }
}

/// Why an ended probe failed, if it did.
fn failed(check: &ProbeCheck, exit: &Exit) -> Option<String> {
    if exit.code == Some(0) {
        return None;
    }
    let how = match (exit.code, exit.signal) {
        (Some(c), _) => format!("exited {c}"),
        (None, Some(s)) => format!("was killed by signal {s}"),
        _ => "ended".into(),
    };
    let said = exit.output.trim();
    Some(match (check, said.is_empty()) {
        (ProbeCheck::Readable { path }, false) => format!("{path} cannot be read: {said}"),
        (_, true) => format!("{} {how}", what(check)),
        (_, false) => format!("{} {how}: {said}", what(check)),
    })
}

/// An op of `workload` that took, or has been taking, longer than `within`.
fn op_latency(
    workload: &str,
    within: Duration,
    now: u64,
    t0: u64,
    events: &[Event],
    workloads: &[Running],
) -> Option<String> {
    let bound = within.as_nanos() as u64;
    let secs = |ns: u64| format!("{:.1}s", ns as f64 / 1e9);
    let limit = humantime::format_duration(within);
    if let Some((seq, start_ns, end_ns)) = events.iter().find_map(|e| match e {
        Event::Op {
            workload: w,
            seq,
            start_ns,
            end_ns,
            ..
        } if w == workload && end_ns.saturating_sub(*start_ns) > bound => {
            Some((*seq, *start_ns, *end_ns))
        }
        _ => None,
    }) {
        return Some(format!(
            "op {seq} of workload {workload} took {} (bound {limit})",
            secs(end_ns - start_ns)
        ));
    }
    let running = workloads.iter().find(|r| r.id == workload)?;
    let (seq, start_mono) = running.op_in_flight()?;
    let taken = (now + t0).saturating_sub(start_mono);
    (taken > bound).then(|| {
        format!(
            "op {seq} of workload {workload} has not returned after {} (bound {limit})",
            secs(taken)
        )
    })
}

/// `stackquake read-probe FILE`: reads the first bytes of FILE; exits 0 if
/// it could, else says why (the errno's name) and exits 1.
pub fn read_probe(path: &Path) -> Result<(), String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| errno_text("open", &e))?;
    let mut buf = vec![0u8; READ_BYTES];
    file.read(&mut buf).map_err(|e| errno_text("read", &e))?;
    Ok(())
}

fn errno_text(call: &str, e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => format!("{} in {call}", crate::errno::name(n)),
        None => format!("{e} in {call}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(workload: &str, seq: u64, start_ns: u64, end_ns: u64) -> Event {
        Event::Op {
            workload: workload.into(),
            seq,
            start_ns,
            end_ns,
            errno: None,
            stage: None,
            exit_code: None,
            mounts: Vec::new(),
            hold: None,
        }
    }

    #[test]
    fn a_finished_op_longer_than_the_bound_trips_the_workload_probe() {
        let s = 1_000_000_000;
        let events = [
            op("writer", 0, 0, s / 10),
            op("reader", 1, s, 30 * s),
            op("writer", 1, s, 4 * s),
        ];
        let within = Duration::from_secs(2);
        let why = op_latency("writer", within, 5 * s, 0, &events, &[]).unwrap();
        assert_eq!(why, "op 1 of workload writer took 3.0s (bound 2s)");
        // The other workload's long op is not this probe's; a bound above
        // the longest op holds.
        assert_eq!(
            op_latency("writer", Duration::from_secs(3), 5 * s, 0, &events, &[]),
            None
        );
    }

    #[test]
    fn a_probe_fails_on_a_non_zero_exit_or_a_signal_and_says_what_it_said() {
        let cmd = ProbeCheck::Command {
            host: "client".into(),
            command: vec!["curl".into(), "-fs".into(), "http://app/".into()],
        };
        let exit = |code, signal, output: &str| Exit {
            code,
            signal,
            output: output.into(),
        };
        assert_eq!(failed(&cmd, &exit(Some(0), None, "ok")), None);
        assert_eq!(
            failed(&cmd, &exit(Some(7), None, "refused\n")).unwrap(),
            "`curl -fs http://app/` exited 7: refused"
        );
        assert_eq!(
            failed(&cmd, &exit(None, Some(9), "")).unwrap(),
            "`curl -fs http://app/` was killed by signal 9"
        );
        let read = ProbeCheck::Readable {
            path: "/mnt/share/db".into(),
        };
        assert_eq!(
            failed(&read, &exit(Some(1), None, "EIO in read")).unwrap(),
            "/mnt/share/db cannot be read: EIO in read"
        );
    }

    #[test]
    fn read_probe_reads_a_file_and_names_the_errno_of_one_it_cannot() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"data").unwrap();
        assert_eq!(read_probe(&file), Ok(()));
        assert_eq!(
            read_probe(&dir.path().join("missing")),
            Err("ENOENT in open".into())
        );
        assert_eq!(read_probe(dir.path()), Err("EISDIR in read".into()));
    }
}
