//! Live progress for humans on stderr: one line per step begin/end, fault
//! injected/healed, workload error or hang, exec exit and abort, read from
//! the journal as it grows; a spinner line while the engine waits, drawn
//! only when stderr is a terminal (plain lines otherwise: no escape codes in
//! CI logs).

use crate::journal::{Event, Journal, Observer};
use crate::vm::{RELAY_PREFIX, STAGE_PREFIX};
use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

const SPINNER: [char; 4] = ['|', '/', '-', '\\'];
/// A spinner frame at most this often.
const FRAME: Duration = Duration::from_millis(120);

pub struct Progress<W: Write> {
    out: W,
    tty: bool,
    scenario: String,
    /// Events already shown.
    cursor: usize,
    /// Steps running now, for the spinner.
    running: Vec<String>,
    /// Per workload, the last error shown, so a storm of EIO is one line
    /// per change rather than one per op.
    last_error: BTreeMap<String, String>,
    frame: usize,
    last_frame: Option<Instant>,
    /// Whether a spinner line is on screen (it must be erased first).
    spinning: bool,
    last_t_ns: u64,
    /// Written before each line (empty but in the guest).
    prefix: &'static str,
}

impl Progress<std::io::Stderr> {
    /// Progress on stderr, spinning if stderr is a terminal.
    pub fn stderr(scenario: &str) -> Self {
        use std::io::IsTerminal;
        let err = std::io::stderr();
        let tty = err.is_terminal();
        Progress::new(err, tty, scenario)
    }

    /// Progress from inside the VM guest: plain lines on the console
    /// (a terminal, but nobody watches it directly), each behind
    /// [`RELAY_PREFIX`] for the host to pick out.
    pub fn relayed(scenario: &str) -> Self {
        let mut p = Progress::new(std::io::stderr(), false, scenario);
        p.prefix = RELAY_PREFIX;
        p
    }
}

impl<W: Write> Observer for Progress<W> {
    fn catch_up(&mut self, events: &[Event]) {
        Progress::catch_up(self, events);
    }

    fn waiting(&mut self, t_ns: u64) {
        self.tick(t_ns);
    }

    fn finished(&mut self) {
        self.erase();
    }

    fn stage(&mut self, journal: &Journal, what: &str) {
        self.catch_up(&journal.events);
        // In a guest, the host schedules the guest's QEMU by its stage.
        if self.prefix == RELAY_PREFIX {
            let _ = writeln!(self.out, "{STAGE_PREFIX}{what}");
        }
    }
}

impl<W: Write> Progress<W> {
    pub fn new(out: W, tty: bool, scenario: &str) -> Self {
        Progress {
            out,
            tty,
            scenario: scenario.into(),
            cursor: 0,
            running: Vec::new(),
            last_error: BTreeMap::new(),
            frame: 0,
            last_frame: None,
            spinning: false,
            last_t_ns: 0,
            prefix: "",
        }
    }

    pub fn into_inner(self) -> W {
        self.out
    }

    /// Shows the events appended since the last call.
    pub fn catch_up(&mut self, events: &[Event]) {
        let new = events.get(self.cursor..).unwrap_or_default();
        self.cursor = events.len();
        for e in new {
            if let Some(line) = self.line(e) {
                self.erase();
                let _ = writeln!(self.out, "{}{line}", self.prefix);
            }
        }
    }

    /// One spinner frame while waiting (nothing unless on a terminal).
    pub fn tick(&mut self, now_ns: u64) {
        if !self.tty || self.last_frame.is_some_and(|t| t.elapsed() < FRAME) {
            return;
        }
        self.last_frame = Some(Instant::now());
        self.frame = (self.frame + 1) % SPINNER.len();
        let what = if self.running.is_empty() {
            "waiting".to_string()
        } else {
            format!("in {}", self.running.join(", "))
        };
        let _ = write!(
            self.out,
            "\r\x1b[K{} {} {what} {}",
            SPINNER[self.frame],
            self.scenario,
            secs(now_ns)
        );
        let _ = self.out.flush();
        self.spinning = true;
    }

