//! COMPOUND (RFC 8881 §16.2): bounded decoding of the header, the
//! operation loop with its current and saved filehandles, the rules on
//! where SEQUENCE must stand, and the slot's reply cache.

use std::io;
use std::sync::Arc;

use super::owners::{OwnerKey, Replay, Seen, advances_seqid};
use super::state::{SessionId, State, StateOther};
use super::status::Nfs4Status;
use super::{Fh, Nfs4, ops};
use crate::nfs::call::{CallContext, CallError};
use crate::nfs::handle::FileHandle;
use crate::nfs::xdr::{XdrError, XdrReader, XdrWriter};

/// Longest tag we echo (the client sends an empty one).
pub const TAG_MAX: u32 = 1024;
/// Most operations in one COMPOUND; the Linux client sends at most a
/// dozen, and the session grants no more than this.
pub const MAX_OPS: u32 = 128;

/// A COMPOUND in progress.
pub struct Compound<'a, 'c> {
    pub ctx: &'a CallContext<'c>,
    pub minor: u32,
    pub cfh: Option<Fh>,
    pub saved: Option<Fh>,
    /// The session and slot SEQUENCE began, whose cache gets the reply.
    pub slot: Option<(SessionId, u32)>,
    /// The client the session belongs to.
    pub client: Option<u64>,
    /// The 4.0 owner request the current operation serves.
    pub sequenced: Option<Sequenced>,
}

/// A 4.0 owner's request being served (RFC 7530 §9.1.7): when the
/// operation ends, its reply becomes the owner's last.
pub struct Sequenced {
    pub owner: OwnerKey,
    pub seqid: u32,
    /// The stateid's state the request acts on (CLOSE's open).
    pub state: Option<StateOther>,
    /// A LOCK by a new lock-owner: that owner and its first seqid, which
    /// it keeps once the reply advances the open-owner.
    pub starts: Option<(OwnerKey, u32)>,
}

impl Compound<'_, '_> {
    pub fn cfh(&self) -> Result<&Fh, Nfs4Status> {
        self.cfh.as_ref().ok_or(Nfs4Status::NOFILEHANDLE)
    }
}

/// How an operation failed: with a status, or because its arguments did
/// not decode (BADXDR).
#[derive(Debug)]
pub enum OpFail {
    Status(Nfs4Status),
    /// A status whose result still carries a body (LOCK4denied).
    WithResult(Nfs4Status, Vec<u8>),
    Xdr(XdrError),
}

impl OpFail {
    pub fn status(&self) -> Nfs4Status {
        match self {
            OpFail::Status(s) | OpFail::WithResult(s, _) => *s,
            OpFail::Xdr(_) => Nfs4Status::BADXDR,
        }
    }
}

impl From<Nfs4Status> for OpFail {
    fn from(s: Nfs4Status) -> Self {
        OpFail::Status(s)
    }
}

impl From<XdrError> for OpFail {
    fn from(e: XdrError) -> Self {
        OpFail::Xdr(e)
    }
}

impl From<io::Error> for OpFail {
    fn from(e: io::Error) -> Self {
        OpFail::Status(e.into())
    }
}

impl From<nix::Error> for OpFail {
    fn from(e: nix::Error) -> Self {
        OpFail::Status(e.into())
    }
}

pub type OpResult = Result<Flow, OpFail>;

/// What the loop does after an operation succeeded.
pub enum Flow {
    Next,
    /// SEQUENCE found a retransmission: the whole reply is the cached one.
    Replay(Arc<[u8]>),
    /// A 4.0 owner repeated its last request: this operation's result is
    /// the one that request got.
    Repeat(Replay),
}

/// Operations that may start a 4.1 COMPOUND without SEQUENCE (§18.46.3).
fn sessionless(op: u32) -> bool {
    matches!(
        op,
        ops::EXCHANGE_ID
            | ops::CREATE_SESSION
            | ops::DESTROY_SESSION
            | ops::BIND_CONN_TO_SESSION
            | ops::DESTROY_CLIENTID
    )
}

