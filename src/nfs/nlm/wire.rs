//! NLM argument and result encodings (Open Group XNFS, "Network Lock
//! Manager Protocol": nlm_lock and friends for versions 1 and 3; nlm4_lock
//! with 64-bit offsets and lengths for version 4, the one the Linux NFSv3
//! client speaks).

use crate::nfs::xdr::{XdrError, XdrReader, XdrWriter};

/// XNFS: LM_MAXSTRLEN (caller names) and MAXNETOBJ_SZ (cookies, owner handles).
pub const LM_MAXSTRLEN: u32 = 1024;
pub const MAXNETOBJ_SZ: u32 = 1024;
/// NFSv3 handles are at most 64 bytes; version 1/3 carry NFSv2's 32 in a netobj.
const MAX_FH: u32 = 64;

/// XNFS nlm4_stats (nlm_stats for versions 1 and 3 stop at DENIED_GRACE_PERIOD).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NlmStat {
    Granted = 0,
    Denied = 1,
    DeniedNoLocks = 2,
    Blocked = 3,
    DeniedGracePeriod = 4,
    Deadlock = 5,
    Rofs = 6,
    StaleFh = 7,
    Fbig = 8,
    Failed = 9,
}

impl NlmStat {
    /// What a version 1/3 client may see: the kernel's cast_to_nlm maps the
    /// v4-only codes the same way.
    pub fn for_version(self, vers: u32) -> u32 {
        match (vers, self) {
            (4, s) => s as u32,
            (_, NlmStat::Deadlock) => NlmStat::Denied as u32,
            (_, s) if (s as u32) <= 4 => s as u32,
            _ => NlmStat::DeniedNoLocks as u32,
        }
    }

    pub fn from_u32(v: u32) -> Option<NlmStat> {
        use NlmStat::*;
        [
            Granted,
            Denied,
            DeniedNoLocks,
            Blocked,
            DeniedGracePeriod,
            Deadlock,
            Rofs,
            StaleFh,
            Fbig,
            Failed,
        ]
        .into_iter()
        .find(|s| *s as u32 == v)
    }
}

/// XNFS nlm4_lock: who locks which range of which file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NlmLock {
    pub caller_name: String,
    pub fh: Vec<u8>,
    /// The owner handle: opaque to the server, unique per client process.
    pub oh: Vec<u8>,
    pub svid: i32,
    pub offset: u64,
    /// 0 means "to the end of the file, however long it grows".
    pub len: u64,
}

/// The offset/length width of a version.
fn wide(vers: u32) -> bool {
    vers >= 4
}

fn string(r: &mut XdrReader<'_>) -> Result<String, XdrError> {
    Ok(String::from_utf8_lossy(r.string(LM_MAXSTRLEN)?).into_owned())
}

impl NlmLock {
    pub fn decode(r: &mut XdrReader<'_>, vers: u32) -> Result<NlmLock, XdrError> {
        let caller_name = string(r)?;
        let fh = r.opaque(MAX_FH)?.to_vec();
        let oh = r.opaque(MAXNETOBJ_SZ)?.to_vec();
        let svid = r.i32()?;
        let (offset, len) = if wide(vers) {
            (r.u64()?, r.u64()?)
        } else {
            (r.u32()? as u64, r.u32()? as u64)
        };
        Ok(NlmLock {
            caller_name,
            fh,
            oh,
            svid,
            offset,
            len,
        })
    }

    pub fn encode(&self, w: &mut XdrWriter, vers: u32) {
        w.string(self.caller_name.as_bytes())
            .opaque(&self.fh)
            .opaque(&self.oh)
            .i32(self.svid);
        encode_range(w, vers, self.offset, self.len);
    }
}

fn encode_range(w: &mut XdrWriter, vers: u32, offset: u64, len: u64) {
    if wide(vers) {
        w.u64(offset).u64(len);
    } else {
        // A v1/v3 client cannot name more: clamp rather than wrap.
        w.u32(offset.min(u32::MAX as u64) as u32)
            .u32(len.min(u32::MAX as u64) as u32);
    }
}

/// nlm4_testargs (TEST, GRANTED) and nlm4_cancargs without `block` share
/// this shape; `block` is only on the wire for LOCK and CANCEL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LockArgs {
    pub cookie: Vec<u8>,
    pub block: bool,
    pub exclusive: bool,
    pub lock: NlmLock,
    pub reclaim: bool,
    /// The client's NSM state number.
    pub state: i32,
}

impl LockArgs {
    /// nlm4_testargs: cookie, exclusive, alock.
    pub fn decode_test(r: &mut XdrReader<'_>, vers: u32) -> Result<LockArgs, XdrError> {
        Ok(LockArgs {
            cookie: r.opaque(MAXNETOBJ_SZ)?.to_vec(),
            exclusive: r.bool()?,
            lock: NlmLock::decode(r, vers)?,
            ..LockArgs::default()
        })
    }

