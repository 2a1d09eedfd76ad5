//! The server's v4 state: client records (RFC 8881 §2.4), sessions
//! (§2.10), open stateids (§8.2), leases (§8.3) and the grace period after
//! a restart (§8.4.2). Pure bookkeeping: no files, no wire.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::locks::{LockState, Locks, MAX_LOCK_STATES};
use super::owners::{OwnerKey, OwnerKind, Owners};
use super::slots::SlotTable;
use super::status::Nfs4Status;

/// RFC 8881 §5.8.1.11 lease_time, as knfsd's default.
pub const LEASE: Duration = Duration::from_secs(90);
/// Most slots we grant a session (the client asks for 64 or more).
pub const MAX_SLOTS: u32 = 64;
/// Largest reply a slot keeps for replay; an OPEN reply fits easily.
pub const MAX_CACHED_REPLY: u32 = 8 * 1024;

/// Bounds on what clients can make us keep: a hostile client must not
/// grow the server without limit (expired clients are purged first).
pub const MAX_CLIENTS: usize = 4096;
pub const MAX_SESSIONS_PER_CLIENT: usize = 16;
pub const MAX_OPENS: usize = 65536;
const RESOURCE: Nfs4Status = Nfs4Status::RESOURCE;

pub type SessionId = [u8; 16];
/// RFC 8881 §3.3.12 stateid4's `other`.
pub type StateOther = [u8; 12];

/// RFC 8881 §3.3.12 stateid4
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateId {
    pub seqid: u32,
    pub other: StateOther,
}

impl StateId {
    /// The anonymous stateid (all zeros) and READ bypass (all ones), which
    /// READ/WRITE/SETATTR accept without an open (§8.2.3).
    pub fn is_special(&self) -> bool {
        self.other == [0; 12] || self.other == [0xff; 12]
    }
}

#[derive(Debug)]
pub struct Client {
    pub id: u64,
    pub owner: Vec<u8>,
    pub verifier: [u8; 8],
    pub confirmed: bool,
    pub minor: u32,
    /// CREATE_SESSION's sequence id the client must send next (§18.36.4),
    /// and the reply to the previous one, for its replay.
    pub cs_seq: u32,
    pub cs_reply: Option<Arc<[u8]>>,
    /// SETCLIENTID_CONFIRM's verifier (4.0).
    pub confirm: [u8; 8],
    pub reclaim_complete: bool,
    pub renewed: Instant,
    /// Where its EXCHANGE_ID or SETCLIENTID came from: how a fault names
    /// the client whose lease to expire.
    pub addr: IpAddr,
}

#[derive(Debug)]
pub struct Session {
    pub client: u64,
    pub slots: SlotTable,
    pub max_cached: u32,
    pub max_ops: u32,
}

/// An open file of one open-owner (§9.1.4 share reservations).
#[derive(Debug, Clone)]
pub struct Open {
    pub client: u64,
    pub owner: Vec<u8>,
    /// The file: export id and the kernel handle bytes.
    pub file: (u32, Vec<u8>),
    pub seqid: u32,
    pub access: u32,
    pub deny: u32,
}

#[derive(Debug)]
pub struct State {
    /// Distinguishes this boot's client ids and stateids from an earlier
    /// boot's: after a restart that lost state they are STALE.
    boot: u32,
    next: u64,
    pub clients: HashMap<u64, Client>,
    pub sessions: HashMap<SessionId, Session>,
    pub opens: HashMap<StateOther, Open>,
    pub locks: Locks,
    /// 4.0 open- and lock-owners' seqids and last replies.
    pub owners: Owners,
    /// Owners that held state before a restart and may reclaim it.
    reclaimable: Vec<Vec<u8>>,
    grace_until: Option<Instant>,
}

impl State {
    pub fn new(boot: u32) -> State {
        State {
            boot,
            next: 1,
            clients: HashMap::new(),
            sessions: HashMap::new(),
            opens: HashMap::new(),
            locks: Locks::default(),
            owners: Owners::default(),
            reclaimable: Vec::new(),
            grace_until: None,
        }
    }

    fn next_id(&mut self) -> u64 {
        self.next += 1;
        (self.boot as u64) << 32 | (self.next & 0xffff_ffff)
    }

    pub fn boot(&self) -> u32 {
        self.boot
    }

