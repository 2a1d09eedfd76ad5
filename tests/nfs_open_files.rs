//! The per-export open-file cache, observed through this process's own
//! descriptors (/proc/self/fd): READ and WRITE reuse one descriptor, and
//! REMOVE, RENAME over the file, unexport and `close_open_files` close it.
//! Loopback, no root.

use std::net::TcpListener;
use std::path::Path;

use stackquake::nfs::client::RpcClient;
use stackquake::nfs::rpc::{AuthSys, Credential};
use stackquake::nfs::xdr::{XdrReader, XdrWriter};
use stackquake::nfs::{NfsServer, ServerConfig};

const NFS: u32 = 100003;

/// Descriptors of this process open on `path` (or on it after removal).
fn fds_on(path: &Path) -> usize {
    let want = path.to_string_lossy().into_owned();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter(|t| {
            let t = t.to_string_lossy();
            t == want || t == format!("{want} (deleted)")
        })
        .count()
}

fn lookup(c: &mut RpcClient, dir: &[u8], name: &str) -> Vec<u8> {
    let mut a = XdrWriter::new();
    a.opaque(dir).string(name.as_bytes());
    let body = c.call(NFS, 3, 3, a.as_bytes()).unwrap();
    let mut r = XdrReader::new(&body);
    assert_eq!(r.u32().unwrap(), 0, "LOOKUP {name}");
    r.opaque(64).unwrap().to_vec()
}

fn read(c: &mut RpcClient, fh: &[u8]) -> u32 {
    let mut a = XdrWriter::new();
    a.opaque(fh).u64(0).u32(100);
    XdrReader::new(&c.call(NFS, 3, 6, a.as_bytes()).unwrap())
        .u32()
        .unwrap()
}

fn write(c: &mut RpcClient, fh: &[u8], data: &[u8]) -> u32 {
    let mut a = XdrWriter::new();
    a.opaque(fh)
        .u64(0)
        .u32(data.len() as u32)
        .u32(2)
        .opaque(data);
    XdrReader::new(&c.call(NFS, 3, 7, a.as_bytes()).unwrap())
        .u32()
        .unwrap()
}

fn dirop(c: &mut RpcClient, proc_: u32, args: &[u8]) -> u32 {
    XdrReader::new(&c.call(NFS, 3, proc_, args).unwrap())
        .u32()
        .unwrap()
}

#[test]
fn descriptors_are_reused_and_closed_when_the_file_goes() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["a", "b", "c"] {
        std::fs::write(dir.path().join(f), f.as_bytes()).unwrap();
    }
    let server = NfsServer::start(
        ServerConfig::single("/export", dir.path().to_path_buf()),
        TcpListener::bind("127.0.0.1:0").unwrap(),
    )
    .unwrap();
    let mut c =
        RpcClient::connect(server.local_addr(), Credential::Sys(AuthSys::default())).unwrap();
    let mut a = XdrWriter::new();
    a.string(b"/export");
    let body = c.call(100005, 3, 1, a.as_bytes()).unwrap();
    let mut r = XdrReader::new(&body);
    assert_eq!(r.u32().unwrap(), 0);
    let root = r.opaque(64).unwrap().to_vec();
    let (pa, pb, pc) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    let (fa, fb, fc) = (
        lookup(&mut c, &root, "a"),
        lookup(&mut c, &root, "b"),
        lookup(&mut c, &root, "c"),
    );

    // Many WRITEs and READs: one descriptor, kept open.
    assert_eq!(fds_on(&pa), 0);
    for _ in 0..20 {
        assert_eq!(write(&mut c, &fa, b"AAAA"), 0);
        assert_eq!(read(&mut c, &fa), 0);
    }
    assert_eq!(fds_on(&pa), 1, "not exactly one cached descriptor");
    assert_eq!(std::fs::read(&pa).unwrap(), b"AAAA");

    // REMOVE closes it (no "(deleted)" descriptor pinning the blocks).
    let mut args = XdrWriter::new();
    args.opaque(&root).string(b"a");
    assert_eq!(dirop(&mut c, 12, args.as_bytes()), 0);
    assert_eq!(fds_on(&pa), 0, "removed file still open");

    // RENAME c over b closes b's descriptor.
    assert_eq!(read(&mut c, &fb), 0);
    assert_eq!(fds_on(&pb), 1);
    let mut args = XdrWriter::new();
    args.opaque(&root).string(b"c").opaque(&root).string(b"b");
    assert_eq!(dirop(&mut c, 14, args.as_bytes()), 0);
    assert_eq!(fds_on(&pb), 0, "file renamed over still open");

    // The renamed file (now at b) is read through its old handle; unexport
    // closes its descriptor, as does close_open_files.
    assert_eq!(read(&mut c, &fc), 0);
    assert_eq!(fds_on(&pb), 1);
    server.set_exported("/export", false).unwrap();
    assert_eq!(fds_on(&pb), 0, "unexport left a descriptor open");
    server.set_exported("/export", true).unwrap();
    assert_eq!(read(&mut c, &fc), 0);
    assert_eq!(fds_on(&pb), 1);
    server.close_open_files();
    assert_eq!(fds_on(&pb), 0);
    assert!(!pc.exists());
    server.shutdown();
}
