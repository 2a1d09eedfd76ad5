//! ONC RPC v2 (RFC 5531): call headers, credentials, reply headers and the
//! record-marking standard used on TCP (RFC 5531 §11).

use std::io::{self, Read, Write};

use super::xdr::{XdrError, XdrReader, XdrWriter};

pub const RPC_VERSION: u32 = 2;
/// RFC 5531 §8: msg_type
const CALL: u32 = 0;
const REPLY: u32 = 1;
/// RFC 5531 §9: reply_stat
const MSG_ACCEPTED: u32 = 0;
const MSG_DENIED: u32 = 1;

pub const AUTH_NONE: u32 = 0;
pub const AUTH_SYS: u32 = 1;

/// RFC 5531 §8.2: opaque_auth bodies are at most 400 bytes.
const MAX_AUTH_BODY: u32 = 400;
/// RFC 5531 §14: authsys_parms machinename<255>, gids<16>.
const MAX_MACHINE_NAME: u32 = 255;
const MAX_GIDS: u32 = 16;

/// RFC 5531 §9 accept_stat
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcceptStat {
    Success,
    ProgUnavail,
    ProgMismatch { low: u32, high: u32 },
    ProcUnavail,
    GarbageArgs,
    SystemErr,
}

/// RFC 5531 §9 auth_stat (the subset a server sends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthStat {
    BadCred = 1,
    RejectedCred = 2,
    TooWeak = 5,
}

/// RFC 5531 §14 authsys_parms
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthSys {
    pub stamp: u32,
    pub machine_name: Vec<u8>,
    pub uid: u32,
    pub gid: u32,
    pub gids: Vec<u32>,
}

/// The caller's credential, as far as the server understands it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    None,
    Sys(AuthSys),
    /// A flavor we do not implement (RPCSEC_GSS, …); answered with AUTH_ERROR.
    Other(u32),
}

impl Credential {
    /// The uid/gid to apply to created files; AUTH_NONE maps to nobody as
    /// knfsd's anonuid/anongid default does.
    pub fn owner(&self) -> (u32, u32) {
        match self {
            Credential::Sys(a) => (a.uid, a.gid),
            _ => (65534, 65534),
        }
    }
}

/// RFC 5531 §9 call_body, up to the procedure arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallHeader {
    pub xid: u32,
    pub rpcvers: u32,
    pub prog: u32,
    pub vers: u32,
    pub proc_: u32,
    pub cred: Credential,
}

/// What can be wrong with a record that claims to be a call.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RpcParseError {
    /// Not even an xid: nothing can be answered.
    #[error("record too short for an xid")]
    NoXid,
    /// A reply or unknown message type: ignored, as RFC 5531 gives no answer.
    #[error("message {xid:#x} is not a call (type {msg_type})")]
    NotACall { xid: u32, msg_type: u32 },
    /// Wrong RPC version: answered with RPC_MISMATCH.
    #[error("message {xid:#x} has rpc version {rpcvers}")]
    RpcMismatch { xid: u32, rpcvers: u32 },
    /// A malformed credential: answered with AUTH_ERROR / AUTH_BADCRED.
    #[error("message {xid:#x} has a malformed credential: {source}")]
    BadCred { xid: u32, source: XdrError },
    /// The header itself is cut short: answered with GARBAGE_ARGS if possible.
    #[error("message {xid:#x} has a malformed header: {source}")]
    Garbage { xid: u32, source: XdrError },
}

fn parse_auth_sys(body: &[u8]) -> Result<AuthSys, XdrError> {
    let mut r = XdrReader::new(body);
    let stamp = r.u32()?;
    let machine_name = r.string(MAX_MACHINE_NAME)?.to_vec();
    let uid = r.u32()?;
    let gid = r.u32()?;
    let n = r.count(MAX_GIDS)?;
    let mut gids = Vec::with_capacity(n as usize);
    for _ in 0..n {
        gids.push(r.u32()?);
    }
    Ok(AuthSys {
        stamp,
        machine_name,
        uid,
        gid,
        gids,
    })
}

