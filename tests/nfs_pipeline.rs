//! Calls pipelined on one TCP connection are served concurrently: a WRITE
//! the fault hook stalls does not hold the GETATTR sent after it, and many
//! large replies in flight at once each arrive whole. Loopback, no root.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use stackquake::nfs::rpc::{self, AcceptStat, AuthSys, Credential, ReplyHeader};
use stackquake::nfs::xdr::{XdrReader, XdrWriter};
use stackquake::nfs::{CallMatch, FaultAction, FaultRule, NfsServer, RuleId, ServerConfig};

const NFS: u32 = 100003;
const MOUNT: u32 = 100005;

fn start(dir: &std::path::Path) -> NfsServer {
    NfsServer::start(
        ServerConfig::single("/export", dir.to_path_buf()),
        TcpListener::bind("127.0.0.1:0").unwrap(),
    )
    .unwrap()
}

fn send(stream: &mut TcpStream, xid: u32, prog: u32, proc_: u32, args: &[u8]) {
    let mut w = XdrWriter::new();
    let cred = Credential::Sys(AuthSys::default());
    rpc::encode_call(&mut w, xid, prog, 3, proc_, &cred);
    let mut rec = w.into_bytes();
    rec.extend_from_slice(args);
    rpc::write_record(stream, &rec).unwrap();
}

/// Reads one reply; returns its xid and body.
fn recv(stream: &mut TcpStream) -> (u32, Vec<u8>) {
    let rec = rpc::read_record(stream, 4 << 20).unwrap().expect("closed");
    let mut r = XdrReader::new(&rec);
    let ReplyHeader::Accepted { xid, stat } = rpc::parse_reply(&mut r).unwrap() else {
        panic!("denied");
    };
    assert_eq!(stat, AcceptStat::Success);
    (xid, r.rest().to_vec())
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn mount_and_lookup(s: &mut TcpStream, name: &str) -> Vec<u8> {
    let mut a = XdrWriter::new();
    a.string(b"/export");
    send(s, 1, MOUNT, 1, a.as_bytes());
    let (_, body) = recv(s);
    let mut r = XdrReader::new(&body);
    assert_eq!(r.u32().unwrap(), 0);
    let root = r.opaque(64).unwrap().to_vec();
    let mut a = XdrWriter::new();
    a.opaque(&root).string(name.as_bytes());
    send(s, 2, NFS, 3, a.as_bytes());
    let (_, body) = recv(s);
    let mut r = XdrReader::new(&body);
    assert_eq!(r.u32().unwrap(), 0);
    r.opaque(64).unwrap().to_vec()
}

/// Holds every NFSv3 WRITE (procedure 7) until the rule is removed.
fn stall_writes(server: &NfsServer) -> RuleId {
    server.hook().add(FaultRule {
        matcher: CallMatch {
            prog: Some(NFS),
            proc_: Some(7),
            ..CallMatch::default()
        },
        action: FaultAction::StallUntilHealed,
        nth: None,
    })
}

#[test]
fn stalled_write_does_not_block_later_calls_on_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), b"").unwrap();
    let server = start(dir.path());
    let mut s = connect(server.local_addr());
    let fh = mount_and_lookup(&mut s, "f");

    let stall = stall_writes(&server);
    let mut a = XdrWriter::new();
    a.opaque(&fh).u64(0).u32(5).u32(2).opaque(b"hello");
    send(&mut s, 100, NFS, 7, a.as_bytes());
    let mut a = XdrWriter::new();
    a.opaque(&fh);
    send(&mut s, 101, NFS, 1, a.as_bytes());

    // The GETATTR sent after the stalled WRITE is answered first, and the
    // file is still empty: the WRITE really is held.
    let (xid, body) = recv(&mut s);
    assert_eq!(xid, 101, "the GETATTR waited behind the stalled WRITE");
    assert_eq!(XdrReader::new(&body).u32().unwrap(), 0);
    assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"");
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(
        rpc::read_record(&mut s, 4 << 20).is_err(),
        "the stalled WRITE answered before the heal"
    );

    assert!(server.hook().remove(stall));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (xid, body) = recv(&mut s);
    assert_eq!(xid, 100);
    assert_eq!(XdrReader::new(&body).u32().unwrap(), 0);
    assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"hello");
    server.shutdown();
}

#[test]
fn many_pipelined_large_reads_arrive_whole() {
    let dir = tempfile::tempdir().unwrap();
    let content: Vec<u8> = (0..(1u32 << 20)).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(dir.path().join("big"), &content).unwrap();
    let server = start(dir.path());
    let mut s = connect(server.local_addr());
    let fh = mount_and_lookup(&mut s, "big");

    const CALLS: u32 = 40;
    const CHUNK: u32 = 200_000;
    for i in 0..CALLS {
        let mut a = XdrWriter::new();
        let offset = (i as u64 * 24_989) % (content.len() as u64 - CHUNK as u64);
        a.opaque(&fh).u64(offset).u32(CHUNK);
        send(&mut s, 1000 + i, NFS, 6, a.as_bytes());
    }
    let mut seen = HashMap::new();
    for _ in 0..CALLS {
        let (xid, body) = recv(&mut s);
        let i = xid - 1000;
        let offset = (i as u64 * 24_989) % (content.len() as u64 - CHUNK as u64);
        let mut r = XdrReader::new(&body);
        assert_eq!(r.u32().unwrap(), 0);
        if r.bool().unwrap() {
            r.opaque_fixed(84).unwrap();
        }
        assert_eq!(r.u32().unwrap(), CHUNK);
        r.bool().unwrap();
        let data = r.opaque(CHUNK).unwrap();
        assert_eq!(
            data,
            &content[offset as usize..offset as usize + CHUNK as usize],
            "reply {xid} corrupted"
        );
        assert!(seen.insert(xid, ()).is_none(), "xid {xid} answered twice");
    }
    assert_eq!(seen.len(), CALLS as usize);
    server.shutdown();
}

#[test]
fn several_stalled_calls_still_leave_a_reader_for_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), b"").unwrap();
    let server = start(dir.path());
    let mut s = connect(server.local_addr());
    let fh = mount_and_lookup(&mut s, "f");
    let stall = stall_writes(&server);
    // Four WRITEs held at once, then a GETATTR: each held call took the
    // worker that read it, so a fresh one must have been reading each time.
    for (i, xid) in (200..204).enumerate() {
        let mut a = XdrWriter::new();
        a.opaque(&fh).u64(i as u64).u32(1).u32(2).opaque(b"x");
        send(&mut s, xid, NFS, 7, a.as_bytes());
    }
    let mut a = XdrWriter::new();
    a.opaque(&fh);
    send(&mut s, 300, NFS, 1, a.as_bytes());
    let (xid, body) = recv(&mut s);
    assert_eq!(xid, 300, "the GETATTR waited behind the stalled WRITEs");
    assert_eq!(XdrReader::new(&body).u32().unwrap(), 0);
    assert!(server.hook().remove(stall));
    let mut xids: Vec<u32> = (0..4).map(|_| recv(&mut s).0).collect();
    xids.sort();
    assert_eq!(xids, vec![200, 201, 202, 203]);
    assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"xxxx");
    server.shutdown();
}