/// The operations of a COMPOUND, read from its arguments without serving
/// it: what the fault hook matches. Stops at the first that does not decode.
pub fn peek_ops(args: &[u8]) -> Vec<u32> {
    let mut r = XdrReader::new(args);
    let mut out = Vec::new();
    let (Ok(_), Ok(_minor), Ok(n)) = (r.opaque(TAG_MAX), r.u32(), r.u32()) else {
        return out;
    };
    // Only the operation numbers matter here; arguments are skipped by
    // knowing nothing about them, so read the first one and those of
    // argument-less operations after it.
    for _ in 0..n.min(MAX_OPS) {
        let Ok(op) = r.u32() else { break };
        out.push(op);
        if !skip_args(op, &mut r) {
            break;
        }
    }
    out
}

/// Skips the arguments of the operations whose size is known without
/// decoding them; false for any other (the peek stops there).
fn skip_args(op: u32, r: &mut XdrReader<'_>) -> bool {
    let ok = match op {
        ops::PUTROOTFH
        | ops::PUTPUBFH
        | ops::GETFH
        | ops::SAVEFH
        | ops::RESTOREFH
        | ops::LOOKUPP
        | ops::READLINK => Ok(()),
        ops::SEQUENCE => r.opaque_fixed(16 + 16 + 4).map(|_| ()),
        ops::PUTFH => r.opaque(super::NFS4_FHSIZE).map(|_| ()),
        ops::GETATTR => r
            .count(8)
            .and_then(|n| (0..n).try_for_each(|_| r.u32().map(|_| ()))),
        _ => return false,
    };
    ok.is_ok()
}

/// The export named by the first PUTFH of a COMPOUND, for fault matching.
pub fn peek_export_id(proc_: u32, args: &[u8]) -> Option<u32> {
    if proc_ != 1 {
        return None;
    }
    let mut r = XdrReader::new(args);
    r.opaque(TAG_MAX).ok()?;
    r.u32().ok()?;
    let n = r.u32().ok()?;
    for _ in 0..n.min(MAX_OPS) {
        let op = r.u32().ok()?;
        if op == ops::PUTFH {
            return FileHandle::peek_export_id(r.opaque(super::NFS4_FHSIZE).ok()?);
        }
        if !skip_args(op, &mut r) {
            return None;
        }
    }
    None
}

