//! A loopback rate probe for the server's call path (sequential GETATTRs,
//! 1 MiB WRITEs, CREATE+GETATTR+REMOVE of small files), one call at a time
//! like the benchmark's single writer, then 1 MiB WRITEs with several in
//! flight as the kernel client's write-back sends them. Run with
//! `cargo run --release --example nfs_loopback_rate`; it prints calls per
//! second (bench/README.md cites it).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use stackquake::nfs::rpc::{self, AcceptStat, AuthSys, Credential, ReplyHeader};
use stackquake::nfs::xdr::{XdrReader, XdrWriter};
use stackquake::nfs::{NfsServer, ServerConfig};

const NFS: u32 = 100003;
const MOUNT: u32 = 100005;

fn send(s: &mut TcpStream, xid: u32, prog: u32, proc_: u32, args: &[u8]) {
    let mut w = XdrWriter::with_capacity(args.len() + 128);
    rpc::encode_call(
        &mut w,
        xid,
        prog,
        3,
        proc_,
        &Credential::Sys(AuthSys::default()),
    );
    let mut rec = w.into_bytes();
    rec.extend_from_slice(args);
    rpc::write_record(s, &rec).unwrap();
}

/// The NFS result body of the next reply, which must be `xid`'s.
fn reply(s: &mut TcpStream, xid: u32) -> Vec<u8> {
    let rec = rpc::read_record(s, 4 << 20).unwrap().expect("closed");
    let mut r = XdrReader::new(&rec);
    let ReplyHeader::Accepted { xid: got, stat } = rpc::parse_reply(&mut r).unwrap() else {
        panic!("denied");
    };
    assert_eq!((got, stat), (xid, AcceptStat::Success));
    let body = r.rest().to_vec();
    assert_eq!(XdrReader::new(&body).u32().unwrap(), 0, "nfs status");
    body
}

fn call(s: &mut TcpStream, xid: u32, prog: u32, proc_: u32, args: &[u8]) -> Vec<u8> {
    send(s, xid, prog, proc_, args);
    reply(s, xid)
}

fn write_args(fh: &[u8], index: u64, chunk: &[u8]) -> XdrWriter {
    let mut a = XdrWriter::with_capacity(chunk.len() + 128);
    a.opaque(fh)
        .u64(index * chunk.len() as u64)
        .u32(chunk.len() as u32)
        .u32(0);
    a.opaque(chunk);
    a
}

fn rate(what: &str, n: u32, t: Duration) {
    println!(
        "{what}: {n} in {:.3} s = {:.0}/s",
        t.as_secs_f64(),
        n as f64 / t.as_secs_f64()
    );
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let server = NfsServer::start(
        ServerConfig::single("/export", dir.path().to_path_buf()),
        TcpListener::bind("127.0.0.1:0").unwrap(),
    )
    .unwrap();
    let addr: SocketAddr = server.local_addr();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    let mut a = XdrWriter::new();
    a.string(b"/export");
    let body = call(&mut s, 1, MOUNT, 1, a.as_bytes());
    let root = XdrReader::new(&body[4..]).opaque(64).unwrap().to_vec();
    let mut xid = 10;

    let n = 5_000;
    let mut a = XdrWriter::new();
    a.opaque(&root);
    let t = Instant::now();
    for _ in 0..n {
        xid += 1;
        call(&mut s, xid, NFS, 1, a.as_bytes());
    }
    rate("GETATTR", n, t.elapsed());

    let n = 1_000;
    let t = Instant::now();
    for i in 0..n {
        let name = format!("f{i}");
        let mut a = XdrWriter::new();
        a.opaque(&root).string(name.as_bytes()).u32(0);
        a.u32(1).u32(0o644).u32(0).u32(0).u32(0).u32(0).u32(0);
        xid += 1;
        let body = call(&mut s, xid, NFS, 8, a.as_bytes());
        let mut r = XdrReader::new(&body[4..]);
        assert!(r.bool().unwrap());
        let fh = r.opaque(64).unwrap().to_vec();
        let mut a = XdrWriter::new();
        a.opaque(&fh);
        xid += 1;
        call(&mut s, xid, NFS, 1, a.as_bytes());
        let mut a = XdrWriter::new();
        a.opaque(&root).string(name.as_bytes());
        xid += 1;
        call(&mut s, xid, NFS, 12, a.as_bytes());
    }
    rate("small files (CREATE+GETATTR+REMOVE)", n, t.elapsed());

    let mut a = XdrWriter::new();
    a.opaque(&root).string(b"seq").u32(0);
    a.u32(1).u32(0o644).u32(0).u32(0).u32(0).u32(0).u32(0);
    xid += 1;
    let body = call(&mut s, xid, NFS, 8, a.as_bytes());
    let fh = XdrReader::new(&body[8..]).opaque(64).unwrap().to_vec();
    let chunk = vec![0x5au8; 1 << 20];
    let n = 256;
    let t = Instant::now();
    for i in 0..n {
        let a = write_args(&fh, i as u64, &chunk);
        xid += 1;
        call(&mut s, xid, NFS, 7, a.as_bytes());
    }
    rate("1 MiB UNSTABLE WRITE", n, t.elapsed());

    // The server answers in any order once calls overlap; the replies are
    // small, so sending never waits on our reading them.
    const IN_FLIGHT: u32 = 8;
    let t = Instant::now();
    let first = xid + 1;
    for i in 0..n {
        if i >= IN_FLIGHT {
            let body = {
                let rec = rpc::read_record(&mut s, 4 << 20).unwrap().expect("closed");
                let mut r = XdrReader::new(&rec);
                let ReplyHeader::Accepted { xid: got, stat } = rpc::parse_reply(&mut r).unwrap()
                else {
                    panic!("denied");
                };
                assert!((first..=xid).contains(&got) && stat == AcceptStat::Success);
                r.rest().to_vec()
            };
            assert_eq!(XdrReader::new(&body).u32().unwrap(), 0, "nfs status");
        }
        let a = write_args(&fh, i as u64, &chunk);
        xid += 1;
        send(&mut s, xid, NFS, 7, a.as_bytes());
    }
    for _ in 0..IN_FLIGHT {
        rpc::read_record(&mut s, 4 << 20).unwrap().expect("closed");
    }
    rate(
        &format!("1 MiB UNSTABLE WRITE, {IN_FLIGHT} in flight"),
        n,
        t.elapsed(),
    );
    let t = Instant::now();
    for i in 0..n {
        let mut a = XdrWriter::new();
        a.opaque(&fh)
            .u64(i as u64 * chunk.len() as u64)
            .u32(chunk.len() as u32);
        xid += 1;
        call(&mut s, xid, NFS, 6, a.as_bytes());
    }
    rate("1 MiB READ", n, t.elapsed());
    server.shutdown();
}