    pub fn encode_test(&self, w: &mut XdrWriter, vers: u32) {
        w.opaque(&self.cookie).bool(self.exclusive);
        self.lock.encode(w, vers);
    }

    /// nlm4_lockargs: cookie, block, exclusive, alock, reclaim, state.
    pub fn decode_lock(r: &mut XdrReader<'_>, vers: u32) -> Result<LockArgs, XdrError> {
        Ok(LockArgs {
            cookie: r.opaque(MAXNETOBJ_SZ)?.to_vec(),
            block: r.bool()?,
            exclusive: r.bool()?,
            lock: NlmLock::decode(r, vers)?,
            reclaim: r.bool()?,
            state: r.i32()?,
        })
    }

    pub fn encode_lock(&self, w: &mut XdrWriter, vers: u32) {
        w.opaque(&self.cookie).bool(self.block).bool(self.exclusive);
        self.lock.encode(w, vers);
        w.bool(self.reclaim).i32(self.state);
    }

    /// nlm4_cancargs: cookie, block, exclusive, alock.
    pub fn decode_cancel(r: &mut XdrReader<'_>, vers: u32) -> Result<LockArgs, XdrError> {
        Ok(LockArgs {
            cookie: r.opaque(MAXNETOBJ_SZ)?.to_vec(),
            block: r.bool()?,
            exclusive: r.bool()?,
            lock: NlmLock::decode(r, vers)?,
            ..LockArgs::default()
        })
    }

    pub fn encode_cancel(&self, w: &mut XdrWriter, vers: u32) {
        w.opaque(&self.cookie).bool(self.block).bool(self.exclusive);
        self.lock.encode(w, vers);
    }

    /// nlm4_unlockargs: cookie, alock.
    pub fn decode_unlock(r: &mut XdrReader<'_>, vers: u32) -> Result<LockArgs, XdrError> {
        Ok(LockArgs {
            cookie: r.opaque(MAXNETOBJ_SZ)?.to_vec(),
            lock: NlmLock::decode(r, vers)?,
            ..LockArgs::default()
        })
    }

    pub fn encode_unlock(&self, w: &mut XdrWriter, vers: u32) {
        w.opaque(&self.cookie);
        self.lock.encode(w, vers);
    }
}

/// nlm4_holder: who holds the conflicting lock, in a TEST denial.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Holder {
    pub exclusive: bool,
    pub svid: i32,
    pub oh: Vec<u8>,
    pub offset: u64,
    pub len: u64,
}

/// nlm4_res: cookie and status.
pub fn encode_res(w: &mut XdrWriter, vers: u32, cookie: &[u8], stat: NlmStat) {
    w.opaque(cookie).u32(stat.for_version(vers));
}

pub fn decode_res(r: &mut XdrReader<'_>) -> Result<(Vec<u8>, u32), XdrError> {
    Ok((r.opaque(MAXNETOBJ_SZ)?.to_vec(), r.u32()?))
}

/// nlm4_testres: cookie, then the status union (DENIED carries the holder).
pub fn encode_testres(
    w: &mut XdrWriter,
    vers: u32,
    cookie: &[u8],
    result: Result<(), &Holder>,
    other: Option<NlmStat>,
) {
    w.opaque(cookie);
    match (other, result) {
        (Some(s), _) => {
            w.u32(s.for_version(vers));
        }
        (None, Ok(())) => {
            w.u32(NlmStat::Granted as u32);
        }
        (None, Err(h)) => {
            w.u32(NlmStat::Denied as u32)
                .bool(h.exclusive)
                .i32(h.svid)
                .opaque(&h.oh);
            encode_range(w, vers, h.offset, h.len);
        }
    }
}

/// Decodes nlm4_testres into the status and, when DENIED, the holder.
pub fn decode_testres(r: &mut XdrReader<'_>, vers: u32) -> Result<(u32, Option<Holder>), XdrError> {
    let _cookie = r.opaque(MAXNETOBJ_SZ)?;
    let stat = r.u32()?;
    if stat != NlmStat::Denied as u32 {
        return Ok((stat, None));
    }
    let exclusive = r.bool()?;
    let svid = r.i32()?;
    let oh = r.opaque(MAXNETOBJ_SZ)?.to_vec();
    let (offset, len) = if wide(vers) {
        (r.u64()?, r.u64()?)
    } else {
        (r.u32()? as u64, r.u32()? as u64)
    };
    Ok((
        stat,
        Some(Holder {
            exclusive,
            svid,
            oh,
            offset,
            len,
        }),
    ))
}

