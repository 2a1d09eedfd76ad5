//! The in-process NFS server over ONC RPC on UDP, and the duplicate-request
//! cache: a retransmitted REMOVE is answered with the first reply (OK), not
//! executed again (NOENT). Loopback only, no root.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::time::Duration;

use stackquake::nfs::rpc::{self, AcceptStat, AuthSys, Credential, ReplyHeader};
use stackquake::nfs::xdr::{XdrReader, XdrWriter};
use stackquake::nfs::{Listeners, NfsServer, ServerConfig};

const PMAP: u32 = 100000;
const NFS: u32 = 100003;
const MOUNT: u32 = 100005;

fn start(dir: &Path) -> NfsServer {
    NfsServer::start_with(
        ServerConfig::single("/export", dir.to_path_buf()),
        Listeners::new(TcpListener::bind("127.0.0.1:0").unwrap())
            .with_udp(UdpSocket::bind("127.0.0.1:0").unwrap()),
    )
    .unwrap()
}

struct UdpClient {
    sock: UdpSocket,
    server: SocketAddr,
}

impl UdpClient {
    fn new(server: SocketAddr) -> UdpClient {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        UdpClient { sock, server }
    }

    fn datagram(xid: u32, prog: u32, proc_: u32, vers: u32, args: &[u8]) -> Vec<u8> {
        let cred = Credential::Sys(AuthSys::default());
        let mut w = XdrWriter::new();
        rpc::encode_call(&mut w, xid, prog, vers, proc_, &cred);
        let mut d = w.into_bytes();
        d.extend_from_slice(args);
        d
    }

    /// Sends one datagram and returns the body after a SUCCESS header.
    fn send(&self, datagram: &[u8]) -> Vec<u8> {
        self.sock.send_to(datagram, self.server).unwrap();
        let mut buf = vec![0u8; 70_000];
        let (n, from) = self.sock.recv_from(&mut buf).expect("no udp reply");
        assert_eq!(from, self.server);
        let mut r = XdrReader::new(&buf[..n]);
        let xid = u32::from_be_bytes(datagram[..4].try_into().unwrap());
        assert_eq!(
            rpc::parse_reply(&mut r).unwrap(),
            ReplyHeader::Accepted {
                xid,
                stat: AcceptStat::Success
            }
        );
        r.rest().to_vec()
    }
}

fn remove_args(dir_fh: &[u8], name: &str) -> Vec<u8> {
    let mut a = XdrWriter::new();
    a.opaque(dir_fh).string(name.as_bytes());
    a.into_bytes()
}

fn status(body: &[u8]) -> u32 {
    XdrReader::new(body).u32().unwrap()
}

#[test]
fn udp_serves_portmap_mount_and_nfs() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello"), b"over udp").unwrap();
    let server = start(dir.path());
    let udp = server.udp_addr().expect("udp address");
    let c = UdpClient::new(udp);

    // GETPORT distinguishes the transports.
    for (prot, want) in [(17u32, udp.port()), (6, server.local_addr().port())] {
        let mut a = XdrWriter::new();
        a.u32(NFS).u32(3).u32(prot).u32(0);
        let body = c.send(&UdpClient::datagram(1, PMAP, 3, 2, a.as_bytes()));
        assert_eq!(status(&body), want as u32, "prot {prot}");
    }

    let mut a = XdrWriter::new();
    a.string(b"/export");
    let body = c.send(&UdpClient::datagram(2, MOUNT, 1, 3, a.as_bytes()));
    let mut r = XdrReader::new(&body);
    assert_eq!(r.u32().unwrap(), 0);
    let root = r.opaque(64).unwrap().to_vec();

    // LOOKUP then READ over UDP.
    let body = c.send(&UdpClient::datagram(
        3,
        NFS,
        3,
        3,
        &remove_args(&root, "hello"),
    ));
    let mut r = XdrReader::new(&body);
    assert_eq!(r.u32().unwrap(), 0);
    let fh = r.opaque(64).unwrap().to_vec();
    let mut a = XdrWriter::new();
    a.opaque(&fh).u64(0).u32(1 << 20);
    let body = c.send(&UdpClient::datagram(4, NFS, 6, 3, a.as_bytes()));
    let mut r = XdrReader::new(&body);
    assert_eq!(r.u32().unwrap(), 0);
    if r.bool().unwrap() {
        r.opaque_fixed(84).unwrap();
    }
    assert_eq!(r.u32().unwrap(), 8);
    assert!(r.bool().unwrap(), "eof");
    assert_eq!(r.opaque(100).unwrap(), b"over udp");

    // FSINFO offers UDP no more than fits in a datagram.
    let mut a = XdrWriter::new();
    a.opaque(&root);
    let body = c.send(&UdpClient::datagram(5, NFS, 19, 3, a.as_bytes()));
    let mut r = XdrReader::new(&body);
    assert_eq!(r.u32().unwrap(), 0);
    if r.bool().unwrap() {
        r.opaque_fixed(84).unwrap();
    }
    let rtmax = r.u32().unwrap();
    assert!(rtmax <= 32 * 1024, "rtmax {rtmax} over udp");
    server.shutdown();
}

#[test]
fn retransmitted_remove_gets_the_original_ok() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("victim"), b"x").unwrap();
    std::fs::write(dir.path().join("other"), b"y").unwrap();
    let server = start(dir.path());
    let c = UdpClient::new(server.udp_addr().unwrap());

    let mut a = XdrWriter::new();
    a.string(b"/export");
    let body = c.send(&UdpClient::datagram(10, MOUNT, 1, 3, a.as_bytes()));
    let mut r = XdrReader::new(&body);
    assert_eq!(r.u32().unwrap(), 0);
    let root = r.opaque(64).unwrap().to_vec();

    let remove = UdpClient::datagram(0x4242, NFS, 12, 3, &remove_args(&root, "victim"));
    let first = c.send(&remove);
    assert_eq!(status(&first), 0);
    assert!(!dir.path().join("victim").exists());
    // The retransmission (same xid, same client, same arguments).
    let again = c.send(&remove);
    assert_eq!(status(&again), 0, "retransmission was executed again");
    assert_eq!(again, first, "replay differs from the original reply");
    // A new call (new xid) for the same name is executed: NOENT.
    let fresh = UdpClient::datagram(0x4243, NFS, 12, 3, &remove_args(&root, "victim"));
    assert_eq!(status(&c.send(&fresh)), 2);
    // The same xid from another client port is another call.
    let c2 = UdpClient::new(server.udp_addr().unwrap());
    assert_eq!(status(&c2.send(&remove)), 2);
    // Idempotent procedures are not cached: LOOKUP of the removed "other"
    // after a replayed xid sees the current state.
    let lookup = UdpClient::datagram(0x5000, NFS, 3, 3, &remove_args(&root, "other"));
    assert_eq!(status(&c.send(&lookup)), 0);
    std::fs::remove_file(dir.path().join("other")).unwrap();
    assert_eq!(status(&c.send(&lookup)), 2);
    server.shutdown();
}