    pub fn in_grace(&self, now: Instant) -> bool {
        self.grace_until.is_some_and(|t| now < t)
    }

    /// A restart that loses state: every client id, session and stateid
    /// goes stale; the clients that held them may reclaim during `grace`.
    pub fn reboot(&mut self, boot: u32, grace: Duration, now: Instant) {
        self.reclaimable = self.clients.values().map(|c| c.owner.clone()).collect();
        self.boot = boot;
        self.clients.clear();
        self.sessions.clear();
        self.opens.clear();
        self.locks.clear();
        self.owners.clear();
        self.grace_until = Some(now + grace);
    }

    /// RECLAIM_COMPLETE (RFC 8881 §18.51): the client has reclaimed what
    /// it will. Once every client that held state before the restart has
    /// said so, the grace period ends early (knfsd: "all clients done
    /// reclaiming, ending NFSv4 grace period"); 4.0 clients never say it,
    /// so with any of them the grace period runs its length.
    pub fn reclaim_complete(&mut self, client: u64) -> Result<(), Nfs4Status> {
        let c = self
            .clients
            .get_mut(&client)
            .ok_or(Nfs4Status::STALE_CLIENTID)?;
        if c.reclaim_complete {
            return Err(Nfs4Status::COMPLETE_ALREADY);
        }
        c.reclaim_complete = true;
        let all_done = self.reclaimable.iter().all(|owner| {
            self.clients
                .values()
                .any(|c| &c.owner == owner && c.reclaim_complete)
        });
        if all_done && self.grace_until.is_some() {
            self.grace_until = None;
            tracing::info!("nfsv4: all clients done reclaiming, grace period ended");
        }
        Ok(())
    }

    pub fn may_reclaim(&self, client: u64) -> bool {
        self.clients
            .get(&client)
            .is_some_and(|c| self.reclaimable.contains(&c.owner) && !c.reclaim_complete)
    }

    /// EXCHANGE_ID / SETCLIENTID (§18.35.5, simplified): the same owner and
    /// verifier get the same record; a new verifier (the client rebooted)
    /// replaces the old record and all its state.
    pub fn exchange_id(
        &mut self,
        owner: &[u8],
        verifier: [u8; 8],
        minor: u32,
        addr: IpAddr,
        now: Instant,
    ) -> Result<u64, Nfs4Status> {
        let existing = self
            .clients
            .values()
            .find(|c| c.owner == owner)
            .map(|c| (c.id, c.verifier));
        if existing.is_none() && self.clients.len() >= MAX_CLIENTS {
            self.purge_expired(now);
            if self.clients.len() >= MAX_CLIENTS {
                return Err(RESOURCE);
            }
        }
        Ok(match existing {
            Some((id, v)) if v == verifier => id,
            other => {
                if let Some((old, _)) = other {
                    self.forget_client(old);
                }
                let id = self.next_id();
                let confirm = self.next_id().to_be_bytes();
                self.clients.insert(
                    id,
                    Client {
                        id,
                        owner: owner.to_vec(),
                        verifier,
                        confirmed: false,
                        minor,
                        cs_seq: 1,
                        cs_reply: None,
                        confirm,
                        reclaim_complete: false,
                        renewed: now,
                        addr,
                    },
                );
                id
            }
        })
    }

    /// Drops a client with its sessions and opens.
    pub fn forget_client(&mut self, id: u64) {
        self.clients.remove(&id);
        self.sessions.retain(|_, s| s.client != id);
        self.opens.retain(|_, o| o.client != id);
        self.locks.forget_client(id);
        self.owners.forget_client(id);
    }

    /// The client `id`, current and within its lease; an expired one is
    /// forgotten (a lease that ran out, §8.3).
    pub fn live_client(&mut self, id: u64, now: Instant) -> Result<&mut Client, Nfs4Status> {
        let expired = match self.clients.get(&id) {
            None => return Err(Nfs4Status::STALE_CLIENTID),
            Some(c) => now.duration_since(c.renewed) > LEASE,
        };
        if expired {
            self.forget_client(id);
            return Err(Nfs4Status::EXPIRED);
        }
        let c = self.clients.get_mut(&id).expect("checked above");
        c.renewed = now;
        Ok(c)
    }

