//! The duplicate-request cache: a retransmitted non-idempotent call is
//! answered with the reply of its first execution instead of being executed
//! again (a second REMOVE would answer NFS3ERR_NOENT for a file the first one
//! removed). This is the cache of Juszczak, "Improving the Performance and
//! Correctness of an NFS Server" (USENIX 1989), which knfsd keeps too.
//!
//! Entries are keyed by xid, client address, program, version, procedure and
//! a checksum of the arguments (a reused xid with other arguments is a new
//! call). The checksum covers the arguments' length and their first and
//! last `CSUM_EDGE` bytes, not all of them: knfsd sums only the first 256
//! bytes (RC_CSUMLEN) and the length, because summing a 1 MiB WRITE's data
//! byte by byte cost more than writing it (bench/README.md, writeperf). The
//! head holds every argument but WRITE's and SYMLINK's data, whose length and
//! edges still tell a reused xid from a retransmission. The cache holds at
//! most `capacity` entries, oldest evicted first.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use super::fnv::fnv1a64;
use super::nfs3;

/// How many replies the server keeps by default; knfsd sizes its cache from
/// memory, a few thousand entries on small machines.
pub const DEFAULT_CAPACITY: usize = 4096;

/// Bytes summed at each end of the arguments (knfsd's RC_CSUMLEN is 256).
const CSUM_EDGE: usize = 256;