/// Parses a call header; on success the reader is left at the arguments.
pub fn parse_call(r: &mut XdrReader<'_>) -> Result<CallHeader, RpcParseError> {
    let xid = r.u32().map_err(|_| RpcParseError::NoXid)?;
    let garbage = |source| RpcParseError::Garbage { xid, source };
    let msg_type = r.u32().map_err(garbage)?;
    if msg_type != CALL {
        return Err(RpcParseError::NotACall { xid, msg_type });
    }
    let rpcvers = r.u32().map_err(garbage)?;
    if rpcvers != RPC_VERSION {
        return Err(RpcParseError::RpcMismatch { xid, rpcvers });
    }
    let prog = r.u32().map_err(garbage)?;
    let vers = r.u32().map_err(garbage)?;
    let proc_ = r.u32().map_err(garbage)?;
    let bad_cred = |source| RpcParseError::BadCred { xid, source };
    let flavor = r.u32().map_err(bad_cred)?;
    let body = r.opaque(MAX_AUTH_BODY).map_err(bad_cred)?;
    let cred = match flavor {
        AUTH_NONE => Credential::None,
        AUTH_SYS => Credential::Sys(parse_auth_sys(body).map_err(bad_cred)?),
        other => Credential::Other(other),
    };
    // The verifier of AUTH_NONE/AUTH_SYS calls carries nothing we check.
    r.u32().map_err(bad_cred)?;
    r.opaque(MAX_AUTH_BODY).map_err(bad_cred)?;
    Ok(CallHeader {
        xid,
        rpcvers,
        prog,
        vers,
        proc_,
        cred,
    })
}

/// Encodes an accepted reply header (RFC 5531 §9 accepted_reply) with a null
/// verifier. For `Success` the caller appends the procedure's results.
pub fn accepted_reply(w: &mut XdrWriter, xid: u32, stat: AcceptStat) {
    w.u32(xid).u32(REPLY).u32(MSG_ACCEPTED);
    w.u32(AUTH_NONE).opaque(&[]);
    match stat {
        AcceptStat::Success => w.u32(0),
        AcceptStat::ProgUnavail => w.u32(1),
        AcceptStat::ProgMismatch { low, high } => w.u32(2).u32(low).u32(high),
        AcceptStat::ProcUnavail => w.u32(3),
        AcceptStat::GarbageArgs => w.u32(4),
        AcceptStat::SystemErr => w.u32(5),
    };
}

/// RFC 5531 §9 rejected_reply: RPC_MISMATCH.
pub fn rpc_mismatch_reply(w: &mut XdrWriter, xid: u32) {
    w.u32(xid).u32(REPLY).u32(MSG_DENIED);
    w.u32(0).u32(RPC_VERSION).u32(RPC_VERSION);
}

/// RFC 5531 §9 rejected_reply: AUTH_ERROR.
pub fn auth_error_reply(w: &mut XdrWriter, xid: u32, stat: AuthStat) {
    w.u32(xid).u32(REPLY).u32(MSG_DENIED);
    w.u32(1).u32(stat as u32);
}

/// Encodes a call header (used by tests and, later, by the NLM/NSM callbacks).
pub fn encode_call(
    w: &mut XdrWriter,
    xid: u32,
    prog: u32,
    vers: u32,
    proc_: u32,
    cred: &Credential,
) {
    w.u32(xid)
        .u32(CALL)
        .u32(RPC_VERSION)
        .u32(prog)
        .u32(vers)
        .u32(proc_);
    match cred {
        Credential::Sys(a) => {
            let mut body = XdrWriter::new();
            body.u32(a.stamp)
                .string(&a.machine_name)
                .u32(a.uid)
                .u32(a.gid);
            body.u32(a.gids.len() as u32);
            for g in &a.gids {
                body.u32(*g);
            }
            w.u32(AUTH_SYS).opaque(body.as_bytes());
        }
        Credential::Other(f) => {
            w.u32(*f).opaque(&[]);
        }
        Credential::None => {
            w.u32(AUTH_NONE).opaque(&[]);
        }
    }
    w.u32(AUTH_NONE).opaque(&[]);
}

/// A decoded reply header, for the test clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyHeader {
    Accepted { xid: u32, stat: AcceptStat },
    Denied { xid: u32 },
}