impl Nfs4 {
    pub(super) fn compound(
        &self,
        ctx: &CallContext<'_>,
        r: &mut XdrReader<'_>,
        out: &mut XdrWriter,
    ) -> Result<(), CallError> {
        let start = out.len();
        let tag = r.opaque(TAG_MAX).map_err(CallError::Garbage)?;
        let minor = r.u32().map_err(CallError::Garbage)?;
        let numops = r.u32().map_err(CallError::Garbage)?;
        // RFC 8881 §16.2.3: an unknown minor version gets an empty result
        // array, so the client's mount falls back to a lower one.
        if minor > 2 {
            out.u32(Nfs4Status::MINOR_VERS_MISMATCH.0)
                .opaque(tag)
                .u32(0);
            return Ok(());
        }
        if numops > MAX_OPS {
            let s = if minor == 0 {
                Nfs4Status(10018) // NFS4ERR_RESOURCE
            } else {
                Nfs4Status::TOO_MANY_OPS
            };
            out.u32(s.0).opaque(tag).u32(0);
            return Ok(());
        }
        let status_at = out.len();
        out.u32(0).opaque(tag);
        let count_at = out.len();
        out.u32(0);
        let mut c = Compound {
            ctx,
            minor,
            cfh: None,
            saved: None,
            slot: None,
            client: None,
            sequenced: None,
        };
        let mut status = Nfs4Status::OK;
        let mut done = 0;
        for i in 0..numops {
            let Ok(op) = r.u32() else {
                status = Nfs4Status::BADXDR;
                out.u32(ops::ILLEGAL).u32(status.0);
                done += 1;
                break;
            };
            let known = op <= ops::last_op(minor) && ops::name(op).is_some();
            out.u32(if known { op } else { ops::ILLEGAL });
            let status_pos = out.len();
            out.u32(0);
            done += 1;
            let result = if !known {
                Err(Nfs4Status::OP_ILLEGAL.into())
            } else if minor >= 1 && i == 0 && op != ops::SEQUENCE && !sessionless(op) {
                Err(Nfs4Status::OP_NOT_IN_SESSION.into())
            } else if minor >= 1 && i > 0 && op == ops::SEQUENCE {
                Err(Nfs4Status::SEQUENCE_POS.into())
            } else if minor >= 1 && ops::only_minor0(op) {
                Err(Nfs4Status::NOTSUPP.into())
            } else {
                self.op(&mut c, op, numops, r, out)
            };
            let sequenced = c.sequenced.take();
            match result {
                Ok(Flow::Next) => {
                    if let Some(s) = sequenced {
                        let fh =
                            (op == ops::OPEN).then(|| c.cfh.as_ref().map(|f| self.encode_fh(f)));
                        let reply = &out.as_bytes()[status_pos..];
                        self.record_owner(s, op, Nfs4Status::OK, reply, fh.flatten());
                    }
                }
                Ok(Flow::Replay(reply)) => {
                    out.truncate(start);
                    out.opaque_fixed(&reply);
                    return Ok(());
                }
                Ok(Flow::Repeat(replay)) => {
                    out.truncate(status_pos);
                    out.opaque_fixed(&replay.reply);
                    if let Some(fh) = &replay.fh {
                        c.cfh = self.decode_fh(fh, ctx.client.ip()).ok();
                    }
                    let first = replay.reply.get(..4).and_then(|b| b.try_into().ok());
                    status = Nfs4Status(first.map_or(0, u32::from_be_bytes));
                    if status != Nfs4Status::OK {
                        break;
                    }
                }
                Err(fail) => {
                    if let OpFail::Xdr(e) = &fail {
                        tracing::debug!(op, error = %e, "nfs4 operation arguments do not decode");
                    }
                    status = fail.status();
                    out.truncate(status_pos);
                    out.u32(status.0);
                    if let OpFail::WithResult(_, body) = &fail {
                        out.opaque_fixed(body);
                    }
                    // SETATTR4res keeps its attrsset bitmap on failure.
                    if op == ops::SETATTR {
                        out.u32(0);
                    }
                    if let Some(s) = sequenced {
                        self.record_owner(s, op, status, &out.as_bytes()[status_pos..], None);
                    }
                    break;
                }
            }
        }
        out.patch_u32(status_at, status.0);
        out.patch_u32(count_at, done);
        if let Some((sid, slot)) = c.slot {
            self.finish_slot(sid, slot, &out.as_bytes()[start..]);
        }
        Ok(())
    }

    /// 4.0's owner sequencing (RFC 7530 §9.1.7) for a request carrying
    /// `seqid` from the owner `find` names: None to serve it (its reply is
    /// kept when it ends), or the reply to repeat. 4.1+ ignore seqids.
    pub(super) fn owner_seqid(
        &self,
        c: &mut Compound<'_, '_>,
        seqid: u32,
        op: u32,
        state: Option<StateOther>,
        find: impl FnOnce(&State) -> Result<OwnerKey, Nfs4Status>,
    ) -> Result<Option<Replay>, Nfs4Status> {
        if c.minor != 0 {
            return Ok(None);
        }
        let st = self.state();
        let owner = find(&st)?;
        match st.owners.check(&owner, seqid, op)? {
            Seen::Repeat(replay) => Ok(Some(replay)),
            Seen::Next => {
                c.sequenced = Some(Sequenced {
                    owner,
                    seqid,
                    state,
                    starts: None,
                });
                Ok(None)
            }
        }
    }

    fn record_owner(
        &self,
        s: Sequenced,
        op: u32,
        status: Nfs4Status,
        reply: &[u8],
        fh: Option<Vec<u8>>,
    ) {
        let mut st = self.state();
        if let Some((lock_owner, first)) = s.starts.filter(|_| advances_seqid(status)) {
            st.owners.start(lock_owner, first);
        }
        let replay = Replay {
            op,
            reply: reply.into(),
            fh,
            state: s.state,
        };
        st.owners.record(s.owner, s.seqid, status, replay);
    }

