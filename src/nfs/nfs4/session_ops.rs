//! Client and session operations: EXCHANGE_ID, CREATE_SESSION, SEQUENCE,
//! DESTROY_SESSION, BIND_CONN_TO_SESSION, DESTROY_CLIENTID,
//! RECLAIM_COMPLETE, TEST_STATEID, FREE_STATEID (RFC 8881 §18.35–§18.51)
//! and 4.0's SETCLIENTID, SETCLIENTID_CONFIRM and RENEW (RFC 7530 §16).

use std::sync::Arc;
use std::time::Instant;

use super::Nfs4;
use super::compound::{Compound, Flow, MAX_OPS, OpResult};
use super::slots::SlotUse;
use super::state::{MAX_CACHED_REPLY, MAX_SLOTS, SessionId, StateId};
use super::status::Nfs4Status;
use crate::nfs::nfs3::MAX_IO;
use crate::nfs::xdr::{XdrError, XdrReader, XdrWriter};

/// RFC 8881 §18.34 channel_dir_from_client4 and channel_dir_from_server4.
const CDFC4_FORE: u32 = 1;
const CDFC4_BACK: u32 = 2;
const CDFC4_FORE_OR_BOTH: u32 = 3;
const CDFC4_BACK_OR_BOTH: u32 = 7;
const CDFS4_BOTH: u32 = 3;
/// RFC 8881 §18.35.3 EXCHANGE_ID flags we answer with.
const EXCHGID4_FLAG_USE_NON_PNFS: u32 = 0x0001_0000;
const EXCHGID4_FLAG_CONFIRMED_R: u32 = 0x8000_0000;
/// RFC 8881 §18.36 a request or reply carries RPC and COMPOUND headers
/// beside the READ or WRITE payload.
const HEADER_ROOM: u32 = 8 * 1024;

pub fn get_sessionid(r: &mut XdrReader<'_>) -> Result<SessionId, XdrError> {
    let b = r.opaque_fixed(16)?;
    let mut id = [0u8; 16];
    id.copy_from_slice(b);
    Ok(id)
}

pub fn get_stateid(r: &mut XdrReader<'_>) -> Result<StateId, XdrError> {
    let seqid = r.u32()?;
    let b = r.opaque_fixed(12)?;
    let mut other = [0u8; 12];
    other.copy_from_slice(b);
    Ok(StateId { seqid, other })
}

pub fn put_stateid(w: &mut XdrWriter, s: &StateId) {
    w.u32(s.seqid).opaque_fixed(&s.other);
}

/// RFC 8881 §18.36 channel_attrs4
#[derive(Debug, Clone, Copy)]
struct ChannelAttrs {
    header_pad: u32,
    max_request: u32,
    max_response: u32,
    max_response_cached: u32,
    max_ops: u32,
    max_requests: u32,
}

impl ChannelAttrs {
    fn decode(r: &mut XdrReader<'_>) -> Result<ChannelAttrs, XdrError> {
        let a = ChannelAttrs {
            header_pad: r.u32()?,
            max_request: r.u32()?,
            max_response: r.u32()?,
            max_response_cached: r.u32()?,
            max_ops: r.u32()?,
            max_requests: r.u32()?,
        };
        let n = r.count(1)?;
        for _ in 0..n {
            r.u32()?;
        }
        Ok(a)
    }

    fn encode(&self, w: &mut XdrWriter) {
        w.u32(self.header_pad)
            .u32(self.max_request)
            .u32(self.max_response)
            .u32(self.max_response_cached)
            .u32(self.max_ops)
            .u32(self.max_requests)
            .u32(0);
    }

    /// What we grant of what the client asked for the fore channel: never
    /// more than asked (the Linux client refuses that), never more than we
    /// serve.
    fn grant_fore(&self) -> ChannelAttrs {
        ChannelAttrs {
            header_pad: 0,
            max_request: self.max_request.min(MAX_IO + HEADER_ROOM),
            max_response: self.max_response.min(MAX_IO + HEADER_ROOM),
            max_response_cached: self.max_response_cached.min(MAX_CACHED_REPLY),
            max_ops: self.max_ops.min(MAX_OPS),
            max_requests: self.max_requests.clamp(1, MAX_SLOTS),
        }
    }
}

