//! A loopback rate probe for the server's call path (sequential GETATTRs,
//! 1 MiB WRITEs, CREATE+GETATTR+REMOVE of small files), one call at a time
//! like the benchmark's single writer, then 1 MiB WRITEs with several in
//! flight as the kernel client's write-back sends them. Run with
//! `cargo run --release --example nfs_loopback_rate`; it prints calls per
//! second (bench/README.md cites it).

use std::net::TcpListener;
use std::time::{Duration, Instant};

use stackquake::nfs::client::RpcClient;
use stackquake::nfs::rpc::{AcceptStat, AuthSys, Credential};
use stackquake::nfs::xdr::{XdrReader, XdrWriter};
use stackquake::nfs::{NfsServer, ServerConfig};

const NFS: u32 = 100003;
const MOUNT: u32 = 100005;

/// One call on the shared client; the NFS/MOUNT status must be 0.
fn call(c: &mut RpcClient, prog: u32, proc_: u32, args: &[u8]) -> Vec<u8> {
    let body = c.call(prog, 3, proc_, args).unwrap();
    assert_eq!(XdrReader::new(&body).u32().unwrap(), 0, "nfs status");
    body
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
    let mut s =
        RpcClient::connect(server.local_addr(), Credential::Sys(AuthSys::default())).unwrap();
    let mut a = XdrWriter::new();
    a.string(b"/export");
    let body = call(&mut s, MOUNT, 1, a.as_bytes());
    let root = XdrReader::new(&body[4..]).opaque(64).unwrap().to_vec();

    let n = 5_000;
    let mut a = XdrWriter::new();
    a.opaque(&root);
    let t = Instant::now();
    for _ in 0..n {
        call(&mut s, NFS, 1, a.as_bytes());
    }
    rate("GETATTR", n, t.elapsed());

    let n = 1_000;
    let t = Instant::now();
    for i in 0..n {
        let name = format!("f{i}");
        let mut a = XdrWriter::new();
        a.opaque(&root).string(name.as_bytes()).u32(0);
        a.u32(1).u32(0o644).u32(0).u32(0).u32(0).u32(0).u32(0);
        let body = call(&mut s, NFS, 8, a.as_bytes());
        let mut r = XdrReader::new(&body[4..]);
        assert!(r.bool().unwrap());
        let fh = r.opaque(64).unwrap().to_vec();
        let mut a = XdrWriter::new();
        a.opaque(&fh);
        call(&mut s, NFS, 1, a.as_bytes());
        let mut a = XdrWriter::new();
        a.opaque(&root).string(name.as_bytes());
        call(&mut s, NFS, 12, a.as_bytes());
    }
    rate("small files (CREATE+GETATTR+REMOVE)", n, t.elapsed());

    let mut a = XdrWriter::new();
    a.opaque(&root).string(b"seq").u32(0);
    a.u32(1).u32(0o644).u32(0).u32(0).u32(0).u32(0).u32(0);
    let body = call(&mut s, NFS, 8, a.as_bytes());
    let fh = XdrReader::new(&body[8..]).opaque(64).unwrap().to_vec();
    let chunk = vec![0x5au8; 1 << 20];
    let n = 256;
    let t = Instant::now();
    for i in 0..n {
        let a = write_args(&fh, i as u64, &chunk);
        call(&mut s, NFS, 7, a.as_bytes());
    }
    rate("1 MiB UNSTABLE WRITE", n, t.elapsed());

    // The server answers in any order once calls overlap; the replies are
    // small, so sending never waits on our reading them.
    const IN_FLIGHT: u32 = 8;
    let mut sent = Vec::new();
    let answer = |s: &mut RpcClient, sent: &[u32]| {
        let (xid, stat, body) = s.recv_reply().unwrap();
        assert!(sent.contains(&xid) && stat == AcceptStat::Success);
        assert_eq!(XdrReader::new(&body).u32().unwrap(), 0, "nfs status");
    };
    let t = Instant::now();
    for i in 0..n {
        if i >= IN_FLIGHT {
            answer(&mut s, &sent);
        }
        let a = write_args(&fh, i as u64, &chunk);
        sent.push(s.send_call(NFS, 3, 7, a.as_bytes()).unwrap());
    }
    for _ in 0..IN_FLIGHT {
        answer(&mut s, &sent);
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
        call(&mut s, NFS, 6, a.as_bytes());
    }
    rate("1 MiB READ", n, t.elapsed());
    server.shutdown();
}
