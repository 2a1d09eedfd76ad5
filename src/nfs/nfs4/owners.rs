//! NFSv4.0's per-owner sequencing (RFC 7530 §9.1.7). In 4.0 nothing like
//! a session's slot orders a client's requests, so each open-owner and
//! lock-owner numbers its state-changing requests (OPEN, OPEN_DOWNGRADE,
//! CLOSE, LOCK, LOCKU). The server serves the next number, answers a
//! repeat of the last with the reply it gave (a retransmission after a
//! reconnect must not open, lock or close twice), and refuses anything
//! else with BAD_SEQID. 4.1 and 4.2 ignore these seqids: SEQUENCE's slots
//! do this for every operation there. Pure bookkeeping: no wire, no files.

use std::collections::HashMap;
use std::sync::Arc;

use super::state::StateOther;
use super::status::Nfs4Status;

/// Most owners kept at once; beyond it a new owner gets RESOURCE. The
/// Linux client has one open-owner per credential and a lock-owner per
/// process and file, which RELEASE_LOCKOWNER ends.
pub const MAX_OWNERS: usize = 65536;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OwnerKind {
    Open,
    Lock,
}

/// An owner: the client, what kind, and the client's name for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OwnerKey {
    pub client: u64,
    pub kind: OwnerKind,
    pub owner: Vec<u8>,
}

/// The reply an owner's last request got, for its retransmission.
#[derive(Debug, Clone)]
pub struct Replay {
    /// The operation it answered: a repeat of another one is BAD_SEQID.
    pub op: u32,
    /// The operation's status and result as they went on the wire.
    pub reply: Arc<[u8]>,
    /// OPEN's current filehandle afterwards (the opened file), as a wire
    /// handle, which a replayed OPEN must set again.
    pub fh: Option<Vec<u8>>,
    /// The state it acted on: how a repeated CLOSE, whose open is gone,
    /// finds its owner.
    pub state: Option<StateOther>,
}

#[derive(Debug)]
struct Sequence {
    last: u32,
    replay: Option<Replay>,
}

/// What a request's seqid makes of it.
#[derive(Debug)]
pub enum Seen {
    /// The owner's next request (or its first): serve it.
    Next,
    /// A repeat of the last request: answer with its reply.
    Repeat(Replay),
}

/// RFC 7530 §9.1.7: errors that say the request never reached the owner's
/// state, so the owner's seqid does not advance.
pub fn advances_seqid(status: Nfs4Status) -> bool {
    ![
        Nfs4Status::STALE_CLIENTID,
        Nfs4Status::STALE_STATEID,
        Nfs4Status::BAD_STATEID,
        Nfs4Status::BAD_SEQID,
        Nfs4Status::BADXDR,
        Nfs4Status::RESOURCE,
        Nfs4Status::NOFILEHANDLE,
    ]
    .contains(&status)
}

#[derive(Debug, Default)]
pub struct Owners {
    owners: HashMap<OwnerKey, Sequence>,
}

impl Owners {
    /// Whether `seqid` is `key`'s next request, a repeat of its last, or
    /// out of order (BAD_SEQID). An owner we do not know starts here.
    pub fn check(&self, key: &OwnerKey, seqid: u32, op: u32) -> Result<Seen, Nfs4Status> {
        let Some(seq) = self.owners.get(key) else {
            return if self.owners.len() >= MAX_OWNERS {
                Err(Nfs4Status::RESOURCE)
            } else {
                Ok(Seen::Next)
            };
        };
        if seqid == seq.last.wrapping_add(1) {
            return Ok(Seen::Next);
        }
        match &seq.replay {
            Some(r) if seqid == seq.last && r.op == op => Ok(Seen::Repeat(r.clone())),
            _ => Err(Nfs4Status::BAD_SEQID),
        }
    }

    /// Records the reply to `key`'s request `seqid`, advancing the owner
    /// unless the status says the request never reached it.
    pub fn record(&mut self, key: OwnerKey, seqid: u32, status: Nfs4Status, replay: Replay) {
        if !advances_seqid(status) {
            return;
        }
        self.owners.insert(
            key,
            Sequence {
                last: seqid,
                replay: Some(replay),
            },
        );
    }