/// XNFS nlm_share: DOS share reservations (SHARE/UNSHARE).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShareArgs {
    pub cookie: Vec<u8>,
    pub caller_name: String,
    pub fh: Vec<u8>,
    pub oh: Vec<u8>,
    /// fsh_mode: what others are denied (0 none, 1 read, 2 write, 3 both).
    pub mode: u32,
    /// fsh_access: what the caller wants (1 read, 2 write, 3 both).
    pub access: u32,
    pub reclaim: bool,
}

impl ShareArgs {
    pub fn decode(r: &mut XdrReader<'_>) -> Result<ShareArgs, XdrError> {
        Ok(ShareArgs {
            cookie: r.opaque(MAXNETOBJ_SZ)?.to_vec(),
            caller_name: string(r)?,
            fh: r.opaque(MAX_FH)?.to_vec(),
            oh: r.opaque(MAXNETOBJ_SZ)?.to_vec(),
            mode: r.u32()?,
            access: r.u32()?,
            reclaim: r.bool()?,
        })
    }

    pub fn encode(&self, w: &mut XdrWriter) {
        w.opaque(&self.cookie)
            .string(self.caller_name.as_bytes())
            .opaque(&self.fh)
            .opaque(&self.oh)
            .u32(self.mode)
            .u32(self.access)
            .bool(self.reclaim);
    }
}

/// nlm4_shareres: cookie, status, sequence (unused: always 0).
pub fn encode_shareres(w: &mut XdrWriter, vers: u32, cookie: &[u8], stat: NlmStat) {
    w.opaque(cookie).u32(stat.for_version(vers)).i32(0);
}

/// nlm4_notify (FREE_ALL): a rebooted client's name and new state.
pub fn decode_notify(r: &mut XdrReader<'_>) -> Result<(String, i32), XdrError> {
    Ok((string(r)?, r.i32()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> LockArgs {
        LockArgs {
            cookie: vec![1, 2, 3, 4, 5],
            block: true,
            exclusive: true,
            lock: NlmLock {
                caller_name: "guest".into(),
                fh: vec![9; 36],
                oh: b"4242@guest".to_vec(),
                svid: 4242,
                offset: 1 << 40,
                len: 0,
            },
            reclaim: true,
            state: 3,
        }
    }

    #[test]
    fn lockargs_round_trip_v4_with_64_bit_offsets() {
        let a = sample();
        let mut w = XdrWriter::new();
        a.encode_lock(&mut w, 4);
        // cookie 4+8, block, excl, name 4+8, fh 4+36, oh 4+12, svid, off 8, len 8, reclaim, state
        assert_eq!(w.len(), 12 + 4 + 4 + 12 + 40 + 16 + 4 + 16 + 4 + 4);
        let got = LockArgs::decode_lock(&mut XdrReader::new(w.as_bytes()), 4).unwrap();
        assert_eq!(got, a);
    }

    #[test]
    fn version_1_and_3_carry_32_bit_ranges() {
        let mut a = sample();
        a.lock.offset = 100;
        a.lock.len = 7;
        let mut w = XdrWriter::new();
        a.encode_lock(&mut w, 3);
        let bytes = w.into_bytes();
        let got = LockArgs::decode_lock(&mut XdrReader::new(&bytes), 3).unwrap();
        assert_eq!(got, a);
        // Decoding a v3 body as v4 misreads the range and runs out of bytes.
        assert!(LockArgs::decode_lock(&mut XdrReader::new(&bytes), 4).is_err());
    }

    #[test]
    fn testres_denied_carries_the_holder() {
        let h = Holder {
            exclusive: true,
            svid: 7,
            oh: b"owner".to_vec(),
            offset: 10,
            len: 20,
        };
        let mut w = XdrWriter::new();
        encode_testres(&mut w, 4, b"ck", Err(&h), None);
        let (stat, holder) = decode_testres(&mut XdrReader::new(w.as_bytes()), 4).unwrap();
        assert_eq!(stat, NlmStat::Denied as u32);
        assert_eq!(holder, Some(h));
    }

    #[test]
    fn v4_only_statuses_are_cast_for_old_versions() {
        assert_eq!(NlmStat::Deadlock.for_version(4), 5);
        assert_eq!(NlmStat::Deadlock.for_version(3), 1);
        assert_eq!(NlmStat::StaleFh.for_version(1), 2);
        assert_eq!(NlmStat::DeniedGracePeriod.for_version(3), 4);
    }

    #[test]
    fn oversized_caller_name_is_refused() {
        let mut w = XdrWriter::new();
        w.opaque(b"c").bool(false).u32(LM_MAXSTRLEN + 1);
        assert!(matches!(
            LockArgs::decode_test(&mut XdrReader::new(w.as_bytes()), 4),
            Err(XdrError::TooLong { .. })
        ));
    }
}
