//! The portmapper as a registry: v2 SET/UNSET/GETPORT/DUMP and v3/v4
//! SET/UNSET/GETADDR/DUMP/GETADDRLIST with universal addresses, on a
//! separate "port 111" listener as well as on the NFS port. Loopback, no root.

use std::net::{SocketAddr, TcpListener, UdpSocket};

use stackquake::nfs::client::RpcClient;
use stackquake::nfs::portmap::{Registration, uaddr};
use stackquake::nfs::rpc::{AuthSys, Credential};
use stackquake::nfs::xdr::{XdrReader, XdrWriter};
use stackquake::nfs::{Listeners, NfsServer, ServerConfig};

const PMAP: u32 = 100000;
const NFS: u32 = 100003;
const STATD: u32 = 100024;

fn rpcb(prog: u32, vers: u32, netid: &str, addr: &str) -> Vec<u8> {
    let mut w = XdrWriter::new();
    w.u32(prog)
        .u32(vers)
        .string(netid.as_bytes())
        .string(addr.as_bytes())
        .string(b"test");
    w.into_bytes()
}

fn mapping(prog: u32, vers: u32, prot: u32, port: u32) -> Vec<u8> {
    let mut w = XdrWriter::new();
    w.u32(prog).u32(vers).u32(prot).u32(port);
    w.into_bytes()
}

fn one_u32(body: &[u8]) -> u32 {
    XdrReader::new(body).u32().unwrap()
}

fn one_string(body: &[u8]) -> String {
    String::from_utf8(XdrReader::new(body).string(1024).unwrap().to_vec()).unwrap()
}