/// The arguments' checksum for the key: length, head and tail.
fn args_sum(args: &[u8]) -> u64 {
    let head = &args[..args.len().min(CSUM_EDGE)];
    let tail = &args[args.len().saturating_sub(CSUM_EDGE).max(head.len())..];
    let mut h = fnv1a64(head);
    h ^= fnv1a64(tail).rotate_left(21);
    h ^ (args.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// RFC 1813 procedures whose second execution differs from the first:
/// SETATTR, WRITE, CREATE, MKDIR, SYMLINK, MKNOD, REMOVE, RMDIR, RENAME, LINK.
/// NFSv4 COMPOUNDs are not cached here (neither does knfsd): 4.1's session
/// slots replay a whole COMPOUND, and 4.0's owners replay the operations
/// that change open and lock state (`nfs4::owners`).
pub fn is_non_idempotent(prog: u32, vers: u32, proc_: u32) -> bool {
    prog == nfs3::PROGRAM && vers == nfs3::VERSION && matches!(proc_, 2 | 7..=15)
}

/// Identifies one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DrcKey {
    pub xid: u32,
    pub client: SocketAddr,
    pub prog: u32,
    pub vers: u32,
    pub proc_: u32,
    pub args_sum: u64,
}

impl DrcKey {
    pub fn new(
        xid: u32,
        client: SocketAddr,
        prog: u32,
        vers: u32,
        proc_: u32,
        args: &[u8],
    ) -> Self {
        DrcKey {
            xid,
            client,
            prog,
            vers,
            proc_,
            args_sum: args_sum(args),
        }
    }
}

#[derive(Debug)]
enum Slot {
    InProgress,
    Done(Arc<[u8]>),
}

/// What the cache says about a call.
#[derive(Debug)]
pub enum Lookup {
    /// First time seen: execute it, then `finish` or `abort` the key.
    New,
    /// The same call is being executed right now: drop this copy, as knfsd
    /// does; the reply to the first one answers both.
    InProgress,
    /// Executed before: send this reply again.
    Replay(Arc<[u8]>),
}

#[derive(Debug, Default)]
struct Inner {
    slots: HashMap<DrcKey, Slot>,
    order: VecDeque<DrcKey>,
}

#[derive(Debug)]
pub struct ReplyCache {
    inner: Mutex<Inner>,
    capacity: usize,
}

impl ReplyCache {
    pub fn new(capacity: usize) -> ReplyCache {
        ReplyCache {
            inner: Mutex::new(Inner::default()),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Looks a call up; a new call is recorded as in progress.
    pub fn begin(&self, key: DrcKey) -> Lookup {
        let mut inner = self.lock();
        match inner.slots.get(&key) {
            Some(Slot::InProgress) => return Lookup::InProgress,
            Some(Slot::Done(reply)) => return Lookup::Replay(reply.clone()),
            None => {}
        }
        while inner.slots.len() >= self.capacity {
            let Some(old) = inner.order.pop_front() else {
                break;
            };
            inner.slots.remove(&old);
        }
        inner.slots.insert(key, Slot::InProgress);
        inner.order.push_back(key);
        Lookup::New
    }

    /// Records the reply of a call `begin` answered `New` for.
    pub fn finish(&self, key: &DrcKey, reply: &[u8]) {
        let mut inner = self.lock();
        // Evicted meanwhile (a burst of other calls): nothing to keep.
        if let Some(slot) = inner.slots.get_mut(key) {
            *slot = Slot::Done(reply.into());
        }
    }

    /// Forgets a call whose execution produced no reply to keep.
    pub fn abort(&self, key: &DrcKey) {
        let mut inner = self.lock();
        if inner.slots.remove(key).is_some() {
            inner.order.retain(|k| k != key);
        }
    }

    /// Forgets everything (a server restart loses its cache).
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.slots.clear();
        inner.order.clear();
    }

    pub fn len(&self) -> usize {
        self.lock().slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Aborts an in-progress entry unless the reply was recorded, so a handler
/// that panics does not leave its call "in progress" forever (every
/// retransmission would then be dropped).
#[derive(Debug)]
pub struct Pending<'a> {
    cache: &'a ReplyCache,
    key: DrcKey,
    done: bool,
}

impl<'a> Pending<'a> {
    pub fn new(cache: &'a ReplyCache, key: DrcKey) -> Self {
        Pending {
            cache,
            key,
            done: false,
        }
    }

    pub fn finish(mut self, reply: &[u8]) {
        self.cache.finish(&self.key, reply);
        self.done = true;
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.cache.abort(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(xid: u32, args: &[u8]) -> DrcKey {
        DrcKey::new(xid, "127.0.0.1:900".parse().unwrap(), 100003, 3, 12, args)
    }

    #[test]
    fn replays_in_progress_and_args_checksum() {
        let c = ReplyCache::new(8);
        assert!(matches!(c.begin(key(1, b"a")), Lookup::New));
        assert!(matches!(c.begin(key(1, b"a")), Lookup::InProgress));
        // Same xid, other arguments: another call.
        assert!(matches!(c.begin(key(1, b"b")), Lookup::New));
        c.finish(&key(1, b"a"), b"reply");
        match c.begin(key(1, b"a")) {
            Lookup::Replay(r) => assert_eq!(&*r, b"reply"),
            other => panic!("expected a replay, got {other:?}"),
        }
        let mut other_port = key(1, b"a");
        other_port.client = "127.0.0.1:901".parse().unwrap();
        assert!(matches!(c.begin(other_port), Lookup::New));
    }

    #[test]
    fn checksum_sees_length_and_edges_of_large_args() {
        let big = vec![7u8; 1 << 20];
        let k = key(3, &big);
        let mut head = big.clone();
        head[CSUM_EDGE - 1] ^= 1;
        assert_ne!(key(3, &head), k, "a change in the head is another call");
        let mut tail = big.clone();
        tail[big.len() - CSUM_EDGE] ^= 1;
        assert_ne!(key(3, &tail), k, "a change in the tail is another call");
        assert_ne!(key(3, &big[..big.len() - 4]), k, "another length");
        // The bound that keeps a WRITE's megabyte out of the sum.
        let mut middle = big.clone();
        middle[big.len() / 2] ^= 1;
        assert_eq!(key(3, &middle), k, "the middle is not summed");
        // Short arguments are summed whole, however they overlap.
        let small = b"0123456789".repeat(40);
        for i in 0..small.len() {
            let mut m = small.clone();
            m[i] ^= 1;
            assert_ne!(key(3, &m), key(3, &small), "byte {i}");
        }
    }

    #[test]
    fn bounded_oldest_evicted_first() {
        let c = ReplyCache::new(4);
        for xid in 0..10 {
            assert!(matches!(c.begin(key(xid, b"")), Lookup::New));
            c.finish(&key(xid, b""), &xid.to_be_bytes());
        }
        assert_eq!(c.len(), 4);
        assert!(matches!(c.begin(key(9, b"")), Lookup::Replay(_)));
        assert!(matches!(c.begin(key(0, b"")), Lookup::New));
    }

    #[test]
    fn dropped_pending_entry_is_forgotten() {
        let c = ReplyCache::new(4);
        assert!(matches!(c.begin(key(5, b"")), Lookup::New));
        drop(Pending::new(&c, key(5, b"")));
        assert!(c.is_empty());
        assert!(matches!(c.begin(key(5, b"")), Lookup::New));
        Pending::new(&c, key(5, b"")).finish(b"ok");
        assert!(matches!(c.begin(key(5, b"")), Lookup::Replay(_)));
    }

    #[test]
    fn only_changing_nfs3_procs_are_cached() {
        assert!(is_non_idempotent(100003, 3, 12));
        assert!(is_non_idempotent(100003, 3, 2));
        assert!(!is_non_idempotent(100003, 3, 1));
        assert!(!is_non_idempotent(100003, 3, 6));
        assert!(!is_non_idempotent(100005, 3, 1));
    }
}
