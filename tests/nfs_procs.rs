//! NFSv3 procedures against the in-process server with a raw RPC client on
//! 127.0.0.1: exact statuses, attributes, verifiers and cookies, plus the
//! fault hook's actions.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use stackquake::nfs::client::{ClientError, RpcClient};
use stackquake::nfs::export::Squash;
use stackquake::nfs::rpc::{AuthSys, Credential};
use stackquake::nfs::xdr::{XdrReader, XdrWriter};
use stackquake::nfs::{CallMatch, ExportSpec, FaultAction, FaultRule, NfsServer, ServerConfig};

const NFS: u32 = 100003;
const MOUNT: u32 = 100005;

fn start(dir: &Path, read_only: bool) -> NfsServer {
    NfsServer::start(
        ServerConfig {
            exports: vec![ExportSpec {
                name: "/export".into(),
                dir: dir.to_path_buf(),
                clients: vec![],
                read_only,
                squash: Squash::NoRootSquash,
            }],
            ..ServerConfig::default()
        },
        TcpListener::bind("127.0.0.1:0").unwrap(),
    )
    .unwrap()
}

fn client(server: &NfsServer, uid: u32, gid: u32) -> RpcClient {
    let cred = Credential::Sys(AuthSys {
        stamp: 0,
        machine_name: b"t".to_vec(),
        uid,
        gid,
        gids: vec![gid],
    });
    RpcClient::connect(server.local_addr(), cred).unwrap()
}

fn mnt(c: &mut RpcClient) -> Vec<u8> {
    let mut a = XdrWriter::new();
    a.string(b"/export");
    let body = c.call(MOUNT, 3, 1, a.as_bytes()).unwrap();
    let mut r = XdrReader::new(&body);
    assert_eq!(r.u32().unwrap(), 0, "MNT status");
    r.opaque(64).unwrap().to_vec()
}

#[derive(Debug)]
struct Fattr {
    ftype: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    fileid: u64,
}

fn fattr(r: &mut XdrReader<'_>) -> Fattr {
    let ftype = r.u32().unwrap();
    let mode = r.u32().unwrap();
    let _nlink = r.u32().unwrap();
    let uid = r.u32().unwrap();
    let gid = r.u32().unwrap();
    let size = r.u64().unwrap();
    let _used = r.u64().unwrap();
    r.u64().unwrap(); // rdev
    r.u64().unwrap(); // fsid
    let fileid = r.u64().unwrap();
    for _ in 0..6 {
        r.u32().unwrap();
    }
    Fattr {
        ftype,
        mode,
        uid,
        gid,
        size,
        fileid,
    }
}

fn post_op(r: &mut XdrReader<'_>) -> Option<Fattr> {
    if r.bool().unwrap() {
        Some(fattr(r))
    } else {
        None
    }
}

fn skip_wcc(r: &mut XdrReader<'_>) {
    if r.bool().unwrap() {
        r.u64().unwrap();
        for _ in 0..4 {
            r.u32().unwrap();
        }
    }
    post_op(r);
}

fn lookup(c: &mut RpcClient, dir: &[u8], name: &str) -> (u32, Vec<u8>, Option<Fattr>) {
    let mut a = XdrWriter::new();
    a.opaque(dir).string(name.as_bytes());
    let body = c.call(NFS, 3, 3, a.as_bytes()).unwrap();
    let mut r = XdrReader::new(&body);
    let st = r.u32().unwrap();
    if st != 0 {
        return (st, vec![], None);
    }
    let fh = r.opaque(64).unwrap().to_vec();
    (st, fh, post_op(&mut r))
}

fn status_of(c: &mut RpcClient, proc_: u32, fh: &[u8], extra: &[u8]) -> u32 {
    let mut a = XdrWriter::new();
    a.opaque(fh);
    let mut args = a.into_bytes();
    args.extend_from_slice(extra);
    let body = c.call(NFS, 3, proc_, &args).unwrap();
    XdrReader::new(&body).u32().unwrap()
}

/// CREATE; `how` is 0/1 with a mode, or 2 with a verifier.
fn create(
    c: &mut RpcClient,
    dir: &[u8],
    name: &str,
    how: u32,
    mode: u32,
    verf: u64,
) -> (u32, Vec<u8>) {
    let mut a = XdrWriter::new();
    a.opaque(dir).string(name.as_bytes()).u32(how);
    if how == 2 {
        a.u64(verf);
    } else {
        a.bool(true)
            .u32(mode)
            .bool(false)
            .bool(false)
            .bool(false)
            .u32(0)
            .u32(0);
    }
    let body = c.call(NFS, 3, 8, a.as_bytes()).unwrap();
    let mut r = XdrReader::new(&body);
    let st = r.u32().unwrap();
    if st != 0 {
        return (st, vec![]);
    }
    assert!(r.bool().unwrap(), "CREATE returned no handle");
    (st, r.opaque(64).unwrap().to_vec())
}

