//! `NfsServer::restart`: connections drop, the server is down for the
//! downtime, the write verifier changes, and handles survive or go STALE as
//! asked. Loopback, no root.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use stackquake::nfs::client::RpcClient;
use stackquake::nfs::rpc::{AuthSys, Credential};
use stackquake::nfs::xdr::{XdrReader, XdrWriter};
use stackquake::nfs::{NfsServer, RestartOptions, ServerConfig};

const NFS: u32 = 100003;
const MOUNT: u32 = 100005;

fn connect(server: &NfsServer) -> RpcClient {
    RpcClient::connect(server.local_addr(), Credential::Sys(AuthSys::default())).unwrap()
}

fn mnt(c: &mut RpcClient) -> Vec<u8> {
    let mut a = XdrWriter::new();
    a.string(b"/export");
    let body = c.call(MOUNT, 3, 1, a.as_bytes()).unwrap();
    let mut r = XdrReader::new(&body);
    assert_eq!(r.u32().unwrap(), 0);
    r.opaque(64).unwrap().to_vec()
}

fn skip_wcc(r: &mut XdrReader<'_>) {
    if r.bool().unwrap() {
        r.opaque_fixed(24).unwrap();
    }
    if r.bool().unwrap() {
        r.opaque_fixed(84).unwrap();
    }
}

/// An UNSTABLE WRITE; returns its verifier.
fn write_unstable(c: &mut RpcClient, fh: &[u8]) -> Vec<u8> {
    let mut a = XdrWriter::new();
    a.opaque(fh).u64(0).u32(3).u32(0).opaque(b"abc");
    let body = c.call(NFS, 3, 7, a.as_bytes()).unwrap();
    let mut r = XdrReader::new(&body);
    assert_eq!(r.u32().unwrap(), 0);
    skip_wcc(&mut r);
    assert_eq!(r.u32().unwrap(), 3);
    assert_eq!(r.u32().unwrap(), 0);
    r.opaque_fixed(8).unwrap().to_vec()
}

fn getattr_status(c: &mut RpcClient, fh: &[u8]) -> u32 {
    let mut a = XdrWriter::new();
    a.opaque(fh);
    XdrReader::new(&c.call(NFS, 3, 1, a.as_bytes()).unwrap())
        .u32()
        .unwrap()
}

#[test]
fn restart_changes_the_verifier_and_keeps_or_loses_handles() {
    let dir = tempfile::tempdir().unwrap();
    let server = NfsServer::start(
        ServerConfig::single("/export", dir.path().to_path_buf()),
        TcpListener::bind("127.0.0.1:0").unwrap(),
    )
    .unwrap();
    let mut c = connect(&server);
    let root = mnt(&mut c);
    std::fs::write(dir.path().join("f"), b"").unwrap();
    let fh = {
        let mut a = XdrWriter::new();
        a.opaque(&root).string(b"f");
        let body = c.call(NFS, 3, 3, a.as_bytes()).unwrap();
        let mut r = XdrReader::new(&body);
        assert_eq!(r.u32().unwrap(), 0);
        r.opaque(64).unwrap().to_vec()
    };
    let verf1 = write_unstable(&mut c, &fh);

    // Restart keeping handles, down for 400 ms.
    let started = Instant::now();
    let verf2 = std::thread::scope(|s| {
        let t = s.spawn(|| {
            server.restart(RestartOptions {
                keep_handles: true,
                downtime: Duration::from_millis(400),
            })
        });
        std::thread::sleep(Duration::from_millis(100));
        // The old connection is gone, and a new one is refused while down.
        assert!(
            getattr_status_result(&mut c, &fh).is_err(),
            "old connection survived the restart"
        );
        let mut during = connect(&server);
        assert!(
            getattr_status_result(&mut during, &fh).is_err(),
            "served while down"
        );
        t.join().unwrap()
    });
    assert!(started.elapsed() >= Duration::from_millis(400));
    let mut c = connect(&server);
    assert_eq!(
        getattr_status(&mut c, &fh),
        0,
        "handle lost across a keep-handles restart"
    );
    let verf3 = write_unstable(&mut c, &fh);
    assert_ne!(verf1, verf3, "write verifier unchanged by the restart");
    assert_eq!(verf3, verf2.to_vec());

    // Restart losing handles: the old ones are STALE, a new MNT works.
    server.restart(RestartOptions {
        keep_handles: false,
        downtime: Duration::ZERO,
    });
    let mut c = connect(&server);
    assert_eq!(getattr_status(&mut c, &fh), 70);
    assert_eq!(getattr_status(&mut c, &root), 70);
    let root2 = mnt(&mut c);
    assert_ne!(root2, root);
    assert_eq!(getattr_status(&mut c, &root2), 0);
    server.shutdown();
}

fn getattr_status_result(
    c: &mut RpcClient,
    fh: &[u8],
) -> Result<u32, stackquake::nfs::client::ClientError> {
    let mut a = XdrWriter::new();
    a.opaque(fh);
    c.set_read_timeout(Duration::from_secs(2))?;
    Ok(XdrReader::new(&c.call(NFS, 3, 1, a.as_bytes())?)
        .u32()
        .unwrap())
}
