//! Byte-range lock operations: LOCK, LOCKT, LOCKU (RFC 8881 §18.10–§18.12)
//! and 4.0's RELEASE_LOCKOWNER (RFC 7530 §16.37). A conflicting lock is
//! answered DENIED at once, blocking types too: the Linux client polls
//! (it backs off from 1 s up to 30 s), as it does against knfsd.

use std::time::Instant;

use super::Nfs4;
use super::compound::{Compound, Flow, OpFail, OpResult};
use super::file_ops::{file_key, regular_only};
use super::locks::{self, Denied, LockError, LockOwner, LockState, Span};
use super::ops;
use super::owners::{OwnerKey, OwnerKind, Replay};
use super::session_ops::{get_stateid, put_stateid};
use super::state::{State, StateId};
use super::status::Nfs4Status;
use crate::nfs::xdr::{XdrError, XdrReader, XdrWriter};

/// RFC 8881 §18.16 share_access bits an open must have for each lock type.
const SHARE_ACCESS_READ: u32 = 1;
const SHARE_ACCESS_WRITE: u32 = 2;

/// Reads nfs_lock_type4; true for a write (exclusive) lock.
fn lock_type(r: &mut XdrReader<'_>) -> Result<bool, XdrError> {
    let at = r.position();
    match r.u32()? {
        locks::READ_LT | locks::READW_LT => Ok(false),
        locks::WRITE_LT | locks::WRITEW_LT => Ok(true),
        value => Err(XdrError::BadEnum { at, value }),
    }
}

fn lock_owner(r: &mut XdrReader<'_>) -> Result<LockOwner, XdrError> {
    Ok(LockOwner {
        client: r.u64()?,
        owner: r.opaque(1024)?.to_vec(),
    })
}

/// DENIED with its LOCK4denied: the conflicting lock, for the client's
/// F_GETLK and its messages.
fn denied(d: Denied) -> OpFail {
    let mut w = XdrWriter::new();
    w.u64(d.span.first)
        .u64(d.span.length())
        .u32(if d.write {
            locks::WRITE_LT
        } else {
            locks::READ_LT
        })
        .u64(d.owner.client)
        .opaque(&d.owner.owner);
    OpFail::WithResult(Nfs4Status::DENIED, w.as_bytes().to_vec())
}

/// RFC 8881 §18.10.3 locker4
enum Locker {
    /// open_to_lock_owner4: the first lock of a lock-owner, tied to an open.
    New { open: StateId, owner: LockOwner },
    /// exist_lock_owner4
    Existing { lock: StateId },
}

/// Whether lock state `l` may be used here: it is on the current file and,
/// in 4.1, the session's client's own. Stateids are guessable (a boot and
/// a counter), so one client must not unlock or extend another's locks.
fn is_callers(l: &LockState, c: &Compound<'_, '_>, file: &locks::FileKey) -> bool {
    &l.file == file && c.client.is_none_or(|id| id == l.owner.client)
}

/// Grace (RFC 8881 §8.4.2): only reclaims during it, none after it.
fn check_grace(st: &State, client: u64, reclaim: bool) -> Result<(), Nfs4Status> {
    let now = Instant::now();
    if reclaim && (!st.in_grace(now) || !st.may_reclaim(client)) {
        return Err(Nfs4Status::NO_GRACE);
    }
    if !reclaim && st.in_grace(now) {
        return Err(Nfs4Status::GRACE);
    }
    Ok(())
}