    /// Forgets every client whose lease ran out. A client's own calls find
    /// that out lazily (`live_client`); a request that would conflict
    /// with its opens or locks calls this first, so a client cut off for
    /// longer than a lease holds nothing up (as knfsd's courteous server
    /// expires a lapsed client on conflict).
    pub fn purge_expired(&mut self, now: Instant) -> usize {
        let lapsed: Vec<u64> = self
            .clients
            .values()
            .filter(|c| now.duration_since(c.renewed) > LEASE)
            .map(|c| c.id)
            .collect();
        for id in &lapsed {
            self.forget_client(*id);
        }
        lapsed.len()
    }

    /// Expires now the lease of every client that registered from `addr`
    /// (every client when None): the `nfs.expire_lease` fault. Its opens
    /// and locks go; its next call finds its session or client id gone.
    pub fn expire(&mut self, addr: Option<IpAddr>) -> usize {
        let ids: Vec<u64> = self
            .clients
            .values()
            .filter(|c| addr.is_none_or(|a| c.addr == a))
            .map(|c| c.id)
            .collect();
        for id in &ids {
            self.forget_client(*id);
        }
        ids.len()
    }

    pub fn new_session(
        &mut self,
        client: u64,
        slots: u32,
        max_cached: u32,
        max_ops: u32,
    ) -> Result<SessionId, Nfs4Status> {
        let open_sessions = self.sessions.values().filter(|s| s.client == client);
        if open_sessions.count() >= MAX_SESSIONS_PER_CLIENT {
            return Err(RESOURCE);
        }
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&client.to_be_bytes());
        id[8..].copy_from_slice(&self.next_id().to_be_bytes());
        self.sessions.insert(
            id,
            Session {
                client,
                slots: SlotTable::new(slots),
                max_cached,
                max_ops,
            },
        );
        Ok(id)
    }

    pub fn new_open(&mut self, open: Open) -> Result<StateId, Nfs4Status> {
        if self.opens.len() >= MAX_OPENS {
            return Err(RESOURCE);
        }
        let other = self.new_other();
        let seqid = open.seqid;
        self.opens.insert(other, open);
        Ok(StateId { seqid, other })
    }

    pub fn new_lock_state(&mut self, lock: LockState) -> Result<StateId, Nfs4Status> {
        if self.locks.states.len() >= MAX_LOCK_STATES {
            return Err(RESOURCE);
        }
        let other = self.new_other();
        let seqid = lock.seqid;
        self.locks.states.insert(other, lock);
        Ok(StateId { seqid, other })
    }

    /// A stateid's `other` of this boot: the boot, then a fresh number.
    fn new_other(&mut self) -> StateOther {
        let mut other = [0u8; 12];
        other[..4].copy_from_slice(&self.boot.to_be_bytes());
        other[4..].copy_from_slice(&self.next_id().to_be_bytes());
        other
    }

    /// The open of `owner` on `file`, if it has one: a second OPEN of the
    /// same file by the same owner upgrades it (RFC 8881 §9.11).
    pub fn open_by_owner(
        &mut self,
        client: u64,
        owner: &[u8],
        file: &(u32, Vec<u8>),
    ) -> Option<(StateOther, &mut Open)> {
        self.opens
            .iter_mut()
            .find(|(_, o)| o.client == client && o.owner == owner && &o.file == file)
            .map(|(k, o)| (*k, o))
    }

    /// Whether an open of `file` for `access` denying `deny` conflicts with
    /// another owner's share reservation (RFC 8881 §9.7).
    pub fn share_conflict(
        &self,
        client: u64,
        owner: &[u8],
        file: &(u32, Vec<u8>),
        access: u32,
        deny: u32,
    ) -> bool {
        self.opens.values().any(|o| {
            &o.file == file
                && !(o.client == client && o.owner == owner)
                && (o.deny & access != 0 || o.access & deny != 0)
        })
    }

    /// The open a stateid names: BAD_STATEID if unknown, STALE_STATEID
    /// from an earlier boot, OLD_STATEID if superseded (seqid 0 means
    /// "the current one" in 4.1, §8.2.2).
    pub fn open_of(&mut self, sid: &StateId) -> Result<&mut Open, Nfs4Status> {
        let unknown = self.unknown(sid);
        let open = self.opens.get_mut(&sid.other).ok_or(unknown)?;
        current(sid, open.seqid)?;
        Ok(open)
    }

    /// The lock stateid `sid` names, checked as `open_of` checks opens.
    pub fn lock_state_of(&mut self, sid: &StateId) -> Result<&mut LockState, Nfs4Status> {
        let unknown = self.unknown(sid);
        let lock = self.locks.states.get_mut(&sid.other).ok_or(unknown)?;
        current(sid, lock.seqid)?;
        Ok(lock)
    }

    /// The open-owner of the open `sid` names, whatever the stateid's
    /// seqid: 4.0 checks the owner's seqid first, so a repeated request
    /// with an older stateid still finds its owner.
    pub fn open_owner(&self, sid: &StateId) -> Result<OwnerKey, Nfs4Status> {
        let o = self
            .opens
            .get(&sid.other)
            .ok_or_else(|| self.unknown(sid))?;
        Ok(OwnerKey {
            client: o.client,
            kind: OwnerKind::Open,
            owner: o.owner.clone(),
        })
    }

    /// The lock-owner of the lock state `sid` names, as `open_owner`.
    pub fn lock_owner(&self, sid: &StateId) -> Result<OwnerKey, Nfs4Status> {
        let l = self.locks.states.get(&sid.other);
        let l = l.ok_or_else(|| self.unknown(sid))?;
        Ok(OwnerKey {
            client: l.owner.client,
            kind: OwnerKind::Lock,
            owner: l.owner.owner.clone(),
        })
    }

    /// Whether `sid` names an open or a lock state of this boot, whatever
    /// its seqid: what READ, WRITE, SETATTR and TEST_STATEID accept.
    pub fn known(&self, sid: &StateId) -> Result<(), Nfs4Status> {
        if self.opens.contains_key(&sid.other) || self.locks.states.contains_key(&sid.other) {
            Ok(())
        } else {
            Err(self.unknown(sid))
        }
    }

    /// What a stateid found nowhere is: STALE from an earlier boot, else BAD.
    fn unknown(&self, sid: &StateId) -> Nfs4Status {
        let boot = u32::from_be_bytes([sid.other[0], sid.other[1], sid.other[2], sid.other[3]]);
        if boot != self.boot {
            Nfs4Status::STALE_STATEID
        } else {
            Nfs4Status::BAD_STATEID
        }
    }
}

