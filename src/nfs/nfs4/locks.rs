//! Byte-range locks (RFC 8881 §9.1, §18.10–§18.12, RFC 7530 §9): who holds
//! which range of which file, and the lock stateids that name a
//! lock-owner's locks on one file. Pure bookkeeping: no files, no wire.
//!
//! Ranges follow POSIX, as the Linux client expects (OPEN answers
//! OPEN4_RESULT_LOCKTYPE_POSIX): a lock-owner's new lock replaces its own
//! locks where they overlap, and an unlock may split a range in two.

use std::collections::HashMap;

use super::state::StateOther;
use super::status::Nfs4Status;

/// RFC 8881 §18.10 nfs_lock_type4
pub const READ_LT: u32 = 1;
pub const WRITE_LT: u32 = 2;
pub const READW_LT: u32 = 3;
pub const WRITEW_LT: u32 = 4;

/// A length of all ones means "to the end of the file, and beyond".
pub const TO_EOF: u64 = u64::MAX;

/// Bounds on what clients can make us keep (NFS4ERR_RESOURCE past them).
pub const MAX_HELD: usize = 65536;
pub const MAX_LOCK_STATES: usize = 65536;

/// RFC 8881 §3.3.13 lock_owner4: a client and its opaque owner name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LockOwner {
    pub client: u64,
    pub owner: Vec<u8>,
}

/// The file a lock is on: export id and kernel handle bytes, as an open's.
pub type FileKey = (u32, Vec<u8>);

/// Bytes `first..=last` of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub first: u64,
    pub last: u64,
}

impl Span {
    /// The span of (offset, length) as the wire gives it: a zero length,
    /// or one that runs past 2^64 - 1 without being all ones, is INVAL
    /// (RFC 8881 §18.10.4).
    pub fn of(offset: u64, length: u64) -> Result<Span, Nfs4Status> {
        match length {
            0 => Err(Nfs4Status::INVAL),
            TO_EOF => Ok(Span {
                first: offset,
                last: u64::MAX,
            }),
            n => offset
                .checked_add(n - 1)
                .map(|last| Span {
                    first: offset,
                    last,
                })
                .ok_or(Nfs4Status::INVAL),
        }
    }

    /// The wire's length for this span.
    pub fn length(&self) -> u64 {
        if self.last == u64::MAX {
            TO_EOF
        } else {
            self.last - self.first + 1
        }
    }

    fn overlaps(&self, o: &Span) -> bool {
        self.first <= o.last && o.first <= self.last
    }
}

/// One held lock.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Held {
    owner: LockOwner,
    span: Span,
    write: bool,
}

/// Why a lock was refused: the first conflicting lock (LOCK4denied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub span: Span,
    pub write: bool,
    pub owner: LockOwner,
}

/// A lock stateid's record: one lock-owner on one file, begun from an open.
#[derive(Debug, Clone)]
pub struct LockState {
    pub owner: LockOwner,
    pub file: FileKey,
    /// The open stateid the lock-owner was first tied to (CLOSE of it
    /// ends this state too).
    pub open: StateOther,
    pub seqid: u32,
}

/// Every byte-range lock and lock stateid of one server instance.
#[derive(Debug, Default)]
pub struct Locks {
    held: HashMap<FileKey, Vec<Held>>,
    pub states: HashMap<StateOther, LockState>,
}

impl Locks {
    /// The first lock of another owner that a lock of `owner` on `span`
    /// would conflict with: any write lock, or any lock if `write`.
    pub fn conflict(
        &self,
        file: &FileKey,
        owner: &LockOwner,
        span: Span,
        write: bool,
    ) -> Option<Denied> {
        self.held
            .get(file)?
            .iter()
            .find(|h| &h.owner != owner && h.span.overlaps(&span) && (write || h.write))
            .map(|h| Denied {
                span: h.span,
                write: h.write,
                owner: h.owner.clone(),
            })
    }

