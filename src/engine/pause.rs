//! `pause` steps: the timeline waits for the operator, so their own action
//! (a failover, a cable pulled) happens at a known point of it. Any of
//! three confirms every pause waiting at that moment: a line on the run's
//! terminal, SIGUSR1, or the file `continue` in the scenario's output
//! directory (what CI uses; `paused` beside it says a pause is waiting).

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, channel};

/// Written while a pause waits: the step, its message, how to continue.
pub const PAUSED_FILE: &str = "paused";
/// Created by whoever confirms; removed when it is taken.
pub const CONTINUE_FILE: &str = "continue";

/// A pause step waiting for its confirmation.
pub struct Waiting {
    pub step: usize,
    dir: PathBuf,
}

impl Waiting {
    /// Announces the pause (on the terminal and in `dir/paused`) and
    /// forgets confirmations given before it began.
    pub fn begin(step: usize, id: &str, message: &str, dir: &Path) -> Waiting {
        let _ = std::fs::create_dir_all(dir);
        let _ = std::fs::remove_file(dir.join(CONTINUE_FILE));
        let _ = crate::sys::take_continue();
        drain_terminal();
        let continue_file = dir.join(CONTINUE_FILE);
        let how = format!(
            "to continue: press Enter here, or `kill -USR1 {}`, or `touch {}`",
            std::process::id(),
            continue_file.display()
        );
        let _ = std::fs::write(dir.join(PAUSED_FILE), format!("{id}\n{message}\n{how}\n"));
        eprintln!("\nPAUSED at step {id}: {message}\n  {how}");
        Waiting {
            step,
            dir: dir.to_path_buf(),
        }
    }

    /// Whether it was confirmed, and how.
    pub fn confirmed(&self) -> Option<String> {
        let file = self.dir.join(CONTINUE_FILE);
        if file.exists() {
            let _ = std::fs::remove_file(&file);
            return Some(format!("file {}", file.display()));
        }
        if crate::sys::take_continue() {
            return Some("SIGUSR1".into());
        }
        terminal_line().then(|| "terminal".into())
    }

    /// The pause is over (confirmed, or the run stopped).
    pub fn end(self) {
        let _ = std::fs::remove_file(self.dir.join(PAUSED_FILE));
    }
}

/// Lines typed on the run's terminal, read by one thread for the whole
/// process (a reader per pause would leave readers racing for stdin).
static TERMINAL: Mutex<Option<Receiver<()>>> = Mutex::new(None);

fn terminal() -> std::sync::MutexGuard<'static, Option<Receiver<()>>> {
    let mut guard = TERMINAL.lock().unwrap_or_else(|e| e.into_inner());
    if guard.is_none() && std::io::stdin().is_terminal() {
        let (tx, rx) = channel();
        let spawned = std::thread::Builder::new()
            .name("sq-pause-tty".into())
            .spawn(move || {
                for line in std::io::stdin().lock().lines() {
                    if line.is_err() || tx.send(()).is_err() {
                        break;
                    }
                }
            });
        if spawned.is_ok() {
            *guard = Some(rx);
        }
    }
    guard
}

/// Whether a line was typed since the last look.
fn terminal_line() -> bool {
    terminal().as_ref().is_some_and(|rx| rx.try_recv().is_ok())
}

/// Drops lines typed before the pause began.
fn drain_terminal() {
    if let Some(rx) = terminal().as_ref() {
        while rx.try_recv().is_ok() {}
    }
}