    fn op(
        &self,
        c: &mut Compound<'_, '_>,
        op: u32,
        numops: u32,
        r: &mut XdrReader<'_>,
        w: &mut XdrWriter,
    ) -> OpResult {
        match op {
            ops::ACCESS => self.access(c, r, w),
            ops::CLOSE => self.close(c, r, w),
            ops::COMMIT => self.commit(c, r, w),
            ops::CREATE => self.create(c, r, w),
            ops::GETATTR => self.getattr(c, r, w),
            ops::GETFH => self.getfh(c, w),
            ops::LINK => self.link(c, r, w),
            ops::LOOKUP => self.lookup(c, r, w),
            ops::LOOKUPP => self.lookupp(c),
            ops::OPEN => self.open(c, r, w),
            ops::OPEN_DOWNGRADE => self.open_downgrade(c, r, w),
            ops::PUTFH => self.putfh(c, r),
            ops::PUTROOTFH | ops::PUTPUBFH => self.putrootfh(c),
            ops::READ => self.read(c, r, w),
            ops::READDIR => self.readdir(c, r, w),
            ops::READLINK => self.readlink(c, w),
            ops::REMOVE => self.remove(c, r, w),
            ops::RENAME => self.rename(c, r, w),
            ops::RENEW => self.renew(c, r),
            ops::RESTOREFH => {
                c.cfh = Some(c.saved.clone().ok_or(Nfs4Status::RESTOREFH)?);
                Ok(Flow::Next)
            }
            ops::SAVEFH => {
                c.saved = Some(c.cfh()?.clone());
                Ok(Flow::Next)
            }
            ops::SECINFO => self.secinfo(c, r, w, true),
            ops::SECINFO_NO_NAME => self.secinfo(c, r, w, false),
            ops::SETATTR => self.setattr(c, r, w),
            ops::SETCLIENTID => self.setclientid(c, r, w),
            ops::SETCLIENTID_CONFIRM => self.setclientid_confirm(c, r),
            ops::WRITE => self.write(c, r, w),
            ops::LOCK => self.lock(c, r, w),
            ops::LOCKT => self.lockt(c, r),
            ops::LOCKU => self.locku(c, r, w),
            ops::RELEASE_LOCKOWNER => self.release_lockowner(c, r),
            ops::BIND_CONN_TO_SESSION => self.bind_conn(r, w),
            ops::EXCHANGE_ID => self.exchange_id(c, r, w),
            ops::CREATE_SESSION => self.create_session(c, r, w),
            ops::DESTROY_SESSION => self.destroy_session(c, r),
            ops::FREE_STATEID => self.free_stateid(c, r),
            ops::SEQUENCE => self.sequence(c, numops, r, w),
            ops::TEST_STATEID => self.test_stateid(c, r, w),
            ops::DESTROY_CLIENTID => self.destroy_clientid(r),
            ops::RECLAIM_COMPLETE => self.reclaim_complete(c, r),
            // Delegations, named attributes, pNFS and the 4.2
            // extras are not served; the client falls back.
            _ => Err(Nfs4Status::NOTSUPP.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peeks_name_the_operations_up_to_one_with_unknown_arguments() {
        let mut w = XdrWriter::new();
        w.opaque(b"").u32(1).u32(4);
        w.u32(ops::SEQUENCE).opaque_fixed(&[0; 36]);
        w.u32(ops::PUTFH).opaque(&[1, 2, 3]);
        w.u32(ops::WRITE).u32(0);
        w.u32(ops::GETATTR);
        assert_eq!(
            peek_ops(w.as_bytes()),
            [ops::SEQUENCE, ops::PUTFH, ops::WRITE]
        );
        assert_eq!(peek_ops(&[0, 0, 0]), Vec::<u32>::new());
    }
}
