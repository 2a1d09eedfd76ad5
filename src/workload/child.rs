//! The loop inside a workload child: perform ops, report each, forever, until
//! the engine sends SIGTERM (or SIGKILL, if an op is stuck in the kernel).

use super::{Record, Report, Spec, monotonic_ns};
use crate::scenario::WorkloadOp;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::time::Duration;

/// Runs the workload described by `spec`; returns only if stdout is gone.
pub fn run(spec: &Spec) -> std::io::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut file: Option<File> = None;
    for seq in 0.. {
        emit(
            &mut out,
            &Report::Start {
                seq,
                mono_ns: monotonic_ns(),
            },
        )?;
        let result = match spec.op {
            WorkloadOp::Append => append(spec, seq, &mut file),
        };
        let (errno, stage) = match result {
            Ok(()) => (None, None),
            Err((stage, e)) => {
                // A failed fd may be dead for good (a shut-down XFS): reopen.
                file = None;
                (
                    Some(e.raw_os_error().unwrap_or(libc::EIO)),
                    Some(stage.into()),
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
            },
        )?;
        std::thread::sleep(Duration::from_millis(spec.every_ms));
    }
    Ok(())
}

fn emit(out: &mut impl Write, report: &Report) -> std::io::Result<()> {
    let line = serde_json::to_string(report).map_err(std::io::Error::other)?;
    writeln!(out, "{line}")?;
    out.flush()
}

fn append(
    spec: &Spec,
    seq: u64,
    file: &mut Option<File>,
) -> Result<(), (&'static str, std::io::Error)> {
    if file.is_none() {
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.path)
            .map_err(|e| ("open", e))?;
        *file = Some(f);
    }
    let f = file.as_mut().expect("opened above");
    let record = Record {
        workload: spec.id.clone(),
        seq,
    };
    f.write_all(&record.encode(spec.record_size))
        .map_err(|e| ("write", e))?;
    if spec.fsync {
        f.sync_all().map_err(|e| ("fsync", e))?;
    }
    Ok(())
}