    /// A new lock-owner's first seqid (open_to_lock_owner4's lock_seqid):
    /// its next request carries the one after it.
    pub fn start(&mut self, key: OwnerKey, seqid: u32) {
        self.owners.insert(
            key,
            Sequence {
                last: seqid,
                replay: None,
            },
        );
    }

    /// The owner whose last request acted on `state`: a repeated CLOSE's,
    /// after the close took the open away.
    pub fn last_acting_on(&self, state: &StateOther, op: u32) -> Option<OwnerKey> {
        self.owners
            .iter()
            .find(|(_, s)| {
                s.replay
                    .as_ref()
                    .is_some_and(|r| r.op == op && r.state.as_ref() == Some(state))
            })
            .map(|(k, _)| k.clone())
    }

    /// Whether `seqid` is the one after `key`'s last.
    pub fn is_next(&self, key: &OwnerKey, seqid: u32) -> bool {
        self.owners
            .get(key)
            .is_some_and(|s| seqid == s.last.wrapping_add(1))
    }

    pub fn knows(&self, key: &OwnerKey) -> bool {
        self.owners.contains_key(key)
    }

    pub fn forget(&mut self, key: &OwnerKey) {
        self.owners.remove(key);
    }

    pub fn forget_client(&mut self, client: u64) {
        self.owners.retain(|k, _| k.client != client);
    }

    pub fn clear(&mut self) {
        self.owners.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: u32 = 18;
    const CLOSE: u32 = 4;

    fn key(owner: &[u8]) -> OwnerKey {
        OwnerKey {
            client: 7,
            kind: OwnerKind::Open,
            owner: owner.to_vec(),
        }
    }

    fn replay(op: u32, reply: &[u8]) -> Replay {
        Replay {
            op,
            reply: reply.into(),
            fh: None,
            state: Some([9; 12]),
        }
    }

    #[test]
    fn next_repeat_and_out_of_order() {
        let mut o = Owners::default();
        let k = key(b"a");
        assert!(matches!(o.check(&k, 5, OPEN), Ok(Seen::Next)), "first");
        o.record(k.clone(), 5, Nfs4Status::OK, replay(OPEN, b"first"));
        let Ok(Seen::Repeat(r)) = o.check(&k, 5, OPEN) else {
            panic!("a repeat of the last request is replayed");
        };
        assert_eq!(&r.reply[..], b"first");
        assert_eq!(o.check(&k, 5, CLOSE).err(), Some(Nfs4Status::BAD_SEQID));
        assert_eq!(o.check(&k, 4, OPEN).err(), Some(Nfs4Status::BAD_SEQID));
        assert_eq!(o.check(&k, 7, OPEN).err(), Some(Nfs4Status::BAD_SEQID));
        assert!(matches!(o.check(&k, 6, CLOSE), Ok(Seen::Next)));
        // Errors are replayed too; only those that never reached the
        // owner leave it where it was.
        o.record(k.clone(), 6, Nfs4Status::DENIED, replay(CLOSE, b"denied"));
        assert!(matches!(o.check(&k, 6, CLOSE), Ok(Seen::Repeat(_))));
        o.record(k.clone(), 7, Nfs4Status::BAD_STATEID, replay(CLOSE, b"x"));
        assert!(matches!(o.check(&k, 7, CLOSE), Ok(Seen::Next)));
        assert_eq!(o.last_acting_on(&[9; 12], CLOSE), Some(k.clone()));
        assert_eq!(o.last_acting_on(&[9; 12], OPEN), None);
    }

    #[test]
    fn seqids_wrap_and_owners_are_per_client() {
        let mut o = Owners::default();
        let k = key(b"a");
        o.record(k.clone(), u32::MAX, Nfs4Status::OK, replay(OPEN, b""));
        assert!(matches!(o.check(&k, 0, OPEN), Ok(Seen::Next)));
        let other = OwnerKey {
            client: 8,
            ..k.clone()
        };
        assert!(!o.knows(&other));
        o.start(other.clone(), 0);
        assert_eq!(
            o.check(&other, 0, OPEN).err(),
            Some(Nfs4Status::BAD_SEQID),
            "a started owner has no reply to repeat"
        );
        o.forget_client(7);
        assert!(!o.knows(&k) && o.knows(&other));
    }
}