#[test]
fn create_applies_auth_sys_owner_and_exclusive_create_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    // The caller is uid 1234: the server checks as that user, so the
    // directory must let anyone create (a tempdir is 0700 root).
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let server = start(dir.path(), false);
    let mut c = client(&server, 1234, 567);
    let root = mnt(&mut c);

    let (st, owned) = create(&mut c, &root, "owned", 0, 0o640, 0);
    assert_eq!(st, 0);
    let meta = std::fs::metadata(dir.path().join("owned")).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (1234, 567, 0o640)
    );
    // GETATTR reports the same ownership and mode, and the fileid is the inode.
    let mut a = XdrWriter::new();
    a.opaque(&owned);
    let body = c.call(NFS, 3, 1, a.as_bytes()).unwrap();
    let mut r = XdrReader::new(&body);
    assert_eq!(r.u32().unwrap(), 0);
    let attr = fattr(&mut r);
    assert_eq!(
        (attr.ftype, attr.uid, attr.gid, attr.mode),
        (1, 1234, 567, 0o640)
    );
    assert_eq!(attr.fileid, meta.ino());

    // GUARDED on an existing name: NFS3ERR_EXIST.
    assert_eq!(create(&mut c, &root, "owned", 1, 0o600, 0).0, 17);

    let (st, a) = create(&mut c, &root, "excl", 2, 0, 0x1111_2222_3333_4444);
    assert_eq!(st, 0);
    // A retransmission with the same verifier succeeds with the same file.
    let (st, b) = create(&mut c, &root, "excl", 2, 0, 0x1111_2222_3333_4444);
    assert_eq!(st, 0);
    assert_eq!(a, b);
    // Another client's verifier: NFS3ERR_EXIST.
    assert_eq!(create(&mut c, &root, "excl", 2, 0, 0x9999).0, 17);

    let mut m = XdrWriter::new();
    m.opaque(&root).string(b"sub").bool(true).u32(0o750);
    m.bool(false).bool(false).bool(false).u32(0).u32(0);
    let body = c.call(NFS, 3, 9, m.as_bytes()).unwrap();
    assert_eq!(XdrReader::new(&body).u32().unwrap(), 0);
    let meta = std::fs::metadata(dir.path().join("sub")).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (1234, 0o750));
}

#[test]
fn sparse_extend_unstable_write_commit_and_read() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), false);
    let mut c = client(&server, 0, 0);
    let root = mnt(&mut c);
    let (_, fh) = create(&mut c, &root, "disk.img", 0, 0o644, 0);

    // SETATTR size = 512 MiB (truncate -s), no guard.
    let mut s = XdrWriter::new();
    s.bool(false)
        .bool(false)
        .bool(false)
        .bool(true)
        .u64(512 << 20)
        .u32(0)
        .u32(0)
        .bool(false);
    assert_eq!(status_of(&mut c, 2, &fh, s.as_bytes()), 0);
    let meta = std::fs::metadata(dir.path().join("disk.img")).unwrap();
    assert_eq!(meta.len(), 512 << 20);
    assert!(meta.blocks() * 512 < 1 << 20, "extension was not sparse");

    // UNSTABLE write, then COMMIT: same verifier.
    let mut w = XdrWriter::new();
    w.opaque(&fh).u64(100 << 20).u32(5).u32(0).opaque(b"hello");
    let body = c.call(NFS, 3, 7, w.as_bytes()).unwrap();
    let mut r = XdrReader::new(&body);
    assert_eq!(r.u32().unwrap(), 0);
    skip_wcc(&mut r);
    assert_eq!(r.u32().unwrap(), 5, "count");
    assert_eq!(r.u32().unwrap(), 0, "committed: UNSTABLE");
    let wverf = r.opaque_fixed(8).unwrap().to_vec();

    let mut cm = XdrWriter::new();
    cm.opaque(&fh).u64(0).u32(0);
    let body = c.call(NFS, 3, 21, cm.as_bytes()).unwrap();
    let mut r = XdrReader::new(&body);
    assert_eq!(r.u32().unwrap(), 0);
    skip_wcc(&mut r);
    assert_eq!(
        r.opaque_fixed(8).unwrap(),
        &wverf[..],
        "COMMIT verifier differs from WRITE's"
    );

    // FILE_SYNC write reports FILE_SYNC.
    let mut w = XdrWriter::new();
    w.opaque(&fh).u64(0).u32(3).u32(2).opaque(b"XFS");
    let body = c.call(NFS, 3, 7, w.as_bytes()).unwrap();
    let mut r = XdrReader::new(&body);
    assert_eq!(r.u32().unwrap(), 0);
    skip_wcc(&mut r);
    r.u32().unwrap();
    assert_eq!(r.u32().unwrap(), 2);

    // READ back; and the tail with eof.
    let read = |c: &mut RpcClient, off: u64, n: u32| {
        let mut a = XdrWriter::new();
        a.opaque(&fh).u64(off).u32(n);
        let body = c.call(NFS, 3, 6, a.as_bytes()).unwrap();
        let mut r = XdrReader::new(&body);
        assert_eq!(r.u32().unwrap(), 0);
        let attr = post_op(&mut r).unwrap();
        assert_eq!(attr.size, 512 << 20);
        let count = r.u32().unwrap();
        let eof = r.bool().unwrap();
        let data = r.opaque(1 << 20).unwrap().to_vec();
        assert_eq!(count as usize, data.len());
        (data, eof)
    };
    assert_eq!(read(&mut c, 100 << 20, 5), (b"hello".to_vec(), false));
    assert_eq!(read(&mut c, 0, 3), (b"XFS".to_vec(), false));
    assert_eq!(read(&mut c, (512 << 20) - 2, 10), (vec![0, 0], true));
}