/// RFC 8881 §18.36 callback_sec_parms4, skipped: no callbacks are sent.
fn skip_cb_sec(r: &mut XdrReader<'_>) -> Result<(), XdrError> {
    let n = r.count(16)?;
    for _ in 0..n {
        let at = r.position();
        match r.u32()? {
            0 => {}
            1 => {
                r.u32()?;
                r.string(255)?;
                r.u32()?;
                r.u32()?;
                let g = r.count(16)?;
                for _ in 0..g {
                    r.u32()?;
                }
            }
            6 => {
                r.u32()?;
                r.opaque(1024)?;
                r.opaque(1024)?;
            }
            value => return Err(XdrError::BadEnum { at, value }),
        }
    }
    Ok(())
}

impl Nfs4 {
    /// The server owner and scope (§2.5): unique to this server instance,
    /// so two of our servers are never taken for trunks of one.
    fn server_owner(&self) -> Vec<u8> {
        format!("stackquake-{:016x}", self.instance).into_bytes()
    }

    /// RFC 8881 §18.35
    pub(super) fn exchange_id(
        &self,
        c: &mut Compound<'_, '_>,
        r: &mut XdrReader<'_>,
        w: &mut XdrWriter,
    ) -> OpResult {
        let verifier = r.opaque_fixed(8)?;
        let owner = r.opaque(1024)?;
        let _flags = r.u32()?;
        let at = r.position();
        match r.u32()? {
            0 => {}
            1 => {
                for _ in 0..2 {
                    super::attr::get_bitmap(r)?.ok();
                }
            }
            // SP4_SSV needs the GSS machinery we do not have.
            2 => return Err(Nfs4Status::NOTSUPP.into()),
            value => return Err(XdrError::BadEnum { at, value }.into()),
        }
        if r.count(1)? == 1 {
            r.string(1024)?;
            r.string(1024)?;
            r.u64()?;
            r.u32()?;
        }
        let mut v = [0u8; 8];
        v.copy_from_slice(verifier);
        let mut st = self.state();
        let id = st.exchange_id(owner, v, c.minor, c.ctx.client.ip(), Instant::now())?;
        let client = st.clients.get(&id).expect("just made");
        let mut flags = EXCHGID4_FLAG_USE_NON_PNFS;
        if client.confirmed {
            flags |= EXCHGID4_FLAG_CONFIRMED_R;
        }
        let owner = self.server_owner();
        w.u64(id).u32(client.cs_seq).u32(flags);
        w.u32(0); // SP4_NONE
        w.u64(0).opaque(&owner); // server_owner4
        w.opaque(&owner); // server_scope
        w.u32(0); // no server_impl_id
        Ok(Flow::Next)
    }

    /// RFC 8881 §18.36: a retransmission (the previous sequence id) gets
    /// the reply it got before.
    pub(super) fn create_session(
        &self,
        _c: &mut Compound<'_, '_>,
        r: &mut XdrReader<'_>,
        w: &mut XdrWriter,
    ) -> OpResult {
        let clientid = r.u64()?;
        let seq = r.u32()?;
        let _flags = r.u32()?;
        let fore = ChannelAttrs::decode(r)?;
        let back = ChannelAttrs::decode(r)?;
        let _cb_program = r.u32()?;
        skip_cb_sec(r)?;
        let mut st = self.state();
        let client = st
            .clients
            .get(&clientid)
            .ok_or(Nfs4Status::STALE_CLIENTID)?;
        if seq == client.cs_seq.wrapping_sub(1)
            && let Some(reply) = &client.cs_reply
        {
            w.opaque_fixed(reply);
            return Ok(Flow::Next);
        }
        if seq != client.cs_seq {
            return Err(Nfs4Status::SEQ_MISORDERED.into());
        }
        let granted = fore.grant_fore();
        let sid = st.new_session(
            clientid,
            granted.max_requests,
            granted.max_response_cached,
            granted.max_ops,
        )?;
        let mut body = XdrWriter::with_capacity(128);
        body.opaque_fixed(&sid).u32(seq).u32(0);
        granted.encode(&mut body);
        // The back channel is echoed: no callbacks are ever sent on it.
        back.encode(&mut body);
        let client = st.clients.get_mut(&clientid).expect("checked above");
        client.confirmed = true;
        client.cs_seq = seq.wrapping_add(1);
        let body = body.into_bytes();
        w.opaque_fixed(&body);
        client.cs_reply = Some(Arc::from(body));
        Ok(Flow::Next)
    }

