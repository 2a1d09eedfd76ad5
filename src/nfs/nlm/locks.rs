//! The lock table: byte-range locks per file handle, shared or exclusive,
//! owned by (caller_name, svid, oh); a FIFO of blocked requests per file,
//! retried whenever locks go away; DOS share reservations.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

use super::wire::{Holder, LockArgs, NlmLock};

/// Who holds a lock. XNFS: the owner handle names the process on the
/// client; the Linux client makes it "<svid>@<nodename>", where svid is a
/// per-server counter, not a pid. Hosts sharing a nodename (network
/// namespaces of one kernel) send identical triples, so the client's
/// address is part of the identity, as knfsd keys its nlm_host by address
/// and name (fs/lockd/host.c nlmsvc_lookup_host).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner {
    pub caller: String,
    pub svid: i32,
    pub oh: Vec<u8>,
    pub host: IpAddr,
}

impl Owner {
    pub fn of(lock: &NlmLock, host: IpAddr) -> Owner {
        Owner {
            caller: lock.caller_name.clone(),
            svid: lock.svid,
            oh: lock.oh.clone(),
            host,
        }
    }
}

/// A half-open byte range; `end == u64::MAX` reaches past any end of file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub start: u64,
    pub end: u64,
}

impl Range {
    /// XNFS: l_len 0 means "to the end of the file and beyond".
    pub fn of(offset: u64, len: u64) -> Range {
        let end = if len == 0 {
            u64::MAX
        } else {
            offset.saturating_add(len)
        };
        Range { start: offset, end }
    }

    pub fn overlaps(&self, o: &Range) -> bool {
        self.start < o.end && o.start < self.end
    }

    fn len(&self) -> u64 {
        if self.end == u64::MAX {
            0
        } else {
            self.end - self.start
        }
    }