#[test]
fn readdir_and_readdirplus_page_through_every_entry_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut want: BTreeSet<String> = [".", ".."].iter().map(|s| s.to_string()).collect();
    for i in 0..60 {
        let name = format!("file-{i:03}-with-a-longish-name");
        std::fs::write(dir.path().join(&name), b"x").unwrap();
        want.insert(name);
    }
    let server = start(dir.path(), false);
    let mut c = client(&server, 0, 0);
    let root = mnt(&mut c);
    for plus in [false, true] {
        let mut seen = Vec::new();
        let mut cookie = 0u64;
        let mut calls = 0;
        loop {
            calls += 1;
            assert!(calls < 100, "readdir does not terminate");
            let mut a = XdrWriter::new();
            a.opaque(&root).u64(cookie).u64(0);
            if plus {
                a.u32(1024).u32(1400);
            } else {
                a.u32(700);
            }
            let body = c
                .call(NFS, 3, if plus { 17 } else { 16 }, a.as_bytes())
                .unwrap();
            assert!(
                body.len() <= if plus { 1400 } else { 700 },
                "reply over maxcount"
            );
            let mut r = XdrReader::new(&body);
            assert_eq!(r.u32().unwrap(), 0);
            post_op(&mut r).unwrap();
            r.opaque_fixed(8).unwrap();
            while r.bool().unwrap() {
                let fileid = r.u64().unwrap();
                let name = String::from_utf8(r.string(255).unwrap().to_vec()).unwrap();
                cookie = r.u64().unwrap();
                if plus {
                    let attr = post_op(&mut r).unwrap();
                    assert_eq!(attr.fileid, fileid);
                    assert!(r.bool().unwrap());
                    let fh = r.opaque(64).unwrap().to_vec();
                    if !name.starts_with('.') {
                        // The handle from READDIRPLUS works for GETATTR.
                        assert_eq!(status_of(&mut c, 1, &fh, &[]), 0);
                    }
                }
                seen.push(name);
            }
            if r.bool().unwrap() {
                break;
            }
        }
        assert!(calls > 2, "listing was not paged");
        let set: BTreeSet<String> = seen.iter().cloned().collect();
        assert_eq!(set.len(), seen.len(), "an entry came twice");
        assert_eq!(set, want);
    }
    // A maxcount too small for one entry: NFS3ERR_TOOSMALL.
    let mut a = XdrWriter::new();
    a.opaque(&root).u64(0).u64(0).u32(100).u32(120);
    let body = c.call(NFS, 3, 17, a.as_bytes()).unwrap();
    assert_eq!(XdrReader::new(&body).u32().unwrap(), 10005);
}