    /// RFC 8881 §18.46
    pub(super) fn sequence(
        &self,
        c: &mut Compound<'_, '_>,
        numops: u32,
        r: &mut XdrReader<'_>,
        w: &mut XdrWriter,
    ) -> OpResult {
        let sid = get_sessionid(r)?;
        let seqid = r.u32()?;
        let slot = r.u32()?;
        let _highest = r.u32()?;
        let _cachethis = r.bool()?;
        let mut st = self.state();
        let (client, max_ops) = {
            let s = st.sessions.get(&sid).ok_or(Nfs4Status::BADSESSION)?;
            (s.client, s.max_ops)
        };
        // A lease that ran out took the session with it.
        st.live_client(client, Instant::now())
            .map_err(|_| Nfs4Status::BADSESSION)?;
        let session = st.sessions.get_mut(&sid).ok_or(Nfs4Status::BADSESSION)?;
        if numops > max_ops {
            return Err(Nfs4Status::TOO_MANY_OPS.into());
        }
        match session.slots.begin(slot, seqid)? {
            SlotUse::Replay(reply) => Ok(Flow::Replay(reply)),
            SlotUse::New => {
                let highest = session.slots.highest_slot();
                c.slot = Some((sid, slot));
                c.client = Some(client);
                w.opaque_fixed(&sid)
                    .u32(seqid)
                    .u32(slot)
                    .u32(highest)
                    .u32(highest)
                    .u32(self.sequence_flags());
                Ok(Flow::Next)
            }
        }
    }

    /// Ends the slot SEQUENCE began, keeping the reply if it fits the
    /// session's cache.
    pub(super) fn finish_slot(&self, sid: SessionId, slot: u32, reply: &[u8]) {
        let mut st = self.state();
        if let Some(s) = st.sessions.get_mut(&sid) {
            let keep = (reply.len() <= s.max_cached as usize).then(|| Arc::from(reply));
            s.slots.finish(slot, keep);
        }
    }

    /// RFC 8881 §18.37
    pub(super) fn destroy_session(
        &self,
        _c: &mut Compound<'_, '_>,
        r: &mut XdrReader<'_>,
    ) -> OpResult {
        let sid = get_sessionid(r)?;
        self.state()
            .sessions
            .remove(&sid)
            .ok_or(Nfs4Status::BADSESSION)?;
        Ok(Flow::Next)
    }

    /// RFC 8881 §18.34: every connection serves every session's fore channel.
    pub(super) fn bind_conn(&self, r: &mut XdrReader<'_>, w: &mut XdrWriter) -> OpResult {
        let sid = get_sessionid(r)?;
        let dir = r.u32()?;
        let _rdma = r.bool()?;
        if !self.state().sessions.contains_key(&sid) {
            return Err(Nfs4Status::BADSESSION.into());
        }
        // RFC 8881 §18.34.3: FORE and BACK as asked; FORE_OR_BOTH and
        // BACK_OR_BOTH both bound, as knfsd answers (a client asking for
        // the back channel must get it back, even though no callback is
        // ever sent on it); anything else is INVAL.
        let granted = match dir {
            CDFC4_FORE | CDFC4_BACK => dir,
            CDFC4_FORE_OR_BOTH | CDFC4_BACK_OR_BOTH => CDFS4_BOTH,
            _ => return Err(Nfs4Status::INVAL.into()),
        };
        w.opaque_fixed(&sid).u32(granted).bool(false);
        Ok(Flow::Next)
    }