    /// What is left of `self` once `cut` is removed (zero, one or two pieces).
    fn minus(&self, cut: &Range) -> Vec<Range> {
        if !self.overlaps(cut) {
            return vec![*self];
        }
        let mut out = Vec::new();
        if self.start < cut.start {
            out.push(Range {
                start: self.start,
                end: cut.start,
            });
        }
        if cut.end < self.end {
            out.push(Range {
                start: cut.end,
                end: self.end,
            });
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Held {
    owner: Owner,
    range: Range,
    exclusive: bool,
}

/// A blocked request, kept until it can be granted or is cancelled; what
/// the GRANTED callback needs travels with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiter {
    pub client: SocketAddr,
    pub vers: u32,
    pub args: LockArgs,
}

impl Waiter {
    fn owner(&self) -> Owner {
        Owner::of(&self.args.lock, self.client.ip())
    }

    fn range(&self) -> Range {
        Range::of(self.args.lock.offset, self.args.lock.len)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Share {
    caller: String,
    oh: Vec<u8>,
    mode: u32,
    access: u32,
}

#[derive(Debug, Default)]
struct FileLocks {
    held: Vec<Held>,
    blocked: VecDeque<Waiter>,
    shares: Vec<Share>,
}

impl FileLocks {
    fn conflict(&self, owner: &Owner, range: &Range, exclusive: bool) -> Option<&Held> {
        self.held
            .iter()
            .find(|h| h.owner != *owner && h.range.overlaps(range) && (exclusive || h.exclusive))
    }

    /// POSIX semantics for one owner: a new lock replaces whatever part of
    /// the owner's own locks it overlaps (upgrade or downgrade in place).
    fn insert(&mut self, owner: Owner, range: Range, exclusive: bool) {
        self.remove(&owner, &range);
        self.held.push(Held {
            owner,
            range,
            exclusive,
        });
    }

    fn remove(&mut self, owner: &Owner, range: &Range) {
        let mut kept = Vec::with_capacity(self.held.len());
        for h in self.held.drain(..) {
            if h.owner != *owner {
                kept.push(h);
                continue;
            }
            for piece in h.range.minus(range) {
                kept.push(Held {
                    owner: h.owner.clone(),
                    range: piece,
                    exclusive: h.exclusive,
                });
            }
        }
        self.held = kept;
    }

    /// Grants every blocked request that no longer conflicts, in arrival order.
    fn wake(&mut self) -> Vec<Waiter> {
        let mut granted = Vec::new();
        let mut still = VecDeque::new();
        while let Some(w) = self.blocked.pop_front() {
            let (owner, range) = (w.owner(), w.range());
            if self.conflict(&owner, &range, w.args.exclusive).is_none() {
                self.insert(owner, range, w.args.exclusive);
                granted.push(w);
            } else {
                still.push_back(w);
            }
        }
        self.blocked = still;
        granted
    }

    fn is_empty(&self) -> bool {
        self.held.is_empty() && self.blocked.is_empty() && self.shares.is_empty()
    }
}

/// What LOCK did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockOutcome {
    Granted,
    /// Conflicts and the client did not ask to wait.
    Denied,
    /// Queued: a GRANTED callback follows when it is granted.
    Blocked,
}

/// Every file's locks.
#[derive(Debug, Default)]
pub struct LockTable {
    files: HashMap<Vec<u8>, FileLocks>,
}

impl LockTable {
    pub fn new() -> LockTable {
        LockTable::default()
    }

    /// TEST: the lock that would stop this one, if any.
    pub fn test(&self, lock: &NlmLock, exclusive: bool, host: IpAddr) -> Option<Holder> {
        let f = self.files.get(&lock.fh)?;
        let h = f.conflict(
            &Owner::of(lock, host),
            &Range::of(lock.offset, lock.len),
            exclusive,
        )?;
        Some(Holder {
            exclusive: h.exclusive,
            svid: h.owner.svid,
            oh: h.owner.oh.clone(),
            offset: h.range.start,
            len: h.range.len(),
        })
    }

    /// LOCK: granted at once, denied, or queued when `waiter` is given
    /// (a blocking request). A repeated blocking request (the Linux client
    /// polls every 30 s) does not queue twice.
    pub fn lock(&mut self, waiter: Waiter) -> LockOutcome {
        let owner = waiter.owner();
        let range = waiter.range();
        let exclusive = waiter.args.exclusive;
        let f = self.files.entry(waiter.args.lock.fh.clone()).or_default();
        if f.conflict(&owner, &range, exclusive).is_none() {
            f.blocked
                .retain(|w| !(w.owner() == owner && w.range() == range));
            f.insert(owner, range, exclusive);
            return LockOutcome::Granted;
        }
        if !waiter.args.block {
            return LockOutcome::Denied;
        }
        match f
            .blocked
            .iter_mut()
            .find(|w| w.owner() == owner && w.range() == range)
        {
            Some(w) => *w = waiter,
            None => f.blocked.push_back(waiter),
        }
        LockOutcome::Blocked
    }

    /// UNLOCK: always succeeds (unlocking nothing is not an error); returns
    /// the blocked requests it made grantable (already granted in the table).
    pub fn unlock(&mut self, lock: &NlmLock, host: IpAddr) -> Vec<Waiter> {
        let Some(f) = self.files.get_mut(&lock.fh) else {
            return Vec::new();
        };
        f.remove(&Owner::of(lock, host), &Range::of(lock.offset, lock.len));
        let granted = f.wake();
        self.prune(&lock.fh);
        granted
    }

    /// CANCEL: drops a queued request; true if there was one.
    pub fn cancel(&mut self, lock: &NlmLock, exclusive: bool, host: IpAddr) -> bool {
        let Some(f) = self.files.get_mut(&lock.fh) else {
            return false;
        };
        let (owner, range) = (Owner::of(lock, host), Range::of(lock.offset, lock.len));
        let before = f.blocked.len();
        f.blocked.retain(|w| {
            !(w.owner() == owner && w.range() == range && w.args.exclusive == exclusive)
        });
        let found = f.blocked.len() != before;
        self.prune(&lock.fh);
        found
    }

    /// FREE_ALL or a client's reboot: forget everything `caller` held or
    /// waited for; returns what that made grantable.
    pub fn free_all(&mut self, caller: &str) -> Vec<Waiter> {
        let mut granted = Vec::new();
        for f in self.files.values_mut() {
            f.held.retain(|h| h.owner.caller != caller);
            f.blocked.retain(|w| w.args.lock.caller_name != caller);
            f.shares.retain(|s| s.caller != caller);
            granted.extend(f.wake());
        }
        self.files.retain(|_, f| !f.is_empty());
        granted
    }

    /// A client host rebooted (SM_NOTIFY from its address): forget what it
    /// held or waited for, under whatever name; returns what that made
    /// grantable.
    pub fn free_host(&mut self, host: IpAddr) -> Vec<Waiter> {
        let mut granted = Vec::new();
        for f in self.files.values_mut() {
            f.held.retain(|h| h.owner.host != host);
            f.blocked.retain(|w| w.client.ip() != host);
            granted.extend(f.wake());
        }
        self.files.retain(|_, f| !f.is_empty());
        granted
    }

    /// A server restart loses every lock.
    pub fn clear(&mut self) {
        self.files.clear();
    }

    /// The callers that hold or wait for a lock (the hosts NSM must notify).
    pub fn callers(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .files
            .values()
            .flat_map(|f| {
                f.held
                    .iter()
                    .map(|h| h.owner.caller.clone())
                    .chain(f.blocked.iter().map(|w| w.args.lock.caller_name.clone()))
            })
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// How many locks are held (for tests and logs).
    pub fn held_count(&self) -> usize {
        self.files.values().map(|f| f.held.len()).sum()
    }

    pub fn blocked_count(&self) -> usize {
        self.files.values().map(|f| f.blocked.len()).sum()
    }

    /// SHARE: refused when the requested access meets another owner's deny
    /// mode or the requested deny mode meets another owner's access.
    pub fn share(&mut self, caller: &str, fh: &[u8], oh: &[u8], mode: u32, access: u32) -> bool {
        let f = self.files.entry(fh.to_vec()).or_default();
        let clash = f.shares.iter().any(|s| {
            !(s.caller == caller && s.oh == oh) && (s.mode & access != 0 || mode & s.access != 0)
        });
        if clash {
            self.prune(fh);
            return false;
        }
        f.shares.retain(|s| !(s.caller == caller && s.oh == oh));
        f.shares.push(Share {
            caller: caller.to_string(),
            oh: oh.to_vec(),
            mode,
            access,
        });
        true
    }

    pub fn unshare(&mut self, caller: &str, fh: &[u8], oh: &[u8]) {
        if let Some(f) = self.files.get_mut(fh) {
            f.shares.retain(|s| !(s.caller == caller && s.oh == oh));
        }
        self.prune(fh);
    }

    fn prune(&mut self, fh: &[u8]) {
        if self.files.get(fh).is_some_and(FileLocks::is_empty) {
            self.files.remove(fh);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn waiter(caller: &str, svid: i32, off: u64, len: u64, excl: bool, block: bool) -> Waiter {
        Waiter {
            client: "127.0.0.1:700".parse().unwrap(),
            vers: 4,
            args: LockArgs {
                block,
                exclusive: excl,
                lock: NlmLock {
                    caller_name: caller.into(),
                    fh: vec![1; 8],
                    oh: format!("{svid}@{caller}").into_bytes(),
                    svid,
                    offset: off,
                    len,
                },
                ..LockArgs::default()
            },
        }
    }

    #[test]
    fn shared_locks_coexist_exclusive_conflicts() {
        let mut t = LockTable::new();
        assert_eq!(
            t.lock(waiter("a", 1, 0, 0, false, false)),
            LockOutcome::Granted
        );
        assert_eq!(
            t.lock(waiter("b", 2, 0, 0, false, false)),
            LockOutcome::Granted
        );
        assert_eq!(
            t.lock(waiter("c", 3, 10, 5, true, false)),
            LockOutcome::Denied
        );
        let h = t
            .test(&waiter("c", 3, 10, 5, true, false).args.lock, true, HOST)
            .unwrap();
        assert!(!h.exclusive);
        assert_eq!((h.offset, h.len), (0, 0));
        // Shared test against shared holders passes.
        assert!(
            t.test(&waiter("c", 3, 10, 5, false, false).args.lock, false, HOST)
                .is_none()
        );
    }

    #[test]
    fn disjoint_ranges_do_not_conflict_and_eof_locks_reach_far() {
        let mut t = LockTable::new();
        assert_eq!(
            t.lock(waiter("a", 1, 0, 100, true, false)),
            LockOutcome::Granted
        );
        assert_eq!(
            t.lock(waiter("b", 2, 100, 100, true, false)),
            LockOutcome::Granted
        );
        assert_eq!(
            t.lock(waiter("c", 3, 1 << 50, 0, true, false)),
            LockOutcome::Granted
        );
        assert_eq!(
            t.lock(waiter("d", 4, u64::MAX - 1, 1, true, false)),
            LockOutcome::Denied
        );
    }

    #[test]
    fn owner_upgrades_its_own_lock_and_partial_unlock_splits() {
        let mut t = LockTable::new();
        assert_eq!(
            t.lock(waiter("a", 1, 0, 0, false, false)),
            LockOutcome::Granted
        );
        assert_eq!(
            t.lock(waiter("a", 1, 0, 0, true, false)),
            LockOutcome::Granted
        );
        assert_eq!(t.held_count(), 1);
        t.unlock(&waiter("a", 1, 10, 10, false, false).args.lock, HOST);
        assert_eq!(t.held_count(), 2);
        assert!(
            t.test(&waiter("b", 2, 12, 2, true, false).args.lock, true, HOST)
                .is_none()
        );
        assert!(
            t.test(&waiter("b", 2, 5, 2, true, false).args.lock, true, HOST)
                .is_some()
        );
        assert!(
            t.test(&waiter("b", 2, 25, 2, true, false).args.lock, true, HOST)
                .is_some()
        );
    }

    #[test]
    fn blocked_queue_is_granted_in_order_on_unlock() {
        let mut t = LockTable::new();
        let holder = waiter("a", 1, 0, 0, true, true);
        assert_eq!(t.lock(holder.clone()), LockOutcome::Granted);
        assert_eq!(
            t.lock(waiter("b", 2, 0, 0, true, true)),
            LockOutcome::Blocked
        );
        assert_eq!(
            t.lock(waiter("c", 3, 0, 0, true, true)),
            LockOutcome::Blocked
        );
        // A re-poll does not queue twice.
        assert_eq!(
            t.lock(waiter("b", 2, 0, 0, true, true)),
            LockOutcome::Blocked
        );
        assert_eq!(t.blocked_count(), 2);
        let granted = t.unlock(&holder.args.lock, HOST);
        assert_eq!(granted.len(), 1);
        assert_eq!(granted[0].args.lock.caller_name, "b");
        assert_eq!(t.blocked_count(), 1);
        // b now holds it: c still waits; b's unlock hands it to c.
        let granted = t.unlock(&waiter("b", 2, 0, 0, true, true).args.lock, HOST);
        assert_eq!(granted[0].args.lock.caller_name, "c");
        assert_eq!(t.blocked_count(), 0);
    }

    #[test]
    fn shared_waiters_are_granted_together() {
        let mut t = LockTable::new();
        let holder = waiter("a", 1, 0, 0, true, true);
        t.lock(holder.clone());
        t.lock(waiter("b", 2, 0, 0, false, true));
        t.lock(waiter("c", 3, 0, 0, false, true));
        assert_eq!(t.unlock(&holder.args.lock, HOST).len(), 2);
    }

    #[test]
    fn cancel_and_free_all() {
        let mut t = LockTable::new();
        t.lock(waiter("a", 1, 0, 0, true, true));
        t.lock(waiter("b", 2, 0, 0, true, true));
        assert!(t.cancel(&waiter("b", 2, 0, 0, true, true).args.lock, true, HOST));
        assert!(!t.cancel(&waiter("b", 2, 0, 0, true, true).args.lock, true, HOST));
        t.lock(waiter("c", 3, 0, 0, true, true));
        assert_eq!(t.callers(), vec!["a".to_string(), "c".to_string()]);
        let granted = t.free_all("a");
        assert_eq!(granted.len(), 1);
        assert_eq!(granted[0].args.lock.caller_name, "c");
        t.free_all("c");
        assert_eq!(t.held_count(), 0);
        assert!(t.files.is_empty());
    }

    #[test]
    fn same_owner_triple_from_two_hosts_conflicts_and_reboot_frees_one_host() {
        let mut t = LockTable::new();
        let mut a = waiter("node", 1, 0, 0, true, true);
        a.client = "10.0.0.2:700".parse().unwrap();
        let mut b = waiter("node", 1, 0, 0, true, true);
        b.client = "10.0.0.3:700".parse().unwrap();
        assert_eq!(t.lock(a), LockOutcome::Granted);
        // Same caller, svid and oh, another address: another owner.
        assert_eq!(t.lock(b.clone()), LockOutcome::Blocked);
        let granted = t.free_host("10.0.0.2".parse().unwrap());
        assert_eq!(granted, vec![b]);
        assert_eq!(t.held_count(), 1);
        assert_eq!(t.blocked_count(), 0);
    }

    #[test]
    fn share_reservations() {
        let mut t = LockTable::new();
        // a reads and denies writers.
        assert!(t.share("a", b"f", b"1", 2, 1));
        assert!(t.share("b", b"f", b"2", 0, 1));
        assert!(!t.share("c", b"f", b"3", 0, 2));
        t.unshare("a", b"f", b"1");
        assert!(t.share("c", b"f", b"3", 0, 2));
    }
}
