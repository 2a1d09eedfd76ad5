//! Floods of idle TCP connections (issue 11 §3): the caps hold, refused
//! connections are closed at once, the server's threads stay bounded, a
//! normal client is still served, idle connections are closed after the
//! idle timeout, and a connection whose call the fault hook holds is not.
//! Loopback only (127.0.0.0/8: the floods come from other addresses than
//! the normal client's), no root.

use std::io::{ErrorKind, Read};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrIn};
use stackquake::nfs::client::{ClientError, RpcClient};
use stackquake::nfs::rpc::{AuthSys, Credential};
use stackquake::nfs::xdr::{XdrReader, XdrWriter};
use stackquake::nfs::{
    CallMatch, ConnectionLimits, FaultAction, FaultRule, NfsServer, ServerConfig,
};

const NFS: u32 = 100003;
const MOUNT: u32 = 100005;

/// Connections a flood opens and keeps open: thousands, as in the issue,
/// bounded so the test stays well inside the descriptor and port limits.
const FLOOD: usize = 3000;

/// The issue's own requirement: a normal client is served within a
/// second during a flood. Measured at 0.5 to 10 ms on the 2-core
/// development machine at a load average of 8; the bound is the
/// requirement, not the measurement.
const SERVED_WITHIN: Duration = Duration::from_secs(1);

fn start(dir: &Path, connections: ConnectionLimits) -> NfsServer {
    NfsServer::start(
        ServerConfig {
            connections,
            ..ServerConfig::single("/export", dir.to_path_buf())
        },
        TcpListener::bind("127.0.0.1:0").unwrap(),
    )
    .unwrap()
}

fn limits(max_total: usize, max_per_client: usize, idle: Option<Duration>) -> ConnectionLimits {
    ConnectionLimits {
        max_total,
        max_per_client,
        idle_timeout: idle,
    }
}

/// A TCP connection to `to` from the loopback address `from`.
fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    let fd = socket::socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    socket::bind(
        fd.as_raw_fd(),
        &SockaddrIn::from(SocketAddrV4::new(from, 0)),
    )
    .unwrap();
    let SocketAddr::V4(to) = to else {
        panic!("the server listens on IPv4 loopback")
    };
    socket::connect(fd.as_raw_fd(), &SockaddrIn::from(to)).unwrap();
    TcpStream::from(fd)
}

/// Whether the server still holds the connection (false once it closed
/// it), without waiting.
fn held(s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut b = [0u8; 1];
    let r = (&*s).read(&mut b);
    s.set_nonblocking(false).unwrap();
    match r {
        Ok(0) => false,
        Ok(_) => panic!("the server sent bytes on an idle connection"),
        Err(e) if e.kind() == ErrorKind::WouldBlock => true,
        Err(e) if e.kind() == ErrorKind::ConnectionReset => false,
        Err(e) => panic!("reading a flood connection: {e}"),
    }
}

/// Waits until `count` of `conns` are held and the rest closed; returns how
/// many are held then (the caller asserts it).
fn settle(conns: &[TcpStream], count: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = conns.iter().filter(|s| held(s)).count();
        if n == count || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// Descriptors for the flood's client ends (the server's own are capped).
fn allow_descriptors(need: u64) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < need {
        assert!(
            hard >= need,
            "RLIMIT_NOFILE hard limit {hard} is below the {need} descriptors the flood needs"
        );
        setrlimit(Resource::RLIMIT_NOFILE, need, hard).unwrap();
    }
}

fn client(addr: SocketAddr) -> RpcClient {
    RpcClient::connect(addr, Credential::Sys(AuthSys::default())).unwrap()
}

/// NULL, MNT and a GETATTR of the export's root: what a mount does first.
fn null_mnt_getattr(addr: SocketAddr) {
    let mut c = client(addr);
    c.call(NFS, 3, 0, &[]).unwrap();
    let mut a = XdrWriter::new();
    a.string(b"/export");
    let body = c.call(MOUNT, 3, 1, a.as_bytes()).unwrap();
    let mut r = XdrReader::new(&body);
    assert_eq!(r.u32().unwrap(), 0, "MNT refused");
    let root = r.opaque(64).unwrap().to_vec();
    let mut a = XdrWriter::new();
    a.opaque(&root);
    let body = c.call(NFS, 3, 1, a.as_bytes()).unwrap();
    assert_eq!(XdrReader::new(&body).u32().unwrap(), 0, "GETATTR failed");
}