    /// Takes a lock, replacing the owner's own locks on the span (an
    /// upgrade, a downgrade or a merge), unless another owner's conflicts.
    pub fn lock(
        &mut self,
        file: &FileKey,
        owner: &LockOwner,
        span: Span,
        write: bool,
    ) -> Result<(), LockError> {
        if let Some(d) = self.conflict(file, owner, span, write) {
            return Err(LockError::Denied(d));
        }
        // An unlock may split one range into two: room for both.
        if self.held_count() + 2 > MAX_HELD {
            return Err(LockError::Status(Nfs4Status::RESOURCE));
        }
        self.unlock(file, owner, span);
        self.held.entry(file.clone()).or_default().push(Held {
            owner: owner.clone(),
            span,
            write,
        });
        Ok(())
    }

    /// Releases the owner's locks on `span`, keeping what lies outside it.
    pub fn unlock(&mut self, file: &FileKey, owner: &LockOwner, span: Span) {
        let Some(list) = self.held.get_mut(file) else {
            return;
        };
        let mut kept = Vec::with_capacity(list.len() + 1);
        for h in list.drain(..) {
            if &h.owner != owner || !h.span.overlaps(&span) {
                kept.push(h);
                continue;
            }
            if h.span.first < span.first {
                kept.push(Held {
                    span: Span {
                        first: h.span.first,
                        last: span.first - 1,
                    },
                    ..h.clone()
                });
            }
            if h.span.last > span.last {
                kept.push(Held {
                    span: Span {
                        first: span.last + 1,
                        last: h.span.last,
                    },
                    ..h
                });
            }
        }
        if kept.is_empty() {
            self.held.remove(file);
        } else {
            *list = kept;
        }
    }

    /// Whether `owner` holds any lock on `file` (any file if None).
    pub fn holds(&self, owner: &LockOwner, file: Option<&FileKey>) -> bool {
        self.held
            .iter()
            .filter(|(f, _)| file.is_none_or(|want| *f == want))
            .any(|(_, list)| list.iter().any(|h| &h.owner == owner))
    }

    pub fn held_count(&self) -> usize {
        self.held.values().map(Vec::len).sum()
    }

    /// The lock stateid of `owner` on `file`, if it has one.
    pub fn state_of(&self, owner: &LockOwner, file: &FileKey) -> Option<StateOther> {
        self.states
            .iter()
            .find(|(_, s)| &s.owner == owner && &s.file == file)
            .map(|(k, _)| *k)
    }

    /// Drops a lock stateid and the locks of its owner on its file.
    pub fn drop_state(&mut self, other: &StateOther) {
        if let Some(s) = self.states.remove(other) {
            self.unlock(&s.file, &s.owner, Span::of(0, TO_EOF).expect("whole file"));
        }
    }

    /// CLOSE of an open: the lock stateids begun from it end with it,
    /// and their locks with them (as a POSIX close releases them).
    pub fn drop_open(&mut self, open: &StateOther) {
        let ended: Vec<StateOther> = self
            .states
            .iter()
            .filter(|(_, s)| &s.open == open)
            .map(|(k, _)| *k)
            .collect();
        for other in ended {
            self.drop_state(&other);
        }
    }

    /// RELEASE_LOCKOWNER (RFC 7530 §16.37): forgets an owner that holds
    /// no locks; LOCKS_HELD while it holds any.
    pub fn release_owner(&mut self, owner: &LockOwner) -> Result<(), Nfs4Status> {
        if self.holds(owner, None) {
            return Err(Nfs4Status::LOCKS_HELD);
        }
        self.states.retain(|_, s| &s.owner != owner);
        Ok(())
    }

    /// A client that went away (expired lease, reboot, DESTROY_CLIENTID)
    /// loses every lock it held.
    pub fn forget_client(&mut self, client: u64) {
        self.states.retain(|_, s| s.owner.client != client);
        self.held.retain(|_, list| {
            list.retain(|h| h.owner.client != client);
            !list.is_empty()
        });
    }

    pub fn clear(&mut self) {
        self.held.clear();
        self.states.clear();
    }
}

/// Why LOCK failed.
#[derive(Debug, PartialEq, Eq)]
pub enum LockError {
    Denied(Denied),
    Status(Nfs4Status),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(client: u64, name: &str) -> LockOwner {
        LockOwner {
            client,
            owner: name.as_bytes().to_vec(),
        }
    }

    fn span(first: u64, last: u64) -> Span {
        Span { first, last }
    }

