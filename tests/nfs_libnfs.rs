//! The in-process NFS server against a real client (libnfs-utils: nfs-cp,
//! nfs-cat, nfs-ls) and a raw RPC client, on 127.0.0.1 only. These need no
//! root; a missing tool fails the test.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use stackquake::nfs::export::Squash;
use stackquake::nfs::rpc::{self, AcceptStat, AuthSys, Credential, ReplyHeader};
use stackquake::nfs::xdr::{XdrReader, XdrWriter};
use stackquake::nfs::{ExportSpec, NfsServer, ServerConfig};

const NFS: u32 = 100003;
const MOUNT: u32 = 100005;

fn require_tools() {
    for tool in ["nfs-ls", "nfs-cp", "nfs-cat"] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false);
        assert!(
            found,
            "{tool} not found: install Debian package libnfs-utils"
        );
    }
}

fn start(dir: &Path) -> NfsServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    NfsServer::start(
        ServerConfig {
            exports: vec![ExportSpec {
                name: "/export".into(),
                dir: dir.to_path_buf(),
                clients: vec!["127.0.0.0/8".into()],
                read_only: false,
                squash: Squash::NoRootSquash,
            }],
            ..ServerConfig::default()
        },
        listener,
    )
    .unwrap()
}

fn url(addr: SocketAddr, path: &str) -> String {
    let port = addr.port();
    format!("nfs://127.0.0.1/export{path}?nfsport={port}&mountport={port}&version=3")
}

fn run(cmd: &str, args: &[&str]) -> Output {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {cmd}: {e}"));
    eprintln!(
        "$ {cmd} {}\n-> {}\nstdout: {}\nstderr: {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A minimal synchronous ONC RPC client over TCP.
struct RawClient {
    stream: TcpStream,
    xid: u32,
}

impl RawClient {
    fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        RawClient {
            stream,
            xid: 0x5100,
        }
    }

    /// Sends a call and returns the reply body after a SUCCESS header.
    fn call(&mut self, prog: u32, vers: u32, proc_: u32, args: &[u8]) -> Vec<u8> {
        self.xid += 1;
        let mut w = XdrWriter::new();
        let cred = Credential::Sys(AuthSys {
            stamp: 1,
            machine_name: b"test".to_vec(),
            uid: 0,
            gid: 0,
            gids: vec![],
        });
        rpc::encode_call(&mut w, self.xid, prog, vers, proc_, &cred);
        let mut body = w.into_bytes();
        body.extend_from_slice(args);
        rpc::write_record(&mut self.stream, &body).unwrap();
        let reply = rpc::read_record(&mut self.stream, 4 << 20)
            .unwrap()
            .unwrap();
        let mut r = XdrReader::new(&reply);
        let hdr = rpc::parse_reply(&mut r).unwrap();
        assert_eq!(
            hdr,
            ReplyHeader::Accepted {
                xid: self.xid,
                stat: AcceptStat::Success
            }
        );
        r.rest().to_vec()
    }

    /// MNT: returns (mountstat3, handle).
    fn mnt(&mut self, path: &str) -> (u32, Vec<u8>) {
        let mut a = XdrWriter::new();
        a.string(path.as_bytes());
        let body = self.call(MOUNT, 3, 1, a.as_bytes());
        let mut r = XdrReader::new(&body);
        let stat = r.u32().unwrap();
        if stat != 0 {
            return (stat, vec![]);
        }
        (stat, r.opaque(64).unwrap().to_vec())
    }

    /// Any NFSv3 procedure whose arguments are a handle plus `extra`: returns
    /// the nfsstat3.
    fn nfs_status(&mut self, proc_: u32, fh: &[u8], extra: &[u8]) -> u32 {
        let mut a = XdrWriter::new();
        a.opaque(fh);
        let mut args = a.into_bytes();
        args.extend_from_slice(extra);
        let body = self.call(NFS, 3, proc_, &args);
        XdrReader::new(&body).u32().unwrap()
    }

    /// LOOKUP: returns (status, handle).
    fn lookup(&mut self, dir: &[u8], name: &str) -> (u32, Vec<u8>) {
        let mut a = XdrWriter::new();
        a.opaque(dir).string(name.as_bytes());
        let body = self.call(NFS, 3, 3, a.as_bytes());
        let mut r = XdrReader::new(&body);
        let stat = r.u32().unwrap();
        if stat != 0 {
            return (stat, vec![]);
        }
        (stat, r.opaque(64).unwrap().to_vec())
    }
}

#[test]
fn libnfs_copy_cat_list_and_unexport_gives_stale_then_recovers() {
    require_tools();
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let addr = server.local_addr();

    // Copy a file in with a real client: several WRITEs at 1 MiB and more.
    let src = tempfile::NamedTempFile::new().unwrap();
    let payload: Vec<u8> = (0..(3 << 20) + 12345)
        .map(|i: u32| (i * 7 % 251) as u8)
        .collect();
    std::fs::write(src.path(), &payload).unwrap();
    let out = run(
        "nfs-cp",
        &[src.path().to_str().unwrap(), &url(addr, "/data.bin")],
    );
    assert!(out.status.success(), "nfs-cp failed");
    assert_eq!(std::fs::read(dir.path().join("data.bin")).unwrap(), payload);

    // Read it back through the server.
    let out = run("nfs-cat", &[&url(addr, "/data.bin")]);
    assert!(out.status.success(), "nfs-cat failed");
    assert!(out.stdout == payload, "nfs-cat returned different bytes");

    // List the directory.
    std::fs::create_dir(dir.path().join("subdir")).unwrap();
    let out = run("nfs-ls", &[&url(addr, "/")]);
    assert!(out.status.success(), "nfs-ls failed");
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.contains("data.bin"),
        "listing lacks data.bin: {listing}"
    );
    assert!(
        listing.contains("subdir"),
        "listing lacks subdir: {listing}"
    );
    assert!(
        listing.contains(&payload.len().to_string()),
        "listing lacks the size: {listing}"
    );

    // Handles taken before the fault.
    let mut raw = RawClient::connect(addr);
    let (stat, root) = raw.mnt("/export");
    assert_eq!(stat, 0);
    let (stat, file) = raw.lookup(&root, "data.bin");
    assert_eq!(stat, 0);
    assert_eq!(raw.nfs_status(1, &file, &[]), 0, "GETATTR before unexport");

    server.set_exported("/export", false).unwrap();
    // Every call with a handle of the export answers NFS3ERR_STALE (70).
    assert_eq!(
        raw.nfs_status(1, &file, &[]),
        70,
        "GETATTR while unexported"
    );
    assert_eq!(
        raw.nfs_status(1, &root, &[]),
        70,
        "GETATTR root while unexported"
    );
    let mut read_args = XdrWriter::new();
    read_args.u64(0).u32(4096);
    assert_eq!(raw.nfs_status(6, &file, read_args.as_bytes()), 70, "READ");
    assert_eq!(raw.lookup(&root, "data.bin").0, 70, "LOOKUP");
    // MNT is refused with MNT3ERR_ACCES (13).
    assert_eq!(raw.mnt("/export").0, 13);
    // And the real client fails.
    let out = run("nfs-cat", &[&url(addr, "/data.bin")]);
    assert!(!out.status.success(), "nfs-cat succeeded while unexported");

    server.set_exported("/export", true).unwrap();
    // The SAME handles work again, without a new mount.
    assert_eq!(raw.nfs_status(1, &file, &[]), 0, "GETATTR after re-export");
    assert_eq!(
        raw.nfs_status(6, &file, read_args.as_bytes()),
        0,
        "READ after re-export"
    );
    let (stat, root_again) = raw.mnt("/export");
    assert_eq!(stat, 0);
    assert_eq!(root_again, root, "re-export changed the root handle");
    let out = run("nfs-cat", &[&url(addr, "/data.bin")]);
    assert!(
        out.status.success() && out.stdout == payload,
        "nfs-cat after re-export"
    );

    server.shutdown();
}