    /// Removes the spinner line, e.g. before the verdict is printed.
    pub fn erase(&mut self) {
        if self.spinning {
            let _ = write!(self.out, "\r\x1b[K");
            self.spinning = false;
        }
    }

    fn line(&mut self, e: &Event) -> Option<String> {
        let at = |t: u64| format!("{:>8}", secs(t));
        let text = match e {
            Event::StepBegin { step, t_ns } => {
                self.running.push(step.clone());
                self.last_t_ns = *t_ns;
                format!("{} begin  {step}", at(*t_ns))
            }
            Event::StepEnd { step, t_ns } => {
                self.running.retain(|s| s != step);
                format!("{} end    {step}", at(*t_ns))
            }
            Event::FaultInjected { step, fault, t_ns } => {
                format!("{} inject {fault} ({step})", at(*t_ns))
            }
            Event::FaultHealed {
                step,
                fault,
                t_ns,
                error,
                matched,
                unit,
                uncounted,
            } => {
                // nfs.restart, xfs.shutdown: the step's end is shown; "heal"
                // would claim an undo that never happens.
                if error.is_none() && crate::fault::WITHOUT_HEAL.contains(&fault.as_str()) {
                    return None;
                }
                let fired = match (matched, unit, uncounted) {
                    (Some(n), Some(unit), _) => format!(", fired on {n} {}", plural(*n, unit)),
                    (_, _, Some(why)) => format!(", fired count unreadable: {why}"),
                    _ => String::new(),
                };
                match error {
                    None => format!("{} heal   {fault} ({step}{fired})", at(*t_ns)),
                    Some(err) => {
                        format!("{} heal   {fault} ({step}{fired}) FAILED: {err}", at(*t_ns))
                    }
                }
            }
            Event::Op {
                workload,
                seq,
                end_ns,
                errno,
                stage,
                exit_code,
                ..
            } => {
                let what = match (errno, exit_code) {
                    (Some(n), _) => format!(
                        "{} in {}",
                        crate::errno::name(*n),
                        stage.as_deref().unwrap_or("op")
                    ),
                    (None, Some(c)) if *c != 0 => format!("exit code {c}"),
                    _ => {
                        self.last_error.remove(workload);
                        return None;
                    }
                };
                if self.last_error.get(workload) == Some(&what) {
                    return None;
                }
                self.last_error.insert(workload.clone(), what.clone());
                format!("{} error  {workload} op {seq}: {what}", at(*end_ns))
            }
            Event::Indeterminate {
                workload,
                seq,
                t_ns,
                state,
                wchan,
                ..
            } => format!(
                "{} hang   {workload} op {seq}: past its deadline, state {state} in {wchan}",
                at(*t_ns)
            ),
            Event::Exec {
                step,
                code,
                signal,
                t_ns,
                ..
            } => match (code, signal) {
                (Some(c), _) => format!("{} exit   {step}: code {c}", at(*t_ns)),
                (None, Some(s)) => format!("{} exit   {step}: signal {s}", at(*t_ns)),
                _ => format!("{} exit   {step}", at(*t_ns)),
            },
            Event::Ready { step, t_ns } => format!("{} ready  {step}", at(*t_ns)),
            Event::StepTimedOut { step, t_ns, .. } => {
                format!("{} TIMEOUT {step}", at(*t_ns))
            }
            Event::Aborted { reason, t_ns } => format!("{} ABORT  {reason}", at(*t_ns)),
            Event::ProbeFailed {
                probe,
                reason,
                t_ns,
            } => format!("{} PROBE  {probe} failed: {reason}", at(*t_ns)),
            Event::Continued { step, by, t_ns } => {
                format!("{} go     {step}: confirmed by {by}", at(*t_ns))
            }
            _ => return None,
        };
        Some(format!("  {} {text}", self.scenario))
    }
}

/// `unit` is a singular noun phrase ("packet", "I/O at the dm device"):
/// its first word takes the plural.
fn plural(n: u64, unit: &str) -> String {
    if n == 1 {
        return unit.to_string();
    }
    match unit.split_once(' ') {
        Some((noun, rest)) => format!("{noun}s {rest}"),
        None => format!("{unit}s"),
    }
}