    fn file() -> FileKey {
        (1, vec![7; 8])
    }

    #[test]
    fn spans_from_the_wire() {
        assert_eq!(Span::of(10, 5), Ok(span(10, 14)));
        assert_eq!(Span::of(10, TO_EOF), Ok(span(10, u64::MAX)));
        assert_eq!(Span::of(10, 0), Err(Nfs4Status::INVAL));
        assert_eq!(Span::of(u64::MAX - 1, 3), Err(Nfs4Status::INVAL));
        // Reaching the last byte is "to the end" whichever way it was asked.
        assert_eq!(Span::of(u64::MAX - 1, 2).map(|s| s.length()), Ok(TO_EOF));
        assert_eq!(Span::of(100, 7).map(|s| s.length()), Ok(7));
        assert_eq!(span(0, u64::MAX).length(), TO_EOF);
    }

    #[test]
    fn readers_share_and_a_writer_excludes_other_owners_only() {
        let mut t = Locks::default();
        let (a, b) = (owner(1, "a"), owner(2, "b"));
        t.lock(&file(), &a, span(0, 99), false).unwrap();
        t.lock(&file(), &b, span(50, 149), false).unwrap();
        let Err(LockError::Denied(d)) = t.lock(&file(), &b, span(0, 9), true) else {
            panic!("a write lock over a's read lock must be denied");
        };
        assert_eq!((d.span, d.write, d.owner), (span(0, 99), false, a.clone()));
        // Beyond a's range b may write; its own read lock is upgraded.
        t.lock(&file(), &b, span(100, 149), true).unwrap();
        assert!(t.conflict(&file(), &a, span(120, 120), false).is_some());
        assert!(t.conflict(&file(), &a, span(0, 99), true).is_some());
        assert!(t.conflict(&file(), &b, span(0, 200), false).is_none());
        // Another file is another lock space.
        assert!(
            t.conflict(&(2, vec![7; 8]), &a, span(0, 200), true)
                .is_none()
        );
    }

    #[test]
    fn an_unlock_in_the_middle_splits_and_the_rest_still_conflicts() {
        let mut t = Locks::default();
        let (a, b) = (owner(1, "a"), owner(1, "b"));
        t.lock(&file(), &a, span(0, u64::MAX), true).unwrap();
        t.unlock(&file(), &a, span(10, 19));
        assert_eq!(t.held_count(), 2);
        t.lock(&file(), &b, span(10, 19), true).unwrap();
        assert!(matches!(
            t.lock(&file(), &b, span(19, 20), true),
            Err(LockError::Denied(Denied { span: s, .. })) if s == span(20, u64::MAX)
        ));
        t.unlock(&file(), &a, span(0, u64::MAX));
        assert!(!t.holds(&a, None));
        t.lock(&file(), &b, span(0, u64::MAX), true).unwrap();
        assert_eq!(
            t.held_count(),
            1,
            "b's own locks are replaced, not kept twice"
        );
    }

    #[test]
    fn owners_states_and_clients_end_with_their_locks() {
        let mut t = Locks::default();
        let (a, b) = (owner(1, "a"), owner(2, "b"));
        let (sa, sb) = ([1; 12], [2; 12]);
        for (s, o, open) in [(sa, &a, [9; 12]), (sb, &b, [8; 12])] {
            t.states.insert(
                s,
                LockState {
                    owner: o.clone(),
                    file: file(),
                    open,
                    seqid: 1,
                },
            );
            t.lock(&file(), o, span(0, 9), false).unwrap();
        }
        assert_eq!(t.state_of(&a, &file()), Some(sa));
        assert_eq!(t.release_owner(&a), Err(Nfs4Status::LOCKS_HELD));
        t.unlock(&file(), &a, span(0, 9));
        assert_eq!(t.release_owner(&a), Ok(()));
        assert_eq!(t.state_of(&a, &file()), None);
        // CLOSE of b's open ends its lock state and its locks.
        t.drop_open(&[8; 12]);
        assert!(t.states.is_empty() && t.held_count() == 0);
        t.lock(&file(), &a, span(0, 9), true).unwrap();
        t.forget_client(1);
        assert_eq!(t.held_count(), 0);
    }
}
