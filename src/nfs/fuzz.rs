//! Entry points for robustness testing on arbitrary bytes, shared by the
//! cargo-fuzz targets in fuzz/ (nightly) and by the seeded property tests in
//! tests/nfs_fuzz.rs (stable, part of `cargo test`). Each checks the
//! invariants that must hold whatever the input: no panic, nothing read past
//! the input, no record larger than its cap.

use std::io::Cursor;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use super::NfsError;
use super::call::Transport;
use super::dispatch::{Dispatcher, Outcome};
use super::export::{ExportSpec, ExportTable, Squash};
use super::hook::FaultHook;
use super::nfs3::Sattr;
use super::portmap::PortRegistry;
use super::rpc::{self, Credential};
use super::xdr::XdrReader;

/// The record cap used by `record_stream`.
pub const FUZZ_MAX_RECORD: usize = 64 * 1024;

/// Decodes `data` as a sequence of XDR items chosen by the data itself, then
/// as a call header, a reply header and an sattr3.
pub fn xdr_decode(data: &[u8]) {
    let mut r = XdrReader::new(data);
    let mut ops = data.iter().rev().copied();
    while r.remaining() > 0 {
        let before = r.position();
        let res = match ops.next().unwrap_or(0) % 7 {
            0 => r.u32().map(drop),
            1 => r.u64().map(drop),
            2 => r.bool().map(drop),
            3 => r.opaque(1024).map(|b| assert!(b.len() <= 1024)),
            4 => r.string(255).map(|b| assert!(b.len() <= 255)),
            5 => r.count(16).map(|n| assert!(n <= 16)),
            _ => r.opaque_fixed(3).map(drop),
        };
        assert!(r.position() <= data.len());
        if res.is_err() || r.position() == before {
            break;
        }
    }
    let mut r = XdrReader::new(data);
    if rpc::parse_call(&mut r).is_ok() {
        assert!(r.position() <= data.len());
    }
    let _ = rpc::parse_reply(&mut XdrReader::new(data));
    let _ = Sattr::decode(&mut XdrReader::new(data));
}

/// Reads records from `data` as from a TCP stream until it ends or fails.
/// Returns how many records were read.
pub fn record_stream(data: &[u8]) -> usize {
    let mut cur = Cursor::new(data);
    let mut n = 0;
    while let Ok(Some(rec)) = rpc::read_record(&mut cur, FUZZ_MAX_RECORD) {
        assert!(rec.len() <= FUZZ_MAX_RECORD);
        assert!(rec.len() <= data.len());
        n += 1;
    }
    n
}

/// A dispatcher serving one writable export of `dir` named "/export".
pub fn dispatcher_for(dir: &Path) -> Result<Dispatcher, NfsError> {
    let exports = Arc::new(ExportTable::new(&[ExportSpec {
        name: "/export".into(),
        dir: dir.to_path_buf(),
        clients: vec![],
        read_only: false,
        squash: Squash::NoRootSquash,
    }])?);
    Ok(Dispatcher::new(
        exports,
        Arc::new(FaultHook::new()),
        Arc::new(PortRegistry::new()),
    ))
}

/// The encoded root handle of the dispatcher's "/export", for building seeds.
pub fn root_handle(d: &Dispatcher) -> Option<Vec<u8>> {
    let e = d.exports().by_name("/export")?;
    d.exports().root_handle(e).ok()
}

/// Feeds `data` to the dispatcher as a record (TCP) and as a datagram (UDP);
/// a reply, when there is one, must start with the call's xid.
pub fn dispatch(d: &Dispatcher, data: &[u8]) {
    let client: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 811));
    for transport in [Transport::Tcp, Transport::Udp] {
        if let Outcome::Reply(reply) = d.handle(data, client, transport) {
            assert!(data.len() >= 4 && reply.len() >= 4);
            assert_eq!(reply[..4], data[..4], "reply xid differs from the call's");
        }
    }
}

/// Feeds `data` to the dispatcher as the arguments of an NFSv4 COMPOUND:
/// the operation loop and every operation's decoding, past the RPC header.
pub fn nfs4_compound(d: &Dispatcher, data: &[u8]) {
    let call = call_with_args(0x4444, super::nfs4::PROGRAM, super::nfs4::VERSION, 1, data);
    dispatch(d, &call);
}

/// A call header for `prog`/`vers`/`proc_` followed by `args`: lets a
/// generator reach the procedures instead of failing at the header.
pub fn call_with_args(xid: u32, prog: u32, vers: u32, proc_: u32, args: &[u8]) -> Vec<u8> {
    let mut w = super::xdr::XdrWriter::new();
    rpc::encode_call(
        &mut w,
        xid,
        prog,
        vers,
        proc_,
        &Credential::Sys(rpc::AuthSys::default()),
    );
    let mut out = w.into_bytes();
    out.extend_from_slice(args);
    out
}