    /// RFC 8881 §18.50
    pub(super) fn destroy_clientid(&self, r: &mut XdrReader<'_>) -> OpResult {
        let id = r.u64()?;
        let mut st = self.state();
        if !st.clients.contains_key(&id) {
            return Err(Nfs4Status::STALE_CLIENTID.into());
        }
        if st.sessions.values().any(|s| s.client == id) {
            return Err(Nfs4Status::CLIENTID_BUSY.into());
        }
        st.forget_client(id);
        Ok(Flow::Next)
    }

    /// RFC 8881 §18.51
    pub(super) fn reclaim_complete(
        &self,
        c: &mut Compound<'_, '_>,
        r: &mut XdrReader<'_>,
    ) -> OpResult {
        let _one_fs = r.bool()?;
        let id = c.client.ok_or(Nfs4Status::OP_NOT_IN_SESSION)?;
        self.state().reclaim_complete(id)?;
        Ok(Flow::Next)
    }

    /// RFC 8881 §18.48
    pub(super) fn test_stateid(
        &self,
        _c: &mut Compound<'_, '_>,
        r: &mut XdrReader<'_>,
        w: &mut XdrWriter,
    ) -> OpResult {
        let n = r.count(1024)?;
        let mut ids = Vec::with_capacity(n as usize);
        for _ in 0..n {
            ids.push(get_stateid(r)?);
        }
        let st = self.state();
        w.u32(n);
        for sid in ids {
            let s = st.known(&sid).map_or_else(|e| e, |()| Nfs4Status::OK);
            w.u32(s.0);
        }
        Ok(Flow::Next)
    }

    /// RFC 8881 §18.38: a lock stateid whose owner holds no locks on its
    /// file is freed; one that holds any, or an open (CLOSE frees it), is
    /// LOCKS_HELD.
    pub(super) fn free_stateid(
        &self,
        _c: &mut Compound<'_, '_>,
        r: &mut XdrReader<'_>,
    ) -> OpResult {
        let sid = get_stateid(r)?;
        let mut st = self.state();
        st.known(&sid)?;
        let Some(l) = st.locks.states.get(&sid.other) else {
            return Err(Nfs4Status::LOCKS_HELD.into());
        };
        if st.locks.holds(&l.owner, Some(&l.file)) {
            return Err(Nfs4Status::LOCKS_HELD.into());
        }
        st.locks.drop_state(&sid.other);
        Ok(Flow::Next)
    }

    /// RFC 7530 §16.33: the callback address is read and ignored; no
    /// delegations are granted, so no callback is ever made.
    pub(super) fn setclientid(
        &self,
        c: &mut Compound<'_, '_>,
        r: &mut XdrReader<'_>,
        w: &mut XdrWriter,
    ) -> OpResult {
        let verifier = r.opaque_fixed(8)?;
        let owner = r.opaque(1024)?;
        let _cb_program = r.u32()?;
        let _netid = r.string(64)?;
        let _addr = r.string(128)?;
        let _ident = r.u32()?;
        let mut v = [0u8; 8];
        v.copy_from_slice(verifier);
        let mut st = self.state();
        let id = st.exchange_id(owner, v, c.minor, c.ctx.client.ip(), Instant::now())?;
        let confirm = st.clients.get(&id).expect("just made").confirm;
        w.u64(id).opaque_fixed(&confirm);
        Ok(Flow::Next)
    }

    /// RFC 7530 §16.34
    pub(super) fn setclientid_confirm(
        &self,
        _c: &mut Compound<'_, '_>,
        r: &mut XdrReader<'_>,
    ) -> OpResult {
        let id = r.u64()?;
        let verifier = r.opaque_fixed(8)?;
        let mut st = self.state();
        let client = st.clients.get_mut(&id).ok_or(Nfs4Status::STALE_CLIENTID)?;
        if client.confirm[..] != verifier[..] {
            return Err(Nfs4Status::STALE_CLIENTID.into());
        }
        client.confirmed = true;
        client.renewed = Instant::now();
        Ok(Flow::Next)
    }

    /// RFC 7530 §16.29
    pub(super) fn renew(&self, _c: &mut Compound<'_, '_>, r: &mut XdrReader<'_>) -> OpResult {
        let id = r.u64()?;
        self.state().live_client(id, Instant::now())?;
        Ok(Flow::Next)
    }
}
