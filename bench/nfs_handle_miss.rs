//! What a handle the server cannot use costs it, against a valid one, on an
//! export of 50,000 entries (issue 11 §2): GETATTR with a valid handle, with
//! a handle whose last byte was changed (forged: refused with
//! NFS3ERR_BADHANDLE), and with the handle of a removed file (stale).
//! Run with `cargo run --release --example nfs_handle_miss`; it prints the
//! median and worst per-call latency of each (bench/README.md cites it).

use std::net::TcpListener;
use std::time::{Duration, Instant};

use stackquake::nfs::client::RpcClient;
use stackquake::nfs::rpc::{AuthSys, Credential};
use stackquake::nfs::xdr::{XdrReader, XdrWriter};
use stackquake::nfs::{NfsServer, ServerConfig};

const NFS: u32 = 100003;
const MOUNT: u32 = 100005;
const ENTRIES: usize = 50_000;
const CALLS: usize = 200;

/// GETATTR of `fh`: its status and how long the call took.
fn getattr(c: &mut RpcClient, fh: &[u8]) -> (u32, Duration) {
    let mut a = XdrWriter::new();
    a.opaque(fh);
    let t = Instant::now();
    let body = c.call(NFS, 3, 1, a.as_bytes()).unwrap();
    (XdrReader::new(&body).u32().unwrap(), t.elapsed())
}

fn lookup(c: &mut RpcClient, dir: &[u8], name: &str) -> Vec<u8> {
    let mut a = XdrWriter::new();
    a.opaque(dir).string(name.as_bytes());
    let body = c.call(NFS, 3, 3, a.as_bytes()).unwrap();
    let mut r = XdrReader::new(&body);
    assert_eq!(r.u32().unwrap(), 0, "LOOKUP {name}");
    r.opaque(64).unwrap().to_vec()
}

fn report(what: &str, c: &mut RpcClient, fh: &[u8], want: u32) {
    let mut times: Vec<Duration> = (0..CALLS)
        .map(|_| {
            let (st, t) = getattr(c, fh);
            assert_eq!(st, want, "{what}: status");
            t
        })
        .collect();
    times.sort();
    println!(
        "{what}: status {want}, median {:.3} ms, max {:.3} ms over {CALLS} calls",
        times[CALLS / 2].as_secs_f64() * 1e3,
        times[CALLS - 1].as_secs_f64() * 1e3
    );
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    for d in 0..50 {
        let sub = dir.path().join(format!("d{d}"));
        std::fs::create_dir(&sub).unwrap();
        for f in 0..ENTRIES / 50 {
            std::fs::write(sub.join(format!("f{f}")), b"").unwrap();
        }
    }
    std::fs::write(dir.path().join("doomed"), b"x").unwrap();
    let server = NfsServer::start(
        ServerConfig::single("/export", dir.path().to_path_buf()),
        TcpListener::bind("127.0.0.1:0").unwrap(),
    )
    .unwrap();
    let mut c =
        RpcClient::connect(server.local_addr(), Credential::Sys(AuthSys::default())).unwrap();
    let mut a = XdrWriter::new();
    a.string(b"/export");
    let body = c.call(MOUNT, 3, 1, a.as_bytes()).unwrap();
    let root = XdrReader::new(&body[4..]).opaque(64).unwrap().to_vec();

    let d7 = lookup(&mut c, &root, "d7");
    let valid = lookup(&mut c, &d7, "f3");
    report("valid", &mut c, &valid, 0);

    let mut forged = valid.clone();
    *forged.last_mut().unwrap() ^= 1;
    report("forged", &mut c, &forged, 10001);

    let stale = lookup(&mut c, &root, "doomed");
    std::fs::remove_file(dir.path().join("doomed")).unwrap();
    report("stale", &mut c, &stale, 70);
}