fn secs(t_ns: u64) -> String {
    format!("+{:.2}s", t_ns as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events() -> Vec<Event> {
        let op = |seq, errno| Event::Op {
            workload: "writer".into(),
            seq,
            start_ns: 0,
            end_ns: 1_500_000_000,
            errno,
            stage: Some("fsync".into()),
            exit_code: None,
            mounts: Vec::new(),
            hold: None,
        };
        vec![
            Event::StepBegin {
                step: "blackhole".into(),
                t_ns: 1_000_000_000,
            },
            Event::FaultInjected {
                step: "blackhole".into(),
                fault: "nfs.unexport".into(),
                t_ns: 1_010_000_000,
            },
            op(1, None),
            op(2, Some(libc::EIO)),
            op(3, Some(libc::EIO)),
            Event::FaultHealed {
                step: "blackhole".into(),
                fault: "nfs.unexport".into(),
                t_ns: 4_000_000_000,
                error: None,
                matched: None,
                unit: None,
                uncounted: None,
            },
            Event::StepEnd {
                step: "blackhole".into(),
                t_ns: 4_000_000_000,
            },
        ]
    }

    #[test]
    fn plain_lines_one_per_event_and_one_per_error_change() {
        let mut p = Progress::new(Vec::new(), false, "s1");
        let ev = events();
        p.catch_up(&ev[..3]);
        p.tick(2_000_000_000);
        p.catch_up(&ev);
        p.tick(4_100_000_000);
        let text = String::from_utf8(p.into_inner()).unwrap();
        assert_eq!(
            text,
            "  s1   +1.00s begin  blackhole\n\
             \x20 s1   +1.01s inject nfs.unexport (blackhole)\n\
             \x20 s1   +1.50s error  writer op 2: EIO in fsync\n\
             \x20 s1   +4.00s heal   nfs.unexport (blackhole)\n\
             \x20 s1   +4.00s end    blackhole\n"
        );
        assert!(!text.contains('\x1b') && !text.contains('\r'));
    }

    // Issue 13: "fired on 3 I/O(s)" read as 3 of the workload's writes.
    #[test]
    fn a_count_names_what_it_counts() {
        let mut p = Progress::new(Vec::new(), false, "s1");
        let healed = |n| Event::FaultHealed {
            step: "detach".into(),
            fault: "block.detach".into(),
            t_ns: 2_000_000_000,
            error: None,
            matched: Some(n),
            unit: Some("I/O at the dm device".into()),
            uncounted: None,
        };
        p.catch_up(&[healed(3), healed(1)]);
        assert_eq!(
            String::from_utf8(p.into_inner()).unwrap(),
            "  s1   +2.00s heal   block.detach (detach, fired on 3 I/Os at the dm device)\n\
             \x20 s1   +2.00s heal   block.detach (detach, fired on 1 I/O at the dm device)\n"
        );
        assert_eq!(plural(2, "packet"), "packets");
    }

    // Issue 13: progress printed `heal nfs.restart`, a fault without a heal.
    #[test]
    fn a_fault_without_a_heal_is_not_said_to_heal() {
        let mut p = Progress::new(Vec::new(), false, "s1");
        let healed = |fault: &str| Event::FaultHealed {
            step: "f".into(),
            fault: fault.into(),
            t_ns: 1_000_000_000,
            error: None,
            matched: None,
            unit: None,
            uncounted: None,
        };
        p.catch_up(&[
            healed("nfs.restart"),
            healed("xfs.shutdown"),
            healed("nfs.stall"),
        ]);
        assert_eq!(
            String::from_utf8(p.into_inner()).unwrap(),
            "  s1   +1.00s heal   nfs.stall (f)\n"
        );
    }

    #[test]
    fn a_terminal_gets_a_spinner_that_is_erased_before_each_line() {
        let mut p = Progress::new(Vec::new(), true, "s1");
        let ev = events();
        p.catch_up(&ev[..1]);
        p.tick(1_200_000_000);
        p.catch_up(&ev[..2]);
        let text = String::from_utf8(p.into_inner()).unwrap();
        assert!(
            text.contains("\r\x1b[K/ s1 in blackhole +1.20s\r\x1b[K  s1   +1.01s inject"),
            "{text:?}"
        );
    }
}
