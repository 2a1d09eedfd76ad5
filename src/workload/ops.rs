//! One operation of each workload kind, as the child performs it.

use super::{Record, Spec};
use crate::plan::{LockMode, WorkloadOp};
use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::time::Duration;

/// What survives between ops: the open file of append/write; and what
/// the last op leaves for its report: a flock's hold.
#[derive(Default)]
pub struct OpState {
    file: Option<File>,
    /// CLOCK_MONOTONIC when flock(2) returned with the lock and when
    /// unlocking began: the span the lock is known held.
    pub held: Option<(u64, u64)>,
}

/// An op failed in a syscall (the stage names which).
pub enum Failure {
    Errno(&'static str, std::io::Error),
}

fn at(stage: &'static str) -> impl FnOnce(std::io::Error) -> Failure {
    move |e| Failure::Errno(stage, e)
}

/// Performs op `seq`; Ok carries an exec's exit code.
pub fn perform(spec: &Spec, seq: u64, state: &mut OpState) -> Result<Option<i32>, Failure> {
    match spec.op {
        WorkloadOp::Append | WorkloadOp::Write => write_record(spec, seq, state).map(|()| None),
        WorkloadOp::Read if spec.hold_open => read_held(spec, state).map(|()| None),
        WorkloadOp::Read => read_all(spec).map(|()| None),
        WorkloadOp::Stat => std::fs::metadata(&spec.path)
            .map(drop)
            .map_err(at("stat"))
            .map(|()| None),
        WorkloadOp::Readdir => readdir(spec).map(|()| None),
        WorkloadOp::Flock => flock(spec, &mut state.held).map(|()| None),
        WorkloadOp::Exec => exec(spec).map(Some),
        WorkloadOp::MountStorm => mount_storm(spec, seq).map(|()| None),
    }
}

/// Before the first op: append and write create their file, so a workload
/// that reads it finds it from its first op on. A failure here is left for
/// op 0 to meet and report, as any op's failure is.
pub fn prepare(spec: &Spec, state: &mut OpState) {
    if matches!(spec.op, WorkloadOp::Append | WorkloadOp::Write) {
        state.file = open_for_records(spec).ok();
    }
}

fn open_for_records(spec: &Spec) -> Result<File, Failure> {
    let append = spec.op == WorkloadOp::Append;
    OpenOptions::new()
        .create(true)
        .append(append)
        .write(!append)
        .open(&spec.path)
        .map_err(at("open"))
}

fn write_record(spec: &Spec, seq: u64, state: &mut OpState) -> Result<(), Failure> {
    let append = spec.op == WorkloadOp::Append;
    if state.file.is_none() {
        state.file = Some(open_for_records(spec)?);
    }
    let f = state.file.as_mut().expect("opened above");
    let bytes = Record {
        workload: spec.id.clone(),
        seq,
    }
    .encode(spec.record_size);
    if append {
        f.write_all(&bytes).map_err(at("write"))?;
    } else {
        f.write_all_at(&bytes, seq * spec.record_size as u64)
            .map_err(at("write"))?;
    }
    if spec.fsync {
        f.sync_all().map_err(at("fsync"))?;
    }
    Ok(())
}

fn read_all(spec: &Spec) -> Result<(), Failure> {
    let mut f = File::open(&spec.path).map_err(at("open"))?;
    let mut buf = vec![0u8; spec.record_size.max(1)];
    while f.read(&mut buf).map_err(at("read"))? > 0 {}
    Ok(())
}

/// Reads from offset 0 to EOF through the descriptor opened by the first
/// op: after someone else removes the file, this sees what a process that
/// still holds it sees (NFS: the held handle, not a new lookup).
fn read_held(spec: &Spec, state: &mut OpState) -> Result<(), Failure> {
    if state.file.is_none() {
        state.file = Some(File::open(&spec.path).map_err(at("open"))?);
    }
    let f = state.file.as_ref().expect("opened above");
    let mut buf = vec![0u8; spec.record_size.max(1)];
    let mut offset = 0u64;
    loop {
        let n = f.read_at(&mut buf, offset).map_err(at("read"))?;
        if n == 0 {
            return Ok(());
        }
        offset += n as u64;
    }
}

fn readdir(spec: &Spec) -> Result<(), Failure> {
    for entry in std::fs::read_dir(&spec.path).map_err(at("opendir"))? {
        entry.map_err(at("readdir"))?;
    }
    Ok(())
}

fn flock(spec: &Spec, held: &mut Option<(u64, u64)>) -> Result<(), Failure> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&spec.path)
        .map_err(at("open"))?;
    let how = match spec.lock {
        Some(LockMode::Sh) => FlockArg::LockShared,
        _ => FlockArg::LockExclusive,
    };
    let locked = Flock::lock(f, how).map_err(|(_, e)| Failure::Errno("flock", e.into()))?;
    // Stamped after the call returned and before unlocking begins, so the
    // span lies inside the kernel's own hold (mutual_exclusion relies on it).
    let acquired = super::monotonic_ns();
    std::thread::sleep(Duration::from_millis(spec.hold_ms));
    *held = Some((acquired, super::monotonic_ns()));
    locked
        .unlock()
        .map(drop)
        .map_err(|(_, e)| Failure::Errno("unlock", e.into()))
}

fn exec(spec: &Spec) -> Result<i32, Failure> {
    let (program, args) = spec
        .command
        .split_first()
        .ok_or_else(|| Failure::Errno("exec", std::io::Error::from_raw_os_error(libc::EINVAL)))?;
    let status = std::process::Command::new(program)
        .args(args)
        .current_dir(&spec.root)
        .env("STACKQUAKE_ROOT", &spec.root)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(at("exec"))?;
    // A signal-killed command has no code: 128 + signal, as shells report it.
    Ok(status.code().unwrap_or_else(|| {
        128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
    }))
}

fn mount_storm(spec: &Spec, seq: u64) -> Result<(), Failure> {
    use nix::mount::{MntFlags, MsFlags, mount, umount2};
    let storm = spec
        .storm
        .as_ref()
        .ok_or_else(|| Failure::Errno("mount", std::io::Error::from_raw_os_error(libc::EINVAL)))?;
    let targets = storm.targets();
    for t in &targets {
        std::fs::create_dir_all(t).map_err(at("mkdir"))?;
    }
    // All N mount(2) calls in flight at once: the parallel-mount race of
    // incidents/ecs-efs-nfs41-parallel-mount-hang needs them concurrent.
    let results: Vec<nix::Result<()>> = std::thread::scope(|scope| {
        let handles: Vec<_> = targets
            .iter()
            .enumerate()
            .map(|(index, t)| {
                scope.spawn(move || {
                    let result = mount(
                        Some(storm.source.as_str()),
                        t,
                        Some(storm.fstype.as_str()),
                        MsFlags::empty(),
                        Some(storm.data.as_str()),
                    );
                    let report = super::Report::Mounted {
                        seq,
                        index: index as u32,
                        mono_ns: super::monotonic_ns(),
                        errno: result.err().map(|e| e as i32),
                    };
                    let _ = super::child::emit(&mut std::io::stdout(), &report);
                    result
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Err(nix::errno::Errno::EINTR)))
            .collect()
    });
    let mut first_error = None;
    for (t, r) in targets.iter().zip(&results) {
        match r {
            Ok(()) => {
                if let Err(e) = umount2(t, MntFlags::empty()) {
                    first_error.get_or_insert(Failure::Errno("umount", e.into()));
                }
            }
            Err(e) => {
                first_error.get_or_insert(Failure::Errno("mount", (*e).into()));
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}