#[test]
fn a_flood_of_idle_connections_is_capped_and_a_normal_client_is_served() {
    allow_descriptors(FLOOD as u64 + 1024);
    let dir = tempfile::tempdir().unwrap();
    // No idle timeout: the flood must be held off by the caps alone.
    let server = start(dir.path(), limits(64, 16, None));
    let addr = server.local_addr();
    let before = threads();
    let opened = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let flooder = {
        let opened = opened.clone();
        std::thread::spawn(move || {
            let mut flood = Vec::with_capacity(FLOOD);
            let mut most_threads = 0;
            for i in 0..FLOOD {
                flood.push(connect_from(Ipv4Addr::new(127, 0, 0, 2), addr));
                opened.store(i + 1, Ordering::SeqCst);
                if i % 100 == 0 {
                    most_threads = most_threads.max(threads());
                }
            }
            (flood, most_threads)
        })
    };
    // A normal client, from another address, in the middle of the flood.
    while opened.load(Ordering::SeqCst) < FLOOD / 3 && !flooder.is_finished() {
        std::thread::sleep(Duration::from_millis(1));
    }
    let t = Instant::now();
    null_mnt_getattr(addr);
    let took = t.elapsed();
    let during = opened.load(Ordering::SeqCst);
    let (flood, most_threads) = flooder.join().unwrap();
    let flood_took = started.elapsed();
    let held_now = settle(&flood, 16);
    let most_threads = most_threads.max(threads());
    eprintln!(
        "flood: {FLOOD} connections in {flood_took:?}, {held_now} held; threads {before} before, \
         at most {most_threads} during; normal client served in {took:?} \
         with {during} flood connections opened"
    );
    assert!(took < SERVED_WITHIN, "normal client took {took:?}");
    assert_eq!(
        held_now, 16,
        "the per-client cap did not hold the flood to 16 connections"
    );
    // One thread per held connection and a few for the server itself and
    // the other tests of this file running alongside: nowhere near one
    // per flood connection, which is what took the server down.
    assert!(
        most_threads <= before + 64,
        "{most_threads} threads during the flood (from {before})"
    );
    // And after the flood, with its connections still open.
    null_mnt_getattr(addr);
    server.shutdown();
}

#[test]
fn the_total_cap_holds_across_client_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), limits(12, 5, None));
    let addr = server.local_addr();
    let mut by_addr = Vec::new();
    for last in 2..=5u8 {
        let conns: Vec<TcpStream> = (0..10)
            .map(|_| connect_from(Ipv4Addr::new(127, 0, 0, last), addr))
            .collect();
        // Settled address by address, so which ones get in is determined.
        let want = [5, 5, 2, 0][usize::from(last - 2)];
        assert_eq!(settle(&conns, want), want, "from 127.0.0.{last}");
        by_addr.push(conns);
    }
    // Closing 127.0.0.2's connections makes room for 127.0.0.5.
    drop(by_addr.remove(0));
    let deadline = Instant::now() + Duration::from_secs(20);
    let late = loop {
        let s = connect_from(Ipv4Addr::new(127, 0, 0, 5), addr);
        std::thread::sleep(Duration::from_millis(100));
        if held(&s) {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "no room after connections closed"
        );
    };
    drop(late);
    server.shutdown();
}

#[test]
fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let idle = Duration::from_millis(400);
    let server = start(dir.path(), limits(64, 16, Some(idle)));
    let mut c = client(server.local_addr());
    // Timed from before the call: the server's idle clock starts when it
    // answers, which is after this.
    let sent = Instant::now();
    c.call(NFS, 3, 0, &[]).unwrap();
    c.set_read_timeout(Duration::from_secs(20)).unwrap();
    let end = c.recv_reply().unwrap_err();
    let after = sent.elapsed();
    assert!(
        matches!(end, ClientError::Closed(_)),
        "expected the server to close the idle connection, got {end}"
    );
    assert!(after >= idle, "closed after {after:?}, before the timeout");
    server.shutdown();
}

#[test]
fn a_connection_in_use_is_not_idle() {
    let dir = tempfile::tempdir().unwrap();
    let idle = Duration::from_secs(1);
    let server = start(dir.path(), limits(64, 16, Some(idle)));
    let mut c = client(server.local_addr());
    // A call every 100 ms for three timeouts: never idle that long.
    let until = Instant::now() + idle * 3;
    while Instant::now() < until {
        c.call(NFS, 3, 0, &[]).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    server.shutdown();
}

#[test]
fn a_stalled_call_keeps_its_connection_past_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let idle = Duration::from_millis(300);
    let server = start(dir.path(), limits(64, 16, Some(idle)));
    let stall = server.hook().add(FaultRule {
        matcher: CallMatch {
            prog: Some(NFS),
            proc_: Some(0),
            ..CallMatch::default()
        },
        action: FaultAction::StallUntilHealed,
        nth: None,
    });
    let mut c = client(server.local_addr());
    let xid = c.send_call(NFS, 3, 0, &[]).unwrap();
    // Five idle timeouts with the call held: no reply, and no close.
    c.set_read_timeout(idle * 5).unwrap();
    match c.recv_reply() {
        Err(ClientError::Io { source, .. })
            if matches!(source.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        Err(e) => panic!("the held call's connection ended: {e}"),
        Ok(_) => panic!("the stalled call was answered before the heal"),
    }
    assert!(server.hook().remove(stall));
    c.set_read_timeout(Duration::from_secs(20)).unwrap();
    let (got, _, _) = c.recv_reply().unwrap();
    assert_eq!(got, xid);
    // Answered, the connection is idle like any other, and closed.
    assert!(matches!(c.recv_reply(), Err(ClientError::Closed(_))));
    server.shutdown();
}
