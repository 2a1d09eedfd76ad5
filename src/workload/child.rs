//! The loop inside a workload child: perform ops, report each, until the
//! count is reached or the engine sends SIGTERM (or SIGKILL, if an op is
//! stuck in the kernel).

use super::ops::{Failure, OpState, perform, prepare};
use super::{Report, Spec, monotonic_ns};
use std::io::{Read, Write};
use std::time::Duration;

/// Runs the workload described by `spec`; returns when done or if stdout is gone.
pub fn run(spec: &Spec) -> std::io::Result<()> {
    // Locked per line, not for the run: a mount_storm's threads report too.
    let mut out = std::io::stdout();
    let mut state = OpState::default();
    prepare(spec, &mut state);
    emit(&mut out, &Report::Ready)?;
    // The go is end of file on stdin: the engine closes it once every
    // workload is ready (a child started by hand has nothing to wait for).
    let _ = std::io::stdin().read(&mut [0u8; 1]);
    for seq in 0..spec.count.unwrap_or(u64::MAX) {
        emit(
            &mut out,
            &Report::Start {
                seq,
                mono_ns: monotonic_ns(),
            },
        )?;
        let result = perform(spec, seq, &mut state);
        let held = state.held.take();
        let (errno, stage, exit_code) = match result {
            Ok(code) => (None, None, code),
            Err(Failure::Errno(stage, e)) => {
                // A failed fd may be dead for good (a shut-down XFS): reopen.
                state = OpState::default();
                (
                    Some(e.raw_os_error().unwrap_or(libc::EIO)),
                    Some(stage.into()),
                    None,
                )
            }
        };
        emit(
            &mut out,
            &Report::End {
                seq,
                mono_ns: monotonic_ns(),
                errno,
                stage,
                exit_code,
                held,
            },
        )?;
        std::thread::sleep(Duration::from_millis(spec.every_ms));
    }
    Ok(())
}

/// Writes one report as one line; `Stdout`'s lock keeps lines whole.
pub fn emit(out: &mut std::io::Stdout, report: &Report) -> std::io::Result<()> {
    let line = serde_json::to_string(report).map_err(std::io::Error::other)?;
    let mut out = out.lock();
    writeln!(out, "{line}")?;
    out.flush()
}