#[test]
fn registry_over_v2_v3_v4_on_a_separate_portmap_listener() {
    let dir = tempfile::tempdir().unwrap();
    let pmap_tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let pmap_addr = pmap_tcp.local_addr().unwrap();
    let server = NfsServer::start_with(
        ServerConfig::single("/export", dir.path().to_path_buf()),
        Listeners::new(TcpListener::bind("127.0.0.1:0").unwrap())
            .with_udp(UdpSocket::bind("127.0.0.1:0").unwrap())
            .with_portmap(pmap_tcp, None),
    )
    .unwrap();
    let nfs_tcp = server.local_addr();
    let nfs_udp = server.udp_addr().unwrap();
    let mut c = RpcClient::connect(pmap_addr, Credential::Sys(AuthSys::default())).unwrap();

    // The server's own programs: GETPORT (v2) and GETADDR (v3, v4).
    assert_eq!(
        one_u32(&c.call(PMAP, 2, 3, &mapping(NFS, 3, 6, 0)).unwrap()),
        nfs_tcp.port() as u32
    );
    assert_eq!(
        one_u32(&c.call(PMAP, 2, 3, &mapping(NFS, 3, 17, 0)).unwrap()),
        nfs_udp.port() as u32
    );
    assert_eq!(
        one_u32(&c.call(PMAP, 2, 3, &mapping(PMAP, 2, 6, 0)).unwrap()),
        pmap_addr.port() as u32
    );
    // An empty netid means the transport the question came on (TCP here).
    assert_eq!(
        one_string(&c.call(PMAP, 3, 3, &rpcb(NFS, 3, "", "")).unwrap()),
        uaddr(nfs_tcp)
    );
    assert_eq!(
        one_string(&c.call(PMAP, 4, 3, &rpcb(NFS, 3, "udp", "")).unwrap()),
        uaddr(nfs_udp)
    );
    // NFSv4 is served on the same TCP port; NFSv2 is not served at all.
    assert_eq!(
        one_string(&c.call(PMAP, 4, 3, &rpcb(NFS, 4, "tcp", "")).unwrap()),
        uaddr(nfs_tcp)
    );
    assert_eq!(
        one_string(&c.call(PMAP, 4, 3, &rpcb(NFS, 2, "tcp", "")).unwrap()),
        ""
    );

    // A statd registers with v2 SET (loopback caller), then with v3 SET.
    assert_eq!(
        one_u32(&c.call(PMAP, 2, 1, &mapping(STATD, 1, 17, 4001)).unwrap()),
        1
    );
    assert_eq!(
        one_u32(&c.call(PMAP, 2, 1, &mapping(STATD, 1, 17, 4002)).unwrap()),
        0,
        "second SET of the same mapping accepted"
    );
    assert_eq!(
        one_u32(&c.call(PMAP, 2, 3, &mapping(STATD, 1, 17, 0)).unwrap()),
        4001
    );
    let statd_tcp: SocketAddr = "127.0.0.1:4003".parse().unwrap();
    assert_eq!(
        one_u32(
            &c.call(PMAP, 3, 1, &rpcb(STATD, 1, "tcp", &uaddr(statd_tcp)))
                .unwrap()
        ),
        1
    );
    assert_eq!(
        one_u32(&c.call(PMAP, 2, 3, &mapping(STATD, 1, 6, 0)).unwrap()),
        4003
    );

    // v4 GETADDRLIST lists both transports of statd.
    let body = c.call(PMAP, 4, 12, &rpcb(STATD, 1, "", "")).unwrap();
    let mut r = XdrReader::new(&body);
    let mut netids = Vec::new();
    while r.bool().unwrap() {
        let addr = String::from_utf8(r.string(256).unwrap().to_vec()).unwrap();
        let netid = String::from_utf8(r.string(64).unwrap().to_vec()).unwrap();
        r.u32().unwrap();
        r.string(64).unwrap();
        r.string(64).unwrap();
        netids.push((netid, addr));
    }
    netids.sort();
    assert_eq!(
        netids,
        vec![
            ("tcp".to_string(), "127.0.0.1.15.163".to_string()),
            ("udp".to_string(), "0.0.0.0.15.161".to_string())
        ]
    );

    // v2 DUMP and v3 DUMP both show statd; the in-process API sees it too.
    let body = c.call(PMAP, 2, 4, &[]).unwrap();
    let mut r = XdrReader::new(&body);
    let mut v2 = Vec::new();
    while r.bool().unwrap() {
        v2.push((
            r.u32().unwrap(),
            r.u32().unwrap(),
            r.u32().unwrap(),
            r.u32().unwrap(),
        ));
    }
    assert!(v2.contains(&(STATD, 1, 17, 4001)), "{v2:?}");
    assert!(v2.contains(&(NFS, 3, 6, nfs_tcp.port() as u32)), "{v2:?}");
    let body = c.call(PMAP, 3, 4, &[]).unwrap();
    let mut r = XdrReader::new(&body);
    let mut v3 = Vec::new();
    while r.bool().unwrap() {
        let (prog, vers) = (r.u32().unwrap(), r.u32().unwrap());
        let netid = String::from_utf8(r.string(64).unwrap().to_vec()).unwrap();
        r.string(256).unwrap();
        r.string(256).unwrap();
        v3.push((prog, vers, netid));
    }
    assert!(v3.contains(&(STATD, 1, "tcp".to_string())), "{v3:?}");
    assert!(v3.contains(&(PMAP, 4, "udp".to_string())), "{v3:?}");
    assert!(server.portmap().lookup(STATD, 1, "tcp").is_some());

    // v3 UNSET with an empty netid removes every transport.
    assert_eq!(
        one_u32(&c.call(PMAP, 3, 2, &rpcb(STATD, 1, "", "")).unwrap()),
        1
    );
    assert_eq!(
        one_u32(&c.call(PMAP, 2, 3, &mapping(STATD, 1, 17, 0)).unwrap()),
        0
    );
    assert_eq!(
        one_u32(&c.call(PMAP, 2, 3, &mapping(STATD, 1, 6, 0)).unwrap()),
        0
    );

    // In-process registration (how our NLM/NSM will do it).
    let nlm: SocketAddr = "127.0.0.1:4045".parse().unwrap();
    assert!(
        server
            .portmap()
            .set(Registration::new(100021, 4, "tcp", nlm, "nlm"))
    );
    assert_eq!(
        one_u32(&c.call(PMAP, 2, 3, &mapping(100021, 4, 6, 0)).unwrap()),
        4045
    );

    // Version 5 does not exist: PROG_MISMATCH 2..4.
    match c.call(PMAP, 5, 0, &[]) {
        Err(stackquake::nfs::client::ClientError::NotAccepted(stat)) => assert_eq!(
            stat,
            stackquake::nfs::rpc::AcceptStat::ProgMismatch { low: 2, high: 4 }
        ),
        other => panic!("expected PROG_MISMATCH, got {other:?}"),
    }
    server.shutdown();
}
