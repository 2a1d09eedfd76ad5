//! The `nfs.*` scenario faults through `fault::inject`/`heal` against a
//! loopback server, for what libnfs's one-shot tools cannot show:
//! `nfs.close` closes the connection, `nfs.drop` answers nothing,
//! `nfs.restart` with `lose_handles` makes old handles STALE (and keeps them
//! without), `nth` acts once, and each rule's matched count outlives its heal.
//! No root.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use stackquake::fault::{self, Active, Targets};
use stackquake::nfs::rpc::{self, AcceptStat, AuthSys, Credential, ReplyHeader};
use stackquake::nfs::xdr::{XdrReader, XdrWriter};
use stackquake::nfs::{NfsServer, ServerConfig};
use stackquake::plan::{Action, Fault};

const NFS: u32 = 100003;
const MOUNT: u32 = 100005;
const STALE: u32 = 70;

struct World {
    server: NfsServer,
}

impl Targets for World {
    fn nfs_server(&self, name: &str) -> Option<&NfsServer> {
        (name == "fs1").then_some(&self.server)
    }
    fn image_mountpoint(&self, _: &str) -> Option<&Path> {
        None
    }
}

/// The fault `yaml` as the plan of a one-step scenario holds it: resolved
/// by the loader, as a run would get it.
fn fault(yaml: &str) -> Fault {
    let text = format!(
        "schema_version: 1\nid: f\ntitle: t\nhosts: {{ srv: {{ addr: 10.0.0.1/24 }} }}\n\
         nfs_servers: {{ fs1: {{ host: srv, exports: [{{ path: /export }}] }} }}\n\
         steps:\n  - {{ id: f, fault: {{ {yaml} }} }}\n"
    );
    let plan = stackquake::scenario::load_str(&text, "f.yaml").unwrap_or_else(|e| panic!("{e}"));
    match &plan.steps[0].action {
        Action::Fault { fault, .. } => fault.clone(),
        other => panic!("not a fault: {other:?}"),
    }
}

fn send(s: &mut TcpStream, xid: u32, prog: u32, proc_: u32, args: &[u8]) {
    let mut w = XdrWriter::new();
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

/// The reply's nfsstat3, or None if the connection closed or nothing came.
fn status(s: &mut TcpStream) -> Option<u32> {
    let rec = rpc::read_record(s, 4 << 20).ok()??;
    let mut r = XdrReader::new(&rec);
    let ReplyHeader::Accepted { stat, .. } = rpc::parse_reply(&mut r).unwrap() else {
        panic!("denied");
    };
    assert_eq!(stat, AcceptStat::Success);
    Some(r.u32().unwrap())
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

fn root_handle(s: &mut TcpStream) -> Vec<u8> {
    let mut a = XdrWriter::new();
    a.string(b"/export");
    send(s, 1, MOUNT, 1, a.as_bytes());
    let rec = rpc::read_record(s, 1 << 20).unwrap().unwrap();
    let mut r = XdrReader::new(&rec);
    rpc::parse_reply(&mut r).unwrap();
    assert_eq!(r.u32().unwrap(), 0);
    r.opaque(64).unwrap().to_vec()
}

fn getattr(s: &mut TcpStream, xid: u32, fh: &[u8]) -> Option<u32> {
    let mut a = XdrWriter::new();
    a.opaque(fh);
    send(s, xid, NFS, 1, a.as_bytes());
    status(s)
}

#[test]
fn close_drop_restart_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let world = World {
        server: NfsServer::start(
            ServerConfig::single("/export", dir.path().to_path_buf()),
            TcpListener::bind("127.0.0.1:0").unwrap(),
        )
        .unwrap(),
    };
    let addr = world.server.local_addr();
    let mut s = connect(addr);
    let root = root_handle(&mut s);

    // nfs.error on the 2nd GETATTR only; the 1st and 3rd pass.
    let f =
        fault("nfs.error: { server: fs1, match: { procedure: getattr, nth: 2 }, status: jukebox }");
    let err = fault::inject(&f, &world).unwrap();
    assert_eq!(getattr(&mut s, 10, &root), Some(0));
    assert_eq!(getattr(&mut s, 11, &root), Some(10008));
    assert_eq!(getattr(&mut s, 12, &root), Some(0));
    // Three calls matched; the rule acted on one (the 2nd): it fired once.
    assert_eq!(fault::fired(&err, &world).map(Result::unwrap), Some(1));
    fault::heal(&err, &world).unwrap();
    assert_eq!(getattr(&mut s, 13, &root), Some(0));
    assert_eq!(
        fault::fired(&err, &world).map(Result::unwrap),
        Some(1),
        "a healed rule kept counting"
    );

    // nfs.drop: served, no reply; after the heal the next call is answered.
    let f =
        fault("nfs.drop: { server: fs1, match: { program: nfs, version: 3, procedure: GETATTR } }");
    let drop = fault::inject(&f, &world).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert_eq!(getattr(&mut s, 20, &root), None, "a dropped reply arrived");
    fault::heal(&drop, &world).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(getattr(&mut s, 21, &root), Some(0));

    // nfs.close: the connection is closed, the call unserved.
    let f = fault("nfs.close: { server: fs1, match: { procedure: GETATTR, client: 127.0.0.0/8 } }");
    let close = fault::inject(&f, &world).unwrap();
    assert_eq!(getattr(&mut s, 30, &root), None);
    let mut buf = [0u8; 1];
    assert_eq!(
        std::io::Read::read(&mut s, &mut buf).unwrap_or(0),
        0,
        "connection still open"
    );
    fault::heal(&close, &world).unwrap();
    assert_eq!(fault::fired(&close, &world).map(Result::unwrap), Some(1));

    // A rule on another export or client never matches: its count says so.
    let f = fault("nfs.stall: { server: fs1, match: { client: 10.0.0.0/8 } }");
    let never = fault::inject(&f, &world).unwrap();
    let mut s = connect(addr);
    assert_eq!(getattr(&mut s, 40, &root), Some(0));
    fault::heal(&never, &world).unwrap();
    assert_eq!(fault::fired(&never, &world).map(Result::unwrap), Some(0));

    // nfs.restart keeps handles by default, loses them when asked.
    let r = fault::inject(&fault("nfs.restart: { server: fs1 }"), &world).unwrap();
    assert_eq!(
        r,
        Active::Permanent {
            kind: "nfs.restart"
        }
    );
    assert_eq!(fault::fired(&r, &world).map(Result::unwrap), None);
    let mut s = connect(addr);
    assert_eq!(getattr(&mut s, 50, &root), Some(0));
    fault::inject(
        &fault("nfs.restart: { server: fs1, lose_handles: true }"),
        &world,
    )
    .unwrap();
    let mut s = connect(addr);
    assert_eq!(getattr(&mut s, 51, &root), Some(STALE));
}
