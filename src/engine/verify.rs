//! The data check's read back, one child process per workload
//! (`stackquake verify`). A read that never returns (a hard NFS mount whose
//! server the final heal left unreachable) is killed at the deadline; were
//! it a thread of ours, it would hold the engine's own exit in the kernel.

use crate::ledger::Ledger;
use crate::process::Recorded;
use crate::workload::verify::{Answer, Request};
use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

/// How long a killed reader may take to die before we stop waiting for it
/// (killable sleeps end at once; cleanup finds a straggler by its run id).
const KILL_PATIENCE: Duration = Duration::from_millis(500);

pub struct Reading {
    child: Recorded,
    answer: Receiver<Answer>,
}

/// Starts reading `request.path` back.
pub fn start(request: &Request, ledger: Option<&Ledger>) -> Result<Reading, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find our executable: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.arg("verify")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(l) = ledger {
        crate::process::tie_to_run(&mut cmd, l);
    }
    let mut child = crate::process::spawn_recorded(&mut cmd, ledger).map_err(|e| e.to_string())?;
    let json = serde_json::to_vec(request).expect("request serializes");
    let mut stdin = child.child.stdin.take().expect("stdin was piped");
    // Dropping stdin at the end of the write is the child's end of input.
    stdin
        .write_all(&json)
        .map_err(|e| format!("cannot send the request to the reader: {e}"))?;
    drop(stdin);
    let stdout = child.child.stdout.take().expect("stdout was piped");
    let (tx, answer) = channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let answer = match std::io::BufReader::new(stdout).read_line(&mut line) {
            Ok(n) if n > 0 => serde_json::from_str(&line)
                .unwrap_or_else(|e| Err(format!("unreadable answer {line:?}: {e}"))),
            _ => Err("the reader ended without an answer".to_string()),
        };
        let _ = tx.send(answer);
    });
    Ok(Reading { child, answer })
}

impl Reading {
    /// The answer, or None if there is none by `until`: the reader is then
    /// killed.
    pub fn finish(mut self, until: Instant) -> Option<Answer> {
        let answer = self
            .answer
            .recv_timeout(until.saturating_duration_since(Instant::now()))
            .ok();
        if answer.is_none() {
            let _ = self.child.kill(KILL_PATIENCE);
        }
        // Reaped if it ends soon (it has answered, or was killed); a
        // straggler is left to the run's cleanup, which finds it by run id.
        let until = Instant::now() + KILL_PATIENCE;
        loop {
            match self.child.child.try_wait() {
                Ok(Some(_)) => {
                    self.child.reaped();
                    break;
                }
                Ok(None) if Instant::now() < until => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => break,
            }
        }
        answer
    }
}
