//! Reading a workload's records back: which acknowledged records survived.

use super::{Record, RecordError};
use crate::plan::WorkloadOp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// What the engine asks a `stackquake verify` child to read back. It comes
/// on stdin: the acknowledged records may outgrow an argument.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    pub path: PathBuf,
    pub op: WorkloadOp,
    pub workload: String,
    pub record_size: usize,
    pub acknowledged: Vec<u64>,
}

/// The child's one line on stdout: the verification, or why the file could
/// not be read.
pub type Answer = Result<Verification, String>;

/// `stackquake verify`: answers the request on stdin. The read back runs in
/// a process of its own because it may never return (a hard NFS mount whose
/// server is gone): the engine kills it then, and nothing of the engine's
/// own is left waiting in the kernel.
pub fn run_child() -> std::io::Result<()> {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text)?;
    let answer: Answer = match serde_json::from_str::<Request>(&text) {
        Ok(r) => verify(&r.path, r.op, &r.workload, r.record_size, &r.acknowledged)
            .map_err(|e| format!("read {}: {e}", r.path.display())),
        Err(e) => Err(format!("bad verify request: {e}")),
    };
    let line = serde_json::to_string(&answer).map_err(std::io::Error::other)?;
    writeln!(std::io::stdout(), "{line}")
}

/// How many acknowledged records the file holds intact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    pub acknowledged: u64,
    pub intact: u64,
    /// Acknowledged records missing or damaged, in order.
    pub missing: Vec<u64>,
    /// Records present whose checksum does not match.
    pub corrupt: u64,
}

/// Checks `acknowledged` record numbers of workload `id` against the file.
/// An append file is read record by record up to each newline (a failed
/// append may leave a torn record, which must not shift the rest); a write
/// file holds record `seq` at offset `seq × size`.
pub fn verify(
    path: &Path,
    op: WorkloadOp,
    id: &str,
    record_size: usize,
    acknowledged: &[u64],
) -> std::io::Result<Verification> {
    let bytes = std::fs::read(path)?;
    let mut found = BTreeSet::new();
    let mut corrupt = 0;
    let mut check = |chunk: &[u8]| match Record::decode(chunk) {
        Ok(r) if r.workload == id => {
            found.insert(r.seq);
        }
        Ok(_) => {}
        Err(RecordError::Checksum { .. }) => corrupt += 1,
        Err(_) => {}
    };
    if op == WorkloadOp::Write {
        for &seq in acknowledged {
            let start = seq as usize * record_size;
            if let Some(chunk) = bytes.get(start..start + record_size) {
                check(chunk);
            }
        }
    } else {
        // A torn record has no newline and runs into the next one: try each
        // record header in the line, last first.
        let header = format!("sq {id} ");
        for line in bytes.split_inclusive(|b| *b == b'\n') {
            let starts: Vec<usize> = line
                .windows(header.len())
                .enumerate()
                .filter(|(_, w)| *w == header.as_bytes())
                .map(|(i, _)| i)
                .collect();
            match starts.last() {
                Some(&last) => check(&line[last..]),
                None => check(line),
            }
        }
    }
    let missing: Vec<u64> = acknowledged
        .iter()
        .copied()
        .filter(|s| !found.contains(s))
        .collect();
    Ok(Verification {
        acknowledged: acknowledged.len() as u64,
        intact: acknowledged.len() as u64 - missing.len() as u64,
        missing,
        corrupt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: u64) -> Vec<u8> {
        Record {
            workload: "w".into(),
            seq,
        }
        .encode(64)
    }

    #[test]
    fn a_torn_append_does_not_hide_later_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut bytes = rec(0);
        bytes.extend_from_slice(&rec(1)[..20]); // torn: op 1 failed mid-write
        bytes.extend(rec(2));
        std::fs::write(&path, bytes).unwrap();
        let v = verify(&path, WorkloadOp::Append, "w", 64, &[0, 2]).unwrap();
        assert_eq!((v.intact, v.missing.clone()), (2, vec![]));
        let v = verify(&path, WorkloadOp::Append, "w", 64, &[0, 1, 2]).unwrap();
        assert_eq!(v.missing, vec![1]);
    }

    #[test]
    fn a_flipped_byte_in_a_write_file_is_corrupt_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let mut bytes = [rec(0), rec(1)].concat();
        bytes[64 + 40] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let v = verify(&path, WorkloadOp::Write, "w", 64, &[0, 1]).unwrap();
        assert_eq!((v.intact, v.missing.clone(), v.corrupt), (1, vec![1], 1));
    }
}
