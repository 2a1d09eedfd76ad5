//! How many calls the server received, by program, version and procedure:
//! what the run report shows per step ("what the server saw while a fault
//! was on"). Counted as calls arrive, before the fault hook decides, so a
//! call a fault drops or answers still counts.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{names, program_table};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallKey {
    pub prog: u32,
    pub vers: u32,
    pub proc_: u32,
}

impl CallKey {
    /// The call as people name it: `nfsv3 WRITE`, `mountv3 MNT`; a
    /// program the table does not know goes by its number.
    pub fn label(&self) -> String {
        match program_table::by_number_version(self.prog, self.vers) {
            Some(row) => format!(
                "{}v{} {}",
                row.names[0],
                self.vers,
                names::procedure_name(self.prog, Some(self.vers), self.proc_)
            ),
            None => format!("{}v{} {}", self.prog, self.vers, self.proc_),
        }
    }
}

#[derive(Debug, Default)]
pub struct CallCounts(Mutex<BTreeMap<CallKey, u64>>);

impl CallCounts {
    pub fn record(&self, key: CallKey) {
        *self.lock().entry(key).or_default() += 1;
    }

    /// The counts so far.
    pub fn snapshot(&self) -> BTreeMap<CallKey, u64> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<CallKey, u64>> {
        // A panic elsewhere while holding it leaves counts that are still
        // counts: keep serving them.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The calls received between two snapshots, by label, leaving out those
/// that did not occur.
pub fn since(
    before: &BTreeMap<CallKey, u64>,
    after: &BTreeMap<CallKey, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter_map(|(k, n)| {
            let d = n - before.get(k).copied().unwrap_or(0);
            (d > 0).then(|| (k.label(), d))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRITE: CallKey = CallKey {
        prog: 100003,
        vers: 3,
        proc_: 7,
    };
    const MNT: CallKey = CallKey {
        prog: 100005,
        vers: 3,
        proc_: 1,
    };

    #[test]
    fn calls_are_named_as_the_protocol_documents_do() {
        assert_eq!(WRITE.label(), "nfsv3 WRITE");
        assert_eq!(MNT.label(), "mountv3 MNT");
        let compound = CallKey {
            prog: 100003,
            vers: 4,
            proc_: 1,
        };
        assert_eq!(compound.label(), "nfsv4 COMPOUND");
        let unknown = CallKey {
            prog: 400_000,
            vers: 1,
            proc_: 9,
        };
        assert_eq!(unknown.label(), "400000v1 9");
    }

    #[test]
    fn the_calls_between_two_snapshots_are_their_difference() {
        let counts = CallCounts::default();
        counts.record(MNT);
        counts.record(WRITE);
        let before = counts.snapshot();
        for _ in 0..3 {
            counts.record(WRITE);
        }
        let seen = since(&before, &counts.snapshot());
        assert_eq!(seen, BTreeMap::from([("nfsv3 WRITE".to_string(), 3)]));
    }
}
