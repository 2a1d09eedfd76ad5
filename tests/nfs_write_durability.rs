//! RFC 1813 §3.3.7 and §3.3.21 durability, observed in the export's page
//! cache rather than trusted from the reply: a FILE_SYNC or DATA_SYNC WRITE
//! and an UNSTABLE WRITE followed by COMMIT leave no dirty page behind, so
//! `fadvise(DONTNEED)` (which drops clean pages only; dirty or in-flight
//! ones stay) empties the range. Also that a WRITE's post-op attributes are
//! the written file's. Needs xfs_io (xfsprogs) and an export directory on a
//! disk-backed file system (target/, not tmpfs, whose pages never get clean).

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

use stackquake::nfs::client::RpcClient;
use stackquake::nfs::rpc::{AuthSys, Credential};
use stackquake::nfs::xdr::{XdrReader, XdrWriter};
use stackquake::nfs::{NfsServer, ServerConfig};

const NFS: u32 = 100003;
const MOUNT: u32 = 100005;
const MIB: u64 = 1 << 20;

const UNSTABLE: u32 = 0;
const DATA_SYNC: u32 = 1;
const FILE_SYNC: u32 = 2;

fn export_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let fs = nix::sys::statfs::statfs(dir.path()).unwrap();
    assert_ne!(
        fs.filesystem_type(),
        nix::sys::statfs::TMPFS_MAGIC,
        "{} is on tmpfs: its pages are never clean, this test needs a disk",
        dir.path().display()
    );
    dir
}

/// Resident page ranges of `file` in [off, off+len) after dropping its clean
/// pages: empty when nothing there was dirty or under write-back.
fn resident_after_dontneed(file: &Path, off: u64, len: u64) -> String {
    let out = Command::new("xfs_io")
        .arg("-r")
        .arg("-c")
        .arg(format!("fadvise -d {off} {len}"))
        .arg("-c")
        .arg(format!("mmap -r {off} {len}"))
        .arg("-c")
        .arg("mincore")
        .arg(file)
        .output()
        .expect("xfs_io missing: apt-get install xfsprogs");
    assert!(out.status.success(), "xfs_io: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

struct Reply {
    post_size: u64,
    count: u32,
    committed: u32,
    verf: Vec<u8>,
}

fn skip_pre_op(r: &mut XdrReader<'_>) {
    if r.bool().unwrap() {
        r.u64().unwrap();
        for _ in 0..4 {
            r.u32().unwrap();
        }
    }
}

/// The size in a post_op_attr, skipping the rest of the fattr3.
fn post_op_size(r: &mut XdrReader<'_>) -> u64 {
    assert!(r.bool().unwrap(), "post-op attributes missing");
    for _ in 0..5 {
        r.u32().unwrap();
    }
    let size = r.u64().unwrap();
    // used, rdev, fsid, fileid, atime, mtime, ctime
    for _ in 0..(2 + 2 + 2 + 2 + 6) {
        r.u32().unwrap();
    }
    size
}

fn write(c: &mut RpcClient, fh: &[u8], off: u64, data: &[u8], stable: u32) -> Reply {
    let mut a = XdrWriter::with_capacity(data.len() + 128);
    a.opaque(fh)
        .u64(off)
        .u32(data.len() as u32)
        .u32(stable)
        .opaque(data);
    let body = c.call(NFS, 3, 7, a.as_bytes()).unwrap();
    let mut r = XdrReader::new(&body);
    assert_eq!(r.u32().unwrap(), 0, "WRITE status");
    skip_pre_op(&mut r);
    let post_size = post_op_size(&mut r);
    Reply {
        post_size,
        count: r.u32().unwrap(),
        committed: r.u32().unwrap(),
        verf: r.opaque_fixed(8).unwrap().to_vec(),
    }
}

fn commit(c: &mut RpcClient, fh: &[u8]) -> Vec<u8> {
    let mut a = XdrWriter::new();
    a.opaque(fh).u64(0).u32(0);
    let body = c.call(NFS, 3, 21, a.as_bytes()).unwrap();
    let mut r = XdrReader::new(&body);
    assert_eq!(r.u32().unwrap(), 0, "COMMIT status");
    skip_pre_op(&mut r);
    post_op_size(&mut r);
    r.opaque_fixed(8).unwrap().to_vec()
}

#[test]
fn synced_writes_and_committed_unstable_writes_leave_no_dirty_page() {
    let dir = export_dir();
    let server = NfsServer::start(
        ServerConfig::single("/export", dir.path().to_path_buf()),
        TcpListener::bind("127.0.0.1:0").unwrap(),
    )
    .unwrap();
    let cred = Credential::Sys(AuthSys::default());
    let mut c = RpcClient::connect(server.local_addr(), cred).unwrap();
    let mut a = XdrWriter::new();
    a.string(b"/export");
    let body = c.call(MOUNT, 3, 1, a.as_bytes()).unwrap();
    let mut r = XdrReader::new(&body);
    assert_eq!(r.u32().unwrap(), 0, "MNT status");
    let root = r.opaque(64).unwrap().to_vec();

    let mut a = XdrWriter::new();
    a.opaque(&root).string(b"f").u32(0);
    a.u32(1).u32(0o644).u32(0).u32(0).u32(0).u32(0).u32(0);
    let body = c.call(NFS, 3, 8, a.as_bytes()).unwrap();
    let mut r = XdrReader::new(&body);
    assert_eq!(r.u32().unwrap(), 0, "CREATE status");
    assert!(r.bool().unwrap());
    let fh = r.opaque(64).unwrap().to_vec();
    let file = dir.path().join("f");

    let data: Vec<u8> = (0..MIB).map(|i| (i % 251) as u8).collect();

    let w = write(&mut c, &fh, 0, &data, FILE_SYNC);
    assert_eq!((w.count, w.committed), (MIB as u32, FILE_SYNC));
    assert_eq!(w.post_size, MIB, "post-op size is the written file's");
    assert_eq!(
        resident_after_dontneed(&file, 0, MIB),
        "",
        "FILE_SYNC write left dirty pages"
    );

    let w = write(&mut c, &fh, MIB, &data, DATA_SYNC);
    assert_eq!((w.count, w.committed), (MIB as u32, DATA_SYNC));
    assert_eq!(w.post_size, 2 * MIB);
    assert_eq!(
        resident_after_dontneed(&file, MIB, MIB),
        "",
        "DATA_SYNC write left dirty pages"
    );

    // UNSTABLE: answered as such (whether its pages are still dirty is the
    // kernel's business until COMMIT), then COMMIT cleans them, with the
    // same verifier.
    let w = write(&mut c, &fh, 2 * MIB, &data, UNSTABLE);
    assert_eq!((w.count, w.committed), (MIB as u32, UNSTABLE));
    assert_eq!(w.post_size, 3 * MIB);
    assert_eq!(commit(&mut c, &fh), w.verf, "COMMIT verifier differs");
    assert_eq!(
        resident_after_dontneed(&file, 2 * MIB, MIB),
        "",
        "COMMIT left dirty pages"
    );

    let on_disk = std::fs::read(&file).unwrap();
    assert_eq!(on_disk.len() as u64, 3 * MIB);
    assert!(on_disk.chunks(MIB as usize).all(|c| c == &data[..]));
    server.shutdown();
}