impl Nfs4 {
    /// RFC 8881 §18.10
    pub(super) fn lock(
        &self,
        c: &mut Compound<'_, '_>,
        r: &mut XdrReader<'_>,
        w: &mut XdrWriter,
    ) -> OpResult {
        let write = lock_type(r)?;
        let reclaim = r.bool()?;
        let offset = r.u64()?;
        let length = r.u64()?;
        // Seqids order a 4.0 owner's requests; 4.1 ignores them (§8.13).
        let (locker, seqid) = if r.bool()? {
            let open_seqid = r.u32()?;
            let open = get_stateid(r)?;
            let lock_seqid = r.u32()?;
            let owner = lock_owner(r)?;
            (Locker::New { open, owner }, (open_seqid, lock_seqid))
        } else {
            let lock = get_stateid(r)?;
            let lock_seqid = r.u32()?;
            (Locker::Existing { lock }, (lock_seqid, lock_seqid))
        };
        if let Some(replay) = self.lock_seqids(c, &locker, seqid)? {
            return Ok(Flow::Repeat(replay));
        }
        let file = self.lock_file(c)?;
        let span = Span::of(offset, length)?;

        let mut st = self.state();
        // The lock-owner, its state if it has one, and the open behind it.
        let (owner, existing, open) = match locker {
            Locker::New { open, owner } => {
                let o = st.open_of(&open)?;
                if o.file != file {
                    return Err(Nfs4Status::BAD_STATEID.into());
                }
                // In 4.1 the session names the client; in 4.0 the owner does.
                let owner = LockOwner {
                    client: c.client.unwrap_or(owner.client),
                    ..owner
                };
                if o.client != owner.client {
                    return Err(Nfs4Status::BAD_STATEID.into());
                }
                let access = o.access;
                let existing = st.locks.state_of(&owner, &file);
                (owner, existing, (open.other, access))
            }
            Locker::Existing { lock } => {
                let l = st.lock_state_of(&lock)?;
                if !is_callers(l, c, &file) {
                    return Err(Nfs4Status::BAD_STATEID.into());
                }
                let (owner, from) = (l.owner.clone(), l.open);
                let access = st.opens.get(&from).map_or(0, |o| o.access);
                (owner, Some(lock.other), (from, access))
            }
        };
        // The caller's own lease first: a lapsed caller is told EXPIRED,
        // then other lapsed clients give way to it.
        st.live_client(owner.client, Instant::now())?;
        st.purge_expired(Instant::now());
        check_grace(&st, owner.client, reclaim)?;
        // The open must allow the lock's kind of access, as knfsd asks.
        let need = if write {
            SHARE_ACCESS_WRITE
        } else {
            SHARE_ACCESS_READ
        };
        if open.1 & need == 0 {
            return Err(Nfs4Status::OPENMODE.into());
        }
        match st.locks.lock(&file, &owner, span, write) {
            Ok(()) => {}
            Err(LockError::Denied(d)) => return Err(denied(d)),
            Err(LockError::Status(s)) => return Err(s.into()),
        }
        let sid = match existing {
            Some(other) => {
                let l = st.locks.states.get_mut(&other).expect("found above");
                l.seqid = l.seqid.wrapping_add(1);
                StateId {
                    seqid: l.seqid,
                    other,
                }
            }
            None => {
                let made = st.new_lock_state(LockState {
                    owner: owner.clone(),
                    file: file.clone(),
                    open: open.0,
                    seqid: 1,
                });
                match made {
                    Ok(sid) => sid,
                    Err(s) => {
                        // No stateid names the lock, so it must not stay.
                        st.locks.unlock(&file, &owner, span);
                        return Err(s.into());
                    }
                }
            }
        };
        put_stateid(w, &sid);
        Ok(Flow::Next)
    }

    /// RFC 8881 §18.11: would this lock be granted? Nothing is kept.
    pub(super) fn lockt(&self, c: &mut Compound<'_, '_>, r: &mut XdrReader<'_>) -> OpResult {
        let write = lock_type(r)?;
        let offset = r.u64()?;
        let length = r.u64()?;
        let owner = lock_owner(r)?;
        let file = self.lock_file(c)?;
        let span = Span::of(offset, length)?;
        let owner = LockOwner {
            client: c.client.unwrap_or(owner.client),
            ..owner
        };
        let mut st = self.state();
        let now = Instant::now();
        st.purge_expired(now);
        st.live_client(owner.client, now)?;
        check_grace(&st, owner.client, false)?;
        match st.locks.conflict(&file, &owner, span, write) {
            Some(d) => Err(denied(d)),
            None => Ok(Flow::Next),
        }
    }