/// A stateid's seqid against the state's current one (0 is "current").
fn current(sid: &StateId, seqid: u32) -> Result<(), Nfs4Status> {
    if sid.seqid != 0 && sid.seqid < seqid {
        return Err(Nfs4Status::OLD_STATEID);
    }
    if sid.seqid > seqid {
        return Err(Nfs4Status::BAD_STATEID);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST_A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));

    #[test]
    fn exchange_id_is_idempotent_until_the_client_reboots() {
        let now = Instant::now();
        let mut s = State::new(7);
        let a = s.exchange_id(b"host-a", [1; 8], 1, HOST_A, now).unwrap();
        assert_eq!(s.exchange_id(b"host-a", [1; 8], 1, HOST_A, now), Ok(a));
        let sess = s.new_session(a, 4, 1024, 8).unwrap();
        let b = s.exchange_id(b"host-a", [2; 8], 1, HOST_A, now).unwrap();
        assert_ne!(a, b);
        assert!(
            !s.sessions.contains_key(&sess),
            "a rebooted client's sessions go"
        );
        assert_eq!(a >> 32, 7, "ids carry the boot");
    }

    #[test]
    fn leases_expire_and_an_expired_client_is_gone() {
        let now = Instant::now();
        let mut s = State::new(1);
        let id = s.exchange_id(b"c", [0; 8], 1, HOST_A, now).unwrap();
        assert!(s.live_client(id, now + LEASE / 2).is_ok());
        // Renewed at LEASE/2, so still alive just before LEASE*3/2.
        assert!(s.live_client(id, now + LEASE).is_ok());
        let late = now + LEASE * 3;
        assert_eq!(s.live_client(id, late).err(), Some(Nfs4Status::EXPIRED));
        assert_eq!(
            s.live_client(id, late).err(),
            Some(Nfs4Status::STALE_CLIENTID)
        );
    }

    #[test]
    fn a_lapsed_client_is_purged_when_another_needs_what_it_held() {
        let now = Instant::now();
        let mut s = State::new(1);
        let a = s.exchange_id(b"a", [0; 8], 1, HOST_A, now).unwrap();
        let later = now + LEASE / 2;
        let b = s.exchange_id(b"b", [0; 8], 1, HOST_A, later).unwrap();
        assert_eq!(s.purge_expired(now + LEASE), 0);
        assert_eq!(s.purge_expired(now + LEASE + Duration::from_secs(1)), 1);
        assert!(!s.clients.contains_key(&a) && s.clients.contains_key(&b));
    }

    #[test]
    fn the_grace_period_ends_when_every_old_client_completed_its_reclaim() {
        let now = Instant::now();
        let mut s = State::new(1);
        s.exchange_id(b"a", [0; 8], 1, HOST_A, now).unwrap();
        s.exchange_id(b"b", [0; 8], 1, HOST_A, now).unwrap();
        s.reboot(2, LEASE, now);
        let a = s.exchange_id(b"a", [0; 8], 1, HOST_A, now).unwrap();
        let b = s.exchange_id(b"b", [0; 8], 1, HOST_A, now).unwrap();
        let new = s.exchange_id(b"new", [0; 8], 1, HOST_A, now).unwrap();
        s.reclaim_complete(a).unwrap();
        s.reclaim_complete(new).unwrap();
        assert!(s.in_grace(now), "b has not completed its reclaim");
        assert_eq!(s.reclaim_complete(a), Err(Nfs4Status::COMPLETE_ALREADY));
        s.reclaim_complete(b).unwrap();
        assert!(!s.in_grace(now));
    }

    #[test]
    fn expire_now_by_address() {
        let now = Instant::now();
        let mut s = State::new(1);
        let host_b: IpAddr = "10.0.0.2".parse().unwrap();
        s.exchange_id(b"linux host-a", [0; 8], 1, HOST_A, now)
            .unwrap();
        let b = s
            .exchange_id(b"linux host-b", [0; 8], 1, host_b, now)
            .unwrap();
        assert_eq!(s.expire(Some(HOST_A)), 1);
        assert!(s.clients.contains_key(&b));
        assert_eq!(s.expire(None), 1);
        assert!(s.clients.is_empty());
    }

    #[test]
    fn grace_after_reboot_and_reclaim_only_by_old_owners() {
        let now = Instant::now();
        let mut s = State::new(1);
        let old = s.exchange_id(b"old", [0; 8], 1, HOST_A, now).unwrap();
        let sid = s
            .new_open(Open {
                client: old,
                owner: b"o".to_vec(),
                file: (1, vec![1]),
                seqid: 1,
                access: 1,
                deny: 0,
            })
            .unwrap();
        assert!(!s.in_grace(now));
        s.reboot(2, Duration::from_secs(10), now);
        assert!(s.in_grace(now + Duration::from_secs(5)));
        assert!(!s.in_grace(now + Duration::from_secs(11)));
        assert_eq!(s.open_of(&sid).err(), Some(Nfs4Status::STALE_STATEID));
        let again = s.exchange_id(b"old", [0; 8], 1, HOST_A, now).unwrap();
        let new = s.exchange_id(b"new", [0; 8], 1, HOST_A, now).unwrap();
        assert!(s.may_reclaim(again));
        assert!(!s.may_reclaim(new));
    }

    #[test]
    fn stateid_seqids() {
        let now = Instant::now();
        let mut s = State::new(1);
        let c = s.exchange_id(b"c", [0; 8], 1, HOST_A, now).unwrap();
        let mut sid = s
            .new_open(Open {
                client: c,
                owner: b"o".to_vec(),
                file: (1, vec![1]),
                seqid: 1,
                access: 1,
                deny: 0,
            })
            .unwrap();
        s.open_of(&sid).unwrap().seqid = 2;
        assert_eq!(s.open_of(&sid).err(), Some(Nfs4Status::OLD_STATEID));
        sid.seqid = 0;
        assert!(s.open_of(&sid).is_ok());
        sid.seqid = 3;
        assert_eq!(s.open_of(&sid).err(), Some(Nfs4Status::BAD_STATEID));
        sid.other[11] ^= 1;
        assert_eq!(s.open_of(&sid).err(), Some(Nfs4Status::BAD_STATEID));
    }
}