#[test]
fn raw_rpc_errors_are_answered_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let addr = server.local_addr();
    let mut raw = RawClient::connect(addr);
    let (_, root) = raw.mnt("/export");

    // Forged and truncated handles: NFS3ERR_BADHANDLE (10001).
    let mut forged = root.clone();
    forged[14] ^= 0x40;
    assert_eq!(raw.nfs_status(1, &forged, &[]), 10001);
    assert_eq!(raw.nfs_status(1, &root[..20], &[]), 10001);
    // Unknown export: MNT3ERR_NOENT.
    assert_eq!(raw.mnt("/nope").0, 2);
    // ".." at the root stays at the root.
    let (stat, up) = raw.lookup(&root, "..");
    assert_eq!(stat, 0);
    assert_eq!(up, root);

    // A program we do not serve, a wrong version, an unknown procedure.
    for (prog, vers, proc_, want) in [
        (100021, 4, 0, AcceptStat::ProgUnavail),
        // NFSv3 and NFSv4 are served: the range spans both rows.
        (NFS, 5, 0, AcceptStat::ProgMismatch { low: 3, high: 4 }),
        (NFS, 3, 99, AcceptStat::ProcUnavail),
        (NFS, 3, 1, AcceptStat::GarbageArgs),
    ] {
        let mut w = XdrWriter::new();
        rpc::encode_call(&mut w, 77, prog, vers, proc_, &Credential::None);
        if proc_ == 1 {
            w.u32(1000); // a handle length far past the bytes that follow
        }
        rpc::write_record(&mut raw.stream, w.as_bytes()).unwrap();
        let reply = rpc::read_record(&mut raw.stream, 1 << 20).unwrap().unwrap();
        assert_eq!(
            rpc::parse_reply(&mut XdrReader::new(&reply)).unwrap(),
            ReplyHeader::Accepted {
                xid: 77,
                stat: want
            }
        );
    }

    // Garbage bytes on a second connection do not take the server down.
    let mut junk = TcpStream::connect(addr).unwrap();
    junk.write_all(&[0x80, 0, 0, 3, 1, 2, 3]).unwrap();
    junk.write_all(&[0xff; 64]).unwrap();
    let _ = junk.shutdown(std::net::Shutdown::Write);
    let mut sink = Vec::new();
    junk.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = junk.read_to_end(&mut sink);

    assert_eq!(raw.nfs_status(1, &root, &[]), 0, "server still answers");
    server.shutdown();
}
