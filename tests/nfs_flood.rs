//! Floods of idle TCP connections (issue 11 §3): the caps hold, a
//! connection over a cap closes the longest-idle one in the cap's scope,
//! the server's threads stay bounded, a normal client is still served
//! (also from the flood's own address, and when the flood fills the total),
//! idle connections are closed after the idle timeout, and a connection
//! whose call the fault hook holds is closed neither for idleness nor for a
//! newer connection. Loopback only (127.0.0.0/8), no root.

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
/// second during a flood. Measured on the 2-core development machine at a
/// load average of 8: 0.6 to 10 ms after a flood (from the client's own
/// address or filling the total), 65 to 260 ms in the middle of the
/// 3000-connection one (each flood connection now closes an older one,
/// which costs the accept loop more than refusing it did: 0.5 to 10 ms
/// then). The bound is the requirement, not the measurement.
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

/// How many of each group of connections the server holds, once that is
/// `want` (or after 20 s).
fn settle_groups(groups: &[Vec<TcpStream>], want: &[usize]) -> Vec<usize> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n: Vec<usize> = groups
            .iter()
            .map(|g| g.iter().filter(|s| held(s)).count())
            .collect();
        if n == want || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_total_cap_holds_across_client_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), limits(12, 5, None));
    let addr = server.local_addr();
    let mut by_addr = Vec::new();
    // Over either cap, a new connection closes the longest-idle one in
    // the cap's scope: within its address for the per-client cap, any for
    // the total. Opened address by address, so which ones go is
    // determined: each address keeps its 5 newest, and over the total the
    // oldest addresses' connections go first.
    let want: [&[usize]; 4] = [&[5], &[5, 5], &[2, 5, 5], &[0, 2, 5, 5]];
    for last in 2..=5u8 {
        by_addr.push(
            (0..10)
                .map(|_| connect_from(Ipv4Addr::new(127, 0, 0, last), addr))
                .collect::<Vec<TcpStream>>(),
        );
        let want = want[usize::from(last - 2)];
        assert_eq!(settle_groups(&by_addr, want), want, "after 127.0.0.{last}");
    }
    // The ones held are the newest of each address.
    for (g, n) in by_addr.iter().zip([0, 2, 5, 5]) {
        assert!(g[10 - n..].iter().all(held), "not the newest held");
    }
    server.shutdown();
}

/// Opens `count` idle connections from `from`, each after the one before
/// it was accepted by the kernel; bounded in time as well as in count.
fn flood_from(from: Ipv4Addr, addr: SocketAddr, count: usize) -> Vec<TcpStream> {
    let until = Instant::now() + Duration::from_secs(30);
    let flood: Vec<TcpStream> = (0..count)
        .map_while(|_| (Instant::now() < until).then(|| connect_from(from, addr)))
        .collect();
    assert_eq!(flood.len(), count, "the flood took over 30 s");
    flood
}

/// Serves the normal client and says how long it took.
fn time_normal_client(addr: SocketAddr) -> Duration {
    let t = Instant::now();
    null_mnt_getattr(addr);
    t.elapsed()
}

#[test]
fn a_flood_from_the_clients_own_address_does_not_lock_it_out() {
    allow_descriptors(1024 + 512);
    let dir = tempfile::tempdir().unwrap();
    // The default caps; no idle timeout, which would otherwise be what
    // let the client back in, after 6 minutes.
    let server = start(
        dir.path(),
        ConnectionLimits {
            idle_timeout: None,
            ..ConnectionLimits::default()
        },
    );
    let addr = server.local_addr();
    let cap = ConnectionLimits::default().max_per_client;
    let own = Ipv4Addr::LOCALHOST;
    let t = Instant::now();
    let flood = flood_from(own, addr, 8 * cap);
    let flood_took = t.elapsed();
    assert_eq!(settle(&flood, cap), cap, "the per-client cap did not hold");
    // The normal client connects from 127.0.0.1 too.
    let took = time_normal_client(addr);
    // Its connection closed the longest-idle flood connection, the oldest.
    let held_after = settle(&flood, cap - 1);
    eprintln!(
        "flood of {} from {own} in {flood_took:?}, {cap} held; normal client from {own} \
         served in {took:?}; {held_after} flood connections held after",
        flood.len()
    );
    assert!(took < SERVED_WITHIN, "normal client took {took:?}");
    assert_eq!(held_after, cap - 1);
    assert!(!held(&flood[flood.len() - cap]), "not the oldest closed");
    // Again, and a second connection while the first is open: both in.
    let mut c = client(addr);
    c.call(NFS, 3, 0, &[]).unwrap();
    let took = time_normal_client(addr);
    assert!(took < SERVED_WITHIN, "second normal client took {took:?}");
    c.call(NFS, 3, 0, &[]).unwrap();
    server.shutdown();
}

#[test]
fn a_flood_filling_the_total_does_not_lock_a_client_out() {
    allow_descriptors(1024 + 512);
    let dir = tempfile::tempdir().unwrap();
    let (total, per_client) = (128, 16);
    let server = start(dir.path(), limits(total, per_client, None));
    let addr = server.local_addr();
    // Ten addresses, each up to its own cap: 160 connections for 128.
    let t = Instant::now();
    let flood: Vec<TcpStream> = (2..12u8)
        .flat_map(|last| flood_from(Ipv4Addr::new(127, 0, 0, last), addr, per_client))
        .collect();
    let flood_took = t.elapsed();
    assert_eq!(settle(&flood, total), total, "the total cap did not hold");
    // From an address the flood has not used: over the total cap only.
    let took = time_normal_client(addr);
    let held_after = settle(&flood, total - 1);
    eprintln!(
        "flood of {} from 10 addresses in {flood_took:?}, {total} held; normal client \
         served in {took:?}; {held_after} flood connections held after",
        flood.len()
    );
    assert!(took < SERVED_WITHIN, "normal client took {took:?}");
    assert_eq!(held_after, total - 1);
    // The oldest went first: 127.0.0.2's and .3's for the flood's last two
    // addresses, then 127.0.0.4's oldest for the client.
    assert!(!held(&flood[2 * per_client]), "127.0.0.4's oldest is held");
    assert!(held(&flood[2 * per_client + 1]));
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

#[test]
fn a_stalled_call_keeps_its_connection_through_a_flood_from_its_address() {
    let dir = tempfile::tempdir().unwrap();
    let cap = 8;
    let server = start(dir.path(), limits(64, cap, None));
    let addr = server.local_addr();
    let stall = server.hook().add(FaultRule {
        matcher: CallMatch {
            prog: Some(NFS),
            proc_: Some(0),
            ..CallMatch::default()
        },
        action: FaultAction::StallUntilHealed,
        nth: None,
    });
    let mut c = client(addr);
    let xid = c.send_call(NFS, 3, 0, &[]).unwrap();
    // Held once the hook has matched it (the call is in service by then).
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.hook().matched(stall) != Some(1) {
        assert!(Instant::now() < deadline, "the call never reached the hook");
        std::thread::sleep(Duration::from_millis(10));
    }
    // The held connection is the oldest, and longest idle by the time the
    // flood is done; it is never the one closed.
    let flood = flood_from(Ipv4Addr::LOCALHOST, addr, 8 * cap);
    assert_eq!(
        settle(&flood, cap - 1),
        cap - 1,
        "the held connection did not keep its place"
    );
    c.set_read_timeout(Duration::from_millis(300)).unwrap();
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
    // And the connection serves calls as before.
    c.call(NFS, 3, 0, &[]).unwrap();
    server.shutdown();
}