#[test]
fn symlinks_are_never_followed_and_handles_track_renames() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), b"secret").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("esc")).unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("escdir")).unwrap();
    let server = start(dir.path(), false);
    let mut c = client(&server, 0, 0);
    let root = mnt(&mut c);

    let (st, link, attr) = lookup(&mut c, &root, "esc");
    assert_eq!(st, 0);
    assert_eq!(attr.unwrap().ftype, 5, "LOOKUP followed the symlink");
    let mut rd = XdrWriter::new();
    rd.u64(0).u32(100);
    assert_eq!(
        status_of(&mut c, 6, &link, rd.as_bytes()),
        22,
        "READ through a symlink"
    );
    let body = {
        let mut a = XdrWriter::new();
        a.opaque(&link);
        c.call(NFS, 3, 5, a.as_bytes()).unwrap()
    };
    let mut r = XdrReader::new(&body);
    assert_eq!(r.u32().unwrap(), 0);
    post_op(&mut r);
    assert_eq!(
        r.string(4096).unwrap(),
        outside.path().join("secret").as_os_str().as_encoded_bytes()
    );
    // A symlinked directory is not a directory to the server.
    let (st, escdir, _) = lookup(&mut c, &root, "escdir");
    assert_eq!(st, 0);
    assert_eq!(
        lookup(&mut c, &escdir, "secret").0,
        20,
        "LOOKUP through a dir symlink"
    );
    assert_eq!(lookup(&mut c, &root, "esc/..").0, 13);

    // Rename keeps the handle valid; remove makes it STALE.
    let (_, fh) = create(&mut c, &root, "a", 0, 0o644, 0);
    let mut rn = XdrWriter::new();
    rn.opaque(&root).string(b"a").opaque(&root).string(b"b");
    let body = c.call(NFS, 3, 14, rn.as_bytes()).unwrap();
    assert_eq!(XdrReader::new(&body).u32().unwrap(), 0);
    assert_eq!(status_of(&mut c, 1, &fh, &[]), 0);
    let mut rm = XdrWriter::new();
    rm.string(b"b");
    assert_eq!(status_of(&mut c, 12, &root, rm.as_bytes()), 0);
    assert_eq!(status_of(&mut c, 1, &fh, &[]), 70);
}

#[test]
fn read_only_export_refuses_changes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), b"data").unwrap();
    let server = start(dir.path(), true);
    let mut c = client(&server, 0, 0);
    let root = mnt(&mut c);
    assert_eq!(create(&mut c, &root, "new", 0, 0o644, 0).0, 30);
    let (_, f, _) = lookup(&mut c, &root, "f");
    let mut w = XdrWriter::new();
    w.u64(0).u32(1).u32(2).opaque(b"z");
    assert_eq!(status_of(&mut c, 7, &f, w.as_bytes()), 30);
    // ACCESS grants no MODIFY on a read-only export, even to root.
    let body = {
        let mut a = XdrWriter::new();
        a.opaque(&f).u32(0x3f);
        c.call(NFS, 3, 4, a.as_bytes()).unwrap()
    };
    let mut r = XdrReader::new(&body);
    assert_eq!(r.u32().unwrap(), 0);
    post_op(&mut r);
    assert_eq!(r.u32().unwrap() & 0x0c, 0);
    assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"data");
}

#[test]
fn fault_hook_actions_reach_the_wire() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), false);
    let mut c = client(&server, 0, 0);
    let root = mnt(&mut c);
    let getattr = CallMatch {
        prog: Some(NFS),
        proc_: Some(1),
        export: Some("/export".into()),
        client: None,
        ..CallMatch::default()
    };

    // Reply with NFS3ERR_JUKEBOX on the 2nd GETATTR only.
    let id = server.hook().add(FaultRule {
        matcher: getattr.clone(),
        action: FaultAction::ReplyStatus(10008),
        nth: Some(2),
    });
    assert_eq!(status_of(&mut c, 1, &root, &[]), 0);
    assert_eq!(status_of(&mut c, 1, &root, &[]), 10008);
    assert_eq!(status_of(&mut c, 1, &root, &[]), 0);
    assert!(server.hook().remove(id));

    // Close the connection.
    let id = server.hook().add(FaultRule {
        matcher: getattr.clone(),
        action: FaultAction::CloseConnection,
        nth: None,
    });
    let mut a = XdrWriter::new();
    a.opaque(&root);
    assert!(matches!(
        c.call(NFS, 3, 1, a.as_bytes()),
        Err(ClientError::Closed(_)) | Err(ClientError::Io { .. })
    ));
    server.hook().remove(id);

    // Drop the reply: nothing comes back.
    let mut c = client(&server, 0, 0);
    let id = server.hook().add(FaultRule {
        matcher: getattr,
        action: FaultAction::DropReply,
        nth: None,
    });
    c.set_read_timeout(Duration::from_millis(500)).unwrap();
    assert!(matches!(
        c.call(NFS, 3, 1, a.as_bytes()),
        Err(ClientError::Io { .. })
    ));
    server.hook().remove(id);
    let mut c = client(&server, 0, 0);
    assert_eq!(status_of(&mut c, 1, &root, &[]), 0);
}