    /// RFC 8881 §18.12: the lock state stays (FREE_STATEID or
    /// RELEASE_LOCKOWNER ends it), with a new seqid.
    pub(super) fn locku(
        &self,
        c: &mut Compound<'_, '_>,
        r: &mut XdrReader<'_>,
        w: &mut XdrWriter,
    ) -> OpResult {
        let _write = lock_type(r)?;
        let seqid = r.u32()?;
        let sid = get_stateid(r)?;
        let offset = r.u64()?;
        let length = r.u64()?;
        let owner = |st: &State| st.lock_owner(&sid);
        if let Some(replay) = self.owner_seqid(c, seqid, ops::LOCKU, None, owner)? {
            return Ok(Flow::Repeat(replay));
        }
        let file = self.lock_file(c)?;
        let span = Span::of(offset, length)?;
        let mut st = self.state();
        let l = st.lock_state_of(&sid)?;
        if !is_callers(l, c, &file) {
            return Err(Nfs4Status::BAD_STATEID.into());
        }
        l.seqid = l.seqid.wrapping_add(1);
        let (owner, seqid) = (l.owner.clone(), l.seqid);
        st.live_client(owner.client, Instant::now())?;
        st.locks.unlock(&file, &owner, span);
        put_stateid(
            w,
            &StateId {
                seqid,
                other: sid.other,
            },
        );
        Ok(Flow::Next)
    }

    /// RFC 7530 §16.37 (4.0 only): LOCKS_HELD while the owner holds any.
    pub(super) fn release_lockowner(
        &self,
        _c: &mut Compound<'_, '_>,
        r: &mut XdrReader<'_>,
    ) -> OpResult {
        let owner = lock_owner(r)?;
        let mut st = self.state();
        st.live_client(owner.client, Instant::now())?;
        st.locks.release_owner(&owner)?;
        st.owners.forget(&OwnerKey {
            client: owner.client,
            kind: OwnerKind::Lock,
            owner: owner.owner,
        });
        Ok(Flow::Next)
    }

    /// 4.0's owner sequencing of a LOCK: a new lock-owner's LOCK is the
    /// open-owner's request (`seqids.0`, the open's) and starts the
    /// lock-owner at `seqids.1`; an existing lock-owner's is its own.
    fn lock_seqids(
        &self,
        c: &mut Compound<'_, '_>,
        locker: &Locker,
        seqids: (u32, u32),
    ) -> Result<Option<Replay>, Nfs4Status> {
        match locker {
            Locker::Existing { lock } => {
                let owner = |st: &State| st.lock_owner(lock);
                self.owner_seqid(c, seqids.0, ops::LOCK, None, owner)
            }
            Locker::New { open, owner } => {
                let lock_owner = OwnerKey {
                    client: owner.client,
                    kind: OwnerKind::Lock,
                    owner: owner.owner.clone(),
                };
                let open_owner = |st: &State| st.open_owner(open);
                let replay = self.owner_seqid(c, seqids.0, ops::LOCK, None, open_owner)?;
                if let Some(s) = &mut c.sequenced {
                    // A lock-owner the server knows must go on from its
                    // last seqid, even in the new-owner form (knfsd too).
                    let st = self.state();
                    if st.owners.knows(&lock_owner) && !st.owners.is_next(&lock_owner, seqids.1) {
                        return Err(Nfs4Status::BAD_SEQID);
                    }
                    s.starts = Some((lock_owner, seqids.1));
                }
                Ok(replay)
            }
        }
    }

    /// The regular file the current filehandle names, as a lock's key.
    fn lock_file(&self, c: &Compound<'_, '_>) -> Result<locks::FileKey, Nfs4Status> {
        let (export, node) = self.real(c.cfh()?, Nfs4Status::ISDIR)?;
        regular_only(node)?;
        Ok(file_key(export.id, node))
    }
}