pub fn parse_reply(r: &mut XdrReader<'_>) -> Result<ReplyHeader, XdrError> {
    let xid = r.u32()?;
    let at = r.position();
    let t = r.u32()?;
    if t != REPLY {
        return Err(XdrError::BadEnum { at, value: t });
    }
    if r.u32()? != MSG_ACCEPTED {
        return Ok(ReplyHeader::Denied { xid });
    }
    r.u32()?;
    r.opaque(MAX_AUTH_BODY)?;
    let at = r.position();
    let stat = match r.u32()? {
        0 => AcceptStat::Success,
        1 => AcceptStat::ProgUnavail,
        2 => AcceptStat::ProgMismatch {
            low: r.u32()?,
            high: r.u32()?,
        },
        3 => AcceptStat::ProcUnavail,
        4 => AcceptStat::GarbageArgs,
        5 => AcceptStat::SystemErr,
        value => return Err(XdrError::BadEnum { at, value }),
    };
    Ok(ReplyHeader::Accepted { xid, stat })
}

/// RFC 5531 §11: the high bit of a fragment header marks the last fragment.
const LAST_FRAGMENT: u32 = 0x8000_0000;

/// Reads one record (all its fragments). `Ok(None)` is a clean end of stream
/// before a record started; a record longer than `max` is an error so a peer
/// cannot make the server buffer without bound.
pub fn read_record(stream: &mut impl Read, max: usize) -> io::Result<Option<Vec<u8>>> {
    let mut record = Vec::new();
    Ok(read_record_into(stream, max, &mut record)?.then_some(record))
}

/// Reserved ahead of a fragment's bytes: enough that a 1 MiB WRITE grows
/// the buffer twice, not fifteen times, while a peer that announces a large
/// fragment and sends nothing still costs at most this much.
const FRAGMENT_RESERVE: usize = 256 * 1024;

/// Like `read_record`, into `record` (cleared first), so a worker reuses
/// one buffer for every call it reads: no fresh megabyte (and its page
/// faults, costly under TCG) per WRITE. `Ok(false)` is a clean end of stream.
pub fn read_record_into(
    stream: &mut impl Read,
    max: usize,
    record: &mut Vec<u8>,
) -> io::Result<bool> {
    record.clear();
    let mut first = true;
    loop {
        let mut hdr = [0u8; 4];
        if first {
            // Distinguish EOF between records from EOF inside one.
            let n = stream.read(&mut hdr[..1])?;
            if n == 0 {
                return Ok(false);
            }
            stream.read_exact(&mut hdr[1..])?;
        } else {
            stream.read_exact(&mut hdr)?;
        }
        first = false;
        let word = u32::from_be_bytes(hdr);
        let len = (word & !LAST_FRAGMENT) as usize;
        if record.len() + len > max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("rpc record exceeds {max} bytes"),
            ));
        }
        // Grown as bytes arrive, not as the header claims: a peer that
        // announces a large fragment and sends nothing costs nothing.
        let start = record.len();
        record.reserve(len.min(FRAGMENT_RESERVE));
        let got = (&mut *stream).take(len as u64).read_to_end(record)?;
        if got != len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "rpc fragment cut after {} of {len} bytes",
                    record.len() - start
                ),
            ));
        }
        if word & LAST_FRAGMENT != 0 {
            return Ok(true);
        }
    }
}

