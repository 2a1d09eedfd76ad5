//! A session's slot table (RFC 8881 §2.10.6.1): one sequence id and one
//! cached reply per slot, which is what gives 4.1 exactly-once semantics.

use std::sync::Arc;

use super::status::Nfs4Status;

#[derive(Debug, Default)]
struct Slot {
    /// The sequence id of the last request begun on this slot (0: none yet).
    seqid: u32,
    /// Its reply, when it fitted the cache; None while it runs or when it
    /// was too large to keep.
    reply: Option<Arc<[u8]>>,
    busy: bool,
}

/// What SEQUENCE does with a request, by its slot and sequence id.
#[derive(Debug, PartialEq, Eq)]
pub enum SlotUse {
    /// The next request on the slot: serve it, then `finish`.
    New,
    /// A retransmission of the last request: answer with its reply.
    Replay(Arc<[u8]>),
}

#[derive(Debug)]
pub struct SlotTable {
    slots: Vec<Slot>,
}

impl SlotTable {
    pub fn new(count: u32) -> SlotTable {
        SlotTable {
            slots: (0..count.max(1)).map(|_| Slot::default()).collect(),
        }
    }

    pub fn highest_slot(&self) -> u32 {
        self.slots.len() as u32 - 1
    }

    /// RFC 8881 §2.10.6.1: seqid one past the slot's is new; equal is a
    /// retransmission, answered from the cache (RETRY_UNCACHED_REP when
    /// the reply was not kept, DELAY while it is still being served); any
    /// other is SEQ_MISORDERED.
    pub fn begin(&mut self, slot: u32, seqid: u32) -> Result<SlotUse, Nfs4Status> {
        let s = self
            .slots
            .get_mut(slot as usize)
            .ok_or(Nfs4Status::BADSLOT)?;
        if seqid == s.seqid.wrapping_add(1) {
            if s.busy {
                return Err(Nfs4Status::DELAY);
            }
            s.seqid = seqid;
            s.reply = None;
            s.busy = true;
            return Ok(SlotUse::New);
        }
        if seqid == s.seqid && s.seqid != 0 {
            if s.busy {
                return Err(Nfs4Status::DELAY);
            }
            return match &s.reply {
                Some(r) => Ok(SlotUse::Replay(r.clone())),
                None => Err(Nfs4Status::RETRY_UNCACHED_REP),
            };
        }
        Err(Nfs4Status::SEQ_MISORDERED)
    }

    /// Ends the request begun on `slot`, keeping its reply if given.
    pub fn finish(&mut self, slot: u32, reply: Option<Arc<[u8]>>) {
        if let Some(s) = self.slots.get_mut(slot as usize) {
            s.busy = false;
            s.reply = reply;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_replay_uncached_and_misordered() {
        let mut t = SlotTable::new(2);
        assert_eq!(t.highest_slot(), 1);
        assert_eq!(t.begin(0, 1), Ok(SlotUse::New));
        // A retransmission while the first copy runs.
        assert_eq!(t.begin(0, 1), Err(Nfs4Status::DELAY));
        let reply: Arc<[u8]> = Arc::from(&b"reply"[..]);
        t.finish(0, Some(reply.clone()));
        assert_eq!(t.begin(0, 1), Ok(SlotUse::Replay(reply)));
        assert_eq!(t.begin(0, 3), Err(Nfs4Status::SEQ_MISORDERED));
        assert_eq!(t.begin(0, 0), Err(Nfs4Status::SEQ_MISORDERED));
        assert_eq!(t.begin(0, 2), Ok(SlotUse::New));
        t.finish(0, None);
        assert_eq!(t.begin(0, 2), Err(Nfs4Status::RETRY_UNCACHED_REP));
        // Slots are independent.
        assert_eq!(t.begin(1, 1), Ok(SlotUse::New));
        assert_eq!(t.begin(2, 1), Err(Nfs4Status::BADSLOT));
        // A fresh slot has no request 0 to replay.
        let mut t = SlotTable::new(1);
        assert_eq!(t.begin(0, 0), Err(Nfs4Status::SEQ_MISORDERED));
    }

    #[test]
    fn sequence_ids_wrap() {
        let mut t = SlotTable::new(1);
        t.slots[0].seqid = u32::MAX;
        assert_eq!(t.begin(0, 0), Ok(SlotUse::New));
    }
}