/// Writes one record as a single last fragment.
pub fn write_record(stream: &mut impl Write, body: &[u8]) -> io::Result<()> {
    // Gathered, not copied: a READ reply is a megabyte, and one writev keeps
    // the mark and the body in one segment burst.
    let mark = (body.len() as u32 | LAST_FRAGMENT).to_be_bytes();
    let mut bufs = [io::IoSlice::new(&mark), io::IoSlice::new(body)];
    let mut slices = &mut bufs[..];
    while !slices.is_empty() {
        match stream.write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => io::IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sys_cred() -> Credential {
        Credential::Sys(AuthSys {
            stamp: 9,
            machine_name: b"client".to_vec(),
            uid: 1000,
            gid: 100,
            gids: vec![100, 27],
        })
    }

    #[test]
    fn call_header_round_trip_with_auth_sys() {
        let mut w = XdrWriter::new();
        encode_call(&mut w, 0x1234, 100003, 3, 1, &sys_cred());
        w.u32(0xdead_beef);
        let bytes = w.into_bytes();
        let mut r = XdrReader::new(&bytes);
        let h = parse_call(&mut r).unwrap();
        assert_eq!(h.xid, 0x1234);
        assert_eq!((h.prog, h.vers, h.proc_), (100003, 3, 1));
        assert_eq!(h.cred, sys_cred());
        assert_eq!(h.cred.owner(), (1000, 100));
        assert_eq!(r.u32().unwrap(), 0xdead_beef);
    }

    #[test]
    fn auth_none_maps_to_nobody() {
        let mut w = XdrWriter::new();
        encode_call(&mut w, 1, 100005, 3, 0, &Credential::None);
        let bytes = w.into_bytes();
        let h = parse_call(&mut XdrReader::new(&bytes)).unwrap();
        assert_eq!(h.cred, Credential::None);
        assert_eq!(h.cred.owner(), (65534, 65534));
    }

    #[test]
    fn header_errors_are_classified() {
        assert_eq!(
            parse_call(&mut XdrReader::new(&[1, 2])),
            Err(RpcParseError::NoXid)
        );
        let mut w = XdrWriter::new();
        w.u32(5).u32(REPLY);
        let b = w.into_bytes();
        assert!(matches!(
            parse_call(&mut XdrReader::new(&b)),
            Err(RpcParseError::NotACall { xid: 5, .. })
        ));
        let mut w = XdrWriter::new();
        w.u32(6).u32(CALL).u32(3);
        let b = w.into_bytes();
        assert!(matches!(
            parse_call(&mut XdrReader::new(&b)),
            Err(RpcParseError::RpcMismatch { xid: 6, rpcvers: 3 })
        ));
        // An AUTH_SYS body whose gid count lies.
        let mut body = XdrWriter::new();
        body.u32(0).string(b"h").u32(0).u32(0).u32(1000);
        let mut w = XdrWriter::new();
        w.u32(7).u32(CALL).u32(2).u32(100003).u32(3).u32(0);
        w.u32(AUTH_SYS).opaque(body.as_bytes()).u32(0).opaque(&[]);
        let b = w.into_bytes();
        assert!(matches!(
            parse_call(&mut XdrReader::new(&b)),
            Err(RpcParseError::BadCred { xid: 7, .. })
        ));
    }

    #[test]
    fn every_truncation_of_a_call_is_an_error() {
        let mut w = XdrWriter::new();
        encode_call(&mut w, 0x55, 100003, 3, 1, &sys_cred());
        let bytes = w.into_bytes();
        for cut in 0..bytes.len() {
            assert!(parse_call(&mut XdrReader::new(&bytes[..cut])).is_err());
        }
    }

    #[test]
    fn reply_headers_parse_back() {
        let mut w = XdrWriter::new();
        accepted_reply(&mut w, 3, AcceptStat::ProgMismatch { low: 3, high: 3 });
        let b = w.into_bytes();
        assert_eq!(
            parse_reply(&mut XdrReader::new(&b)).unwrap(),
            ReplyHeader::Accepted {
                xid: 3,
                stat: AcceptStat::ProgMismatch { low: 3, high: 3 }
            }
        );
        let mut w = XdrWriter::new();
        rpc_mismatch_reply(&mut w, 4);
        let b = w.into_bytes();
        assert_eq!(
            parse_reply(&mut XdrReader::new(&b)).unwrap(),
            ReplyHeader::Denied { xid: 4 }
        );
    }

    #[test]
    fn record_with_several_fragments_is_joined() {
        let mut wire = Vec::new();
        wire.extend_from_slice(&3u32.to_be_bytes());
        wire.extend_from_slice(b"abc");
        wire.extend_from_slice(&0u32.to_be_bytes()); // empty middle fragment
        wire.extend_from_slice(&(2u32 | LAST_FRAGMENT).to_be_bytes());
        wire.extend_from_slice(b"de");
        let mut second = Vec::new();
        write_record(&mut second, b"xyz").unwrap();
        wire.extend_from_slice(&second);
        let mut cur = io::Cursor::new(wire);
        assert_eq!(read_record(&mut cur, 100).unwrap().unwrap(), b"abcde");
        assert_eq!(read_record(&mut cur, 100).unwrap().unwrap(), b"xyz");
        assert!(read_record(&mut cur, 100).unwrap().is_none());
    }

    #[test]
    fn oversized_or_cut_records_fail() {
        let mut wire = Vec::new();
        wire.extend_from_slice(&(1000u32 | LAST_FRAGMENT).to_be_bytes());
        let mut cur = io::Cursor::new(wire.clone());
        assert_eq!(
            read_record(&mut cur, 100).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        wire.extend_from_slice(b"short");
        let mut cur = io::Cursor::new(wire);
        assert_eq!(
            read_record(&mut cur, 2000).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }
}
