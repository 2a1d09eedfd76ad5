//! The server: an accept thread for TCP, a receive thread for UDP, TCP
//! connections served leader/follower (`tcp_conn`) and UDP calls by a pool
//! (`workers::CallPool`); both always keep a worker free for the next call,
//! so a call the fault hook holds never holds the calls behind it.
//! TCP connections are capped and closed when idle (`conns`), by a
//! housekeeping thread that also reports the warnings a flood suppressed
//! (`throttle`).

use std::collections::BTreeMap;
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::NfsError;
use super::call::Transport;
use super::call_counts::CallKey;
use super::dispatch::{Dispatcher, Outcome};
use super::export::{ExportSpec, ExportTable, Squash};
use super::hook::FaultHook;
use super::nfs3::MAX_IO;
use super::nlm::{self, LockConfig, Nlm};
use super::nsm::{self, Nsm};
use super::pcap::PcapWriter;
use super::portmap::{self, PortRegistry, Registration};
use super::workers::CallPool;

mod accept;
mod conns;
mod tcp_conn;
mod throttle;
use super::{mount, nfs3, nfs4, rpc};
use conns::ConnTable;
pub use conns::{
    ConnectionLimits, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
};
use tcp_conn::SharedStream;
use throttle::LogThrottle;

/// The largest record accepted: a maximal WRITE plus generous room for the
/// headers. Anything bigger closes the connection.
const MAX_RECORD: usize = MAX_IO as usize + 64 * 1024;
/// A UDP datagram cannot carry more (65535 minus IP and UDP headers).
const MAX_DATAGRAM: usize = 65_507;
/// How often the accept and receive loops look at the stop flag. The sockets
/// poll because a wake-up packet could not reach them from another network
/// namespace.
const POLL: Duration = Duration::from_millis(20);
/// Calls served at once on UDP; more are dropped (the client retransmits).
const MAX_UDP_IN_FLIGHT: usize = 256;
/// Calls served at once on one TCP connection; beyond that the connection is
/// not read until one finishes. The Linux client keeps at most its slot
/// table's worth in flight (sunrpc.tcp_slot_table_entries, 2 by default,
/// growing on demand), so this only bounds a hostile peer.
const MAX_TCP_IN_FLIGHT: usize = 256;

/// How `NfsServer::restart` behaves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestartOptions {
    /// Handles issued before the restart stay valid (knfsd: handles are
    /// derived from the file system, so they survive); `false` makes them
    /// all STALE, like a server that lost its handle table.
    pub keep_handles: bool,
    /// How long the server is down: connections are refused (accepted and
    /// closed at once) and datagrams dropped.
    pub downtime: Duration,
}

/// What the engine asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerConfig {
    pub exports: Vec<ExportSpec>,
    /// Caps on TCP connections and their idle timeout.
    pub connections: ConnectionLimits,
}

impl ServerConfig {
    /// One read-write export of `dir` as `name`, open to any client, with
    /// a client's root acting as root (`no_root_squash`): what a test
    /// needs.
    pub fn single(name: &str, dir: impl Into<std::path::PathBuf>) -> ServerConfig {
        ServerConfig {
            exports: vec![ExportSpec {
                name: name.into(),
                dir: dir.into(),
                clients: Vec::new(),
                read_only: false,
                squash: Squash::NoRootSquash,
            }],
            connections: ConnectionLimits::default(),
        }
    }
}

/// The sockets to serve on, created by the caller in the server's network
/// namespace.
#[derive(Debug)]
pub struct Listeners {
    pub tcp: TcpListener,
    pub udp: Option<UdpSocket>,
    /// Sockets on the portmapper's well-known port 111, for clients that ask
    /// rpcbind there (the kernel's mount and lockd do). They share the
    /// dispatcher, so they answer every program, not only the portmapper.
    pub portmap_tcp: Option<TcpListener>,
    pub portmap_udp: Option<UdpSocket>,
}

impl Listeners {
    pub fn new(tcp: TcpListener) -> Listeners {
        Listeners {
            tcp,
            udp: None,
            portmap_tcp: None,
            portmap_udp: None,
        }
    }

    pub fn with_udp(mut self, udp: UdpSocket) -> Listeners {
        self.udp = Some(udp);
        self
    }

    pub fn with_portmap(mut self, tcp: TcpListener, udp: Option<UdpSocket>) -> Listeners {
        self.portmap_tcp = Some(tcp);
        self.portmap_udp = udp;
        self
    }
}

impl From<TcpListener> for Listeners {
    fn from(tcp: TcpListener) -> Self {
        Listeners::new(tcp)
    }
}

/// Counts calls being served, so that shutdown can wait for them and a
/// transport can bound them.
#[derive(Debug, Default)]
struct InFlight {
    count: Mutex<usize>,
    idle: Condvar,
}

impl InFlight {
    fn try_enter(&self, max: usize) -> bool {
        let mut n = lock(&self.count);
        if *n >= max {
            return false;
        }
        *n += 1;
        true
    }

    fn leave(&self) {
        let mut n = lock(&self.count);
        *n -= 1;
        self.idle.notify_all();
    }

    fn wait_idle(&self) {
        let mut n = lock(&self.count);
        while *n > 0 {
            n = self.idle.wait(n).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// The warnings a flood repeats, one throttle per kind.
#[derive(Debug)]
struct Throttles {
    evicted_total: LogThrottle,
    evicted_per_client: LogThrottle,
    refused_total: LogThrottle,
    refused_per_client: LogThrottle,
    accept_failed: LogThrottle,
    serve_failed: LogThrottle,
}

impl Throttles {
    fn new() -> Throttles {
        let t = |what| LogThrottle::new(what, throttle::INTERVAL);
        Throttles {
            evicted_total: t("idle connections closed for new ones over max connections"),
            evicted_per_client: t(
                "idle connections closed for new ones over max connections per client",
            ),
            refused_total: t("connections refused over max connections"),
            refused_per_client: t("connections refused over max connections per client"),
            accept_failed: t("accept failures"),
            serve_failed: t("connections that could not be served"),
        }
    }

    fn all(&self) -> [&LogThrottle; 6] {
        [
            &self.evicted_total,
            &self.evicted_per_client,
            &self.refused_total,
            &self.refused_per_client,
            &self.accept_failed,
            &self.serve_failed,
        ]
    }
}

#[derive(Debug)]
struct Shared {
    dispatcher: Dispatcher,
    stop: AtomicBool,
    /// Wakes the housekeeping thread when `stop` is set.
    stop_wake: (Mutex<()>, Condvar),
    conns: ConnTable,
    throttles: Throttles,
    threads: Mutex<Vec<JoinHandle<()>>>,
    udp_calls: InFlight,
    capture: Mutex<Option<Arc<PcapWriter>>>,
    /// Set during a restart's downtime.
    down: AtomicBool,
}

impl Shared {
    fn capture(&self, transport: Transport, src: SocketAddr, dst: SocketAddr, message: &[u8]) {
        let pcap = lock(&self.capture).clone();
        if let Some(p) = pcap {
            p.record(transport, src, dst, message);
        }
    }

    /// Runs one call; a bug in one procedure must not take its thread down
    /// silently: log it and treat it like a crashed server (close).
    fn dispatch(&self, record: &[u8], peer: SocketAddr, transport: Transport) -> Outcome {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.dispatcher.handle(record, peer, transport)
        }))
        .unwrap_or_else(|_| {
            tracing::error!(%peer, "nfs call handler panicked");
            Outcome::Close
        })
    }
}

/// A running in-process NFS server.
#[derive(Debug)]
pub struct NfsServer {
    shared: Arc<Shared>,
    hook: Arc<FaultHook>,
    registry: Arc<PortRegistry>,
    local_addr: SocketAddr,
    udp_addr: Option<SocketAddr>,
    loops: Vec<JoinHandle<()>>,
}

fn listener_err(what: &'static str) -> impl FnOnce(std::io::Error) -> NfsError {
    move |source| NfsError::Listener { what, source }
}

impl NfsServer {
    /// Serves portmap v2, MOUNT v3 and NFSv3 on `listener` (created by the
    /// caller in the server's network namespace), TCP only.
    pub fn start(config: ServerConfig, listener: TcpListener) -> Result<NfsServer, NfsError> {
        NfsServer::start_with(config, Listeners::from(listener))
    }

    /// Serves on TCP and, when given, on UDP and port 111; registers NFS v3,
    /// MOUNT v3 and portmap v2–v4 in the server's portmapper. No NLM/NSM:
    /// see `start_with_locking`.
    pub fn start_with(config: ServerConfig, listeners: Listeners) -> Result<NfsServer, NfsError> {
        NfsServer::start_with_locking(config, listeners, LockConfig::off())
    }

    /// Like `start_with`, and serves the lock manager (NLM 100021 v1/v3/v4)
    /// and status monitor (NSM 100024 v1) as `locking` says, registered on
    /// the main TCP/UDP port. The Linux client finds NLM through the
    /// server's portmapper on port 111 (there is no mount option for the
    /// NLM port), so a server that kernel clients lock against needs the
    /// port-111 listeners.
    pub fn start_with_locking(
        config: ServerConfig,
        listeners: Listeners,
        locking: LockConfig,
    ) -> Result<NfsServer, NfsError> {
        let exports = Arc::new(ExportTable::new(&config.exports)?);
        let Listeners {
            tcp,
            udp,
            portmap_tcp,
            portmap_udp,
        } = listeners;
        let local_addr = tcp.local_addr().map_err(listener_err("local address"))?;
        let udp_addr = udp
            .as_ref()
            .map(|u| u.local_addr().map_err(listener_err("udp local address")))
            .transpose()?;
        let mut tcps = vec![tcp];
        tcps.extend(portmap_tcp);
        let mut udps: Vec<UdpSocket> = udp.into_iter().chain(portmap_udp).collect();
        for t in &tcps {
            t.set_nonblocking(true)
                .map_err(listener_err("set non-blocking"))?;
            // std listens with a backlog of 128; a flood fills that faster
            // than connections can be refused, and a client whose SYN
            // finds it full retries a second later (issue 11: a normal
            // client timed out). Listening again only resizes the queue.
            nix::sys::socket::listen(t, nix::sys::socket::Backlog::MAXCONN).map_err(|e| {
                NfsError::Listener {
                    what: "listen backlog",
                    source: e.into(),
                }
            })?;
        }
        for u in &mut udps {
            u.set_read_timeout(Some(POLL))
                .map_err(listener_err("udp read timeout"))?;
        }
        let registry = Arc::new(PortRegistry::new());
        register_programs(&registry, &tcps, &udps, &locking)?;
        let hook = Arc::new(FaultHook::new());
        let (nlm, nsm) = locking_services(&locking, local_addr.ip(), &registry);
        let shared = Arc::new(Shared {
            dispatcher: Dispatcher::new(exports, hook.clone(), registry.clone())
                .with_locking(nlm, nsm),
            stop: AtomicBool::new(false),
            stop_wake: (Mutex::new(()), Condvar::new()),
            conns: ConnTable::new(config.connections),
            throttles: Throttles::new(),
            threads: Mutex::new(Vec::new()),
            udp_calls: InFlight::default(),
            capture: Mutex::new(None),
            down: AtomicBool::new(false),
        });
        let mut server = NfsServer {
            shared: shared.clone(),
            hook,
            registry,
            local_addr,
            udp_addr,
            loops: Vec::new(),
        };
        for tcp in tcps {
            let s = shared.clone();
            server.loops.push(
                std::thread::Builder::new()
                    .name("nfs-accept".into())
                    .spawn(move || accept::accept_loop(s, tcp))
                    .map_err(NfsError::Spawn)?,
            );
        }
        let s = shared.clone();
        server.loops.push(
            std::thread::Builder::new()
                .name("nfs-housekeeping".into())
                .spawn(move || housekeeping(&s))
                .map_err(NfsError::Spawn)?,
        );
        for udp in udps {
            let s = shared.clone();
            server.loops.push(
                std::thread::Builder::new()
                    .name("nfs-udp".into())
                    .spawn(move || udp_loop(s, Arc::new(udp)))
                    .map_err(NfsError::Spawn)?,
            );
        }
        tracing::info!(%local_addr, ?udp_addr, "nfs server started");
        Ok(server)
    }

    /// Starts writing a pcap of every call received and reply sent from now
    /// on (replacing a capture already running).
    pub fn start_capture(&self, path: &Path) -> Result<(), NfsError> {
        let writer = Arc::new(PcapWriter::create(path)?);
        tracing::info!(path = %path.display(), "nfs capture started");
        *lock(&self.shared.capture) = Some(writer);
        Ok(())
    }

    /// Stops the capture; returns its file.
    pub fn stop_capture(&self) -> Option<PathBuf> {
        lock(&self.shared.capture)
            .take()
            .map(|w| w.path().to_path_buf())
    }

    /// The portmapper's registry, for programs that register in-process.
    pub fn portmap(&self) -> &PortRegistry {
        &self.registry
    }

    /// The TCP address served.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The UDP address served, if any.
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp_addr
    }

    /// Exports or unexports one export. While unexported every call with one
    /// of its handles answers NFS3ERR_STALE and MNT is refused; exporting it
    /// again makes the same handles valid again.
    pub fn set_exported(&self, export: &str, exported: bool) -> Result<(), NfsError> {
        let e = self
            .shared
            .dispatcher
            .exports()
            .by_name(export)
            .ok_or_else(|| NfsError::UnknownExport(export.to_string()))?;
        e.set_exported(exported);
        tracing::info!(export = %e.name, exported, "export state changed");
        Ok(())
    }

    /// Makes every handle of `export` issued so far permanently STALE, like
    /// a server that lost its handle table.
    pub fn invalidate_handles(&self, export: &str) -> Result<(), NfsError> {
        let e = self
            .shared
            .dispatcher
            .exports()
            .by_name(export)
            .ok_or_else(|| NfsError::UnknownExport(export.to_string()))?;
        e.bump_generation();
        Ok(())
    }

    /// Expires now the NFSv4 leases of the clients that registered from
    /// `client` (all with None), as if they had not renewed: their opens
    /// and locks are released, and their next call finds their session
    /// or client id gone. Returns how many clients lost their lease.
    pub fn expire_v4_leases(&self, client: Option<std::net::IpAddr>) -> usize {
        let n = self.shared.dispatcher.nfs4().expire_leases(client);
        tracing::info!(client = ?client, expired = n, "nfsv4 leases expired");
        n
    }

    /// Raises `flags` (RFC 8881 §18.46.3 sr_status_flags) in every NFSv4.1+
    /// SEQUENCE reply from now on (0 stops). Returns how many replies had
    /// carried flags before: what a fault counts its own from.
    pub fn set_v4_sequence_flags(&self, flags: u32) -> u64 {
        let nfs4 = self.shared.dispatcher.nfs4();
        nfs4.set_sequence_flags(flags);
        tracing::info!(
            flags = format_args!("{flags:#x}"),
            "nfsv4 sequence status flags set"
        );
        nfs4.flagged_replies()
    }

    /// SEQUENCE replies that have carried status flags so far.
    pub fn v4_flagged_replies(&self) -> u64 {
        self.shared.dispatcher.nfs4().flagged_replies()
    }

    /// Simulates a server reboot: every connection is closed, the server is
    /// down for `opts.downtime` (this call blocks that long), the write
    /// verifier changes (clients resend uncommitted writes), the
    /// duplicate-request cache is lost, and handles survive or turn STALE as
    /// asked. Calls already held by the fault hook stay held. Returns the new
    /// write verifier.
    pub fn restart(&self, opts: RestartOptions) -> [u8; 8] {
        let shared = &self.shared;
        shared.down.store(true, Ordering::SeqCst);
        shared.conns.shutdown_all();
        shared.dispatcher.reply_cache().clear();
        self.close_open_files();
        if !opts.keep_handles {
            for e in shared.dispatcher.exports().iter() {
                e.bump_generation();
            }
        }
        let verf = shared.dispatcher.nfs3().new_write_verf();
        // NFSv4 keeps no state on disk: every client reclaims in the grace
        // period that starts now (RFC 8881 §8.4.2).
        shared.dispatcher.nfs4().restarted(false);
        // A rebooted lock manager remembers nothing but whom to notify
        // (statd's list is on disk); the grace period starts with the reboot.
        if let Some(n) = shared.dispatcher.nlm() {
            n.restarted();
        }
        if let Some(n) = shared.dispatcher.nsm() {
            n.reboot();
        }
        if !opts.downtime.is_zero() {
            std::thread::sleep(opts.downtime);
        }
        shared.down.store(false, Ordering::SeqCst);
        if let Some(n) = shared.dispatcher.nsm() {
            n.notify_clients();
        }
        tracing::info!(keep_handles = opts.keep_handles, downtime = ?opts.downtime, "nfs server restarted");
        verf
    }

    /// Closes every cached open file of every export, e.g. before the engine
    /// unmounts a file system under an export (they close by themselves
    /// after `open_files::IDLE` otherwise).
    pub fn close_open_files(&self) {
        for e in self.shared.dispatcher.exports().iter() {
            e.open_files.clear();
        }
    }

    /// The lock manager, when served.
    pub fn nlm(&self) -> Option<&Arc<Nlm>> {
        self.shared.dispatcher.nlm()
    }

    /// The status monitor, when served.
    pub fn nsm(&self) -> Option<&Arc<Nsm>> {
        self.shared.dispatcher.nsm()
    }

    /// Forces a grace period of `d` from now (zero ends one): LOCK without
    /// reclaim, TEST, UNLOCK and CANCEL answer LCK_DENIED_GRACE_PERIOD.
    pub fn start_grace(&self, d: Duration) -> Result<(), NfsError> {
        let nlm = self.nlm().ok_or(NfsError::NotServed("nlm"))?;
        nlm.grace().start(d);
        Ok(())
    }

    /// Removes a lock program from the portmapper (clients asking for its
    /// port get 0, as when lockd or statd is not running) or registers it
    /// again. `program` is `nlm::PROGRAM` or `nsm::PROGRAM`.
    pub fn set_registered(&self, program: u32, registered: bool) -> Result<(), NfsError> {
        let served = match program {
            nlm::PROGRAM => self.nlm().is_some(),
            nsm::PROGRAM => self.nsm().is_some(),
            _ => false,
        };
        if !served {
            return Err(NfsError::NotServed(if program == nsm::PROGRAM {
                "nsm"
            } else {
                "nlm"
            }));
        }
        let versions: Vec<u32> = if program == nlm::PROGRAM {
            nlm::VERSIONS.to_vec()
        } else {
            vec![nsm::VERSION]
        };
        let mut socks = vec![(portmap::IPPROTO_TCP, self.local_addr)];
        socks.extend(self.udp_addr.map(|a| (portmap::IPPROTO_UDP, a)));
        for vers in versions {
            for (proto, addr) in &socks {
                let netid = portmap::netid(*proto, addr);
                if registered {
                    self.registry
                        .set(Registration::new(program, vers, netid, *addr, "stackquake"));
                } else {
                    self.registry.unset(program, vers, Some(netid));
                }
            }
        }
        tracing::info!(program, registered, "lock program registration changed");
        Ok(())
    }

    /// The fault hook in front of dispatch, to add and heal rules.
    pub fn hook(&self) -> &FaultHook {
        &self.hook
    }

    /// How many calls of each procedure the server has received.
    pub fn call_counts(&self) -> BTreeMap<CallKey, u64> {
        self.shared.dispatcher.call_counts().snapshot()
    }

    /// Stops accepting, releases held calls, closes connections and joins
    /// every thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if self.loops.is_empty() {
            return;
        }
        self.shared.stop.store(true, Ordering::SeqCst);
        {
            // Under the lock the housekeeper checks `stop` with, so the
            // wake-up cannot fall between its check and its wait.
            let (m, cv) = &self.shared.stop_wake;
            let _g = lock(m);
            cv.notify_all();
        }
        // Held calls first: a UDP loop joins its workers before it returns.
        self.hook.shut_down();
        for t in self.loops.drain(..) {
            let _ = t.join();
        }
        self.shared.conns.shutdown_all();
        let threads = std::mem::take(&mut *lock(&self.shared.threads));
        for t in threads {
            let _ = t.join();
        }
        self.shared.udp_calls.wait_idle();
        tracing::info!(local_addr = %self.local_addr, "nfs server stopped");
    }
}

impl Drop for NfsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Registers what this server serves: NFS and MOUNT on the first TCP and UDP
/// sockets, the portmapper on the last (port 111 when given).
fn register_programs(
    registry: &PortRegistry,
    tcps: &[TcpListener],
    udps: &[UdpSocket],
    locking: &LockConfig,
) -> Result<(), NfsError> {
    let mut socks = Vec::new();
    if let (Some(first), Some(last)) = (tcps.first(), tcps.last()) {
        socks.push((
            portmap::IPPROTO_TCP,
            first.local_addr().map_err(listener_err("local address"))?,
            last.local_addr().map_err(listener_err("local address"))?,
        ));
    }
    if let (Some(first), Some(last)) = (udps.first(), udps.last()) {
        socks.push((
            portmap::IPPROTO_UDP,
            first
                .local_addr()
                .map_err(listener_err("udp local address"))?,
            last.local_addr()
                .map_err(listener_err("udp local address"))?,
        ));
    }
    for (proto, served, pmap) in socks {
        let netid = portmap::netid(proto, &served);
        let services = [
            (nfs3::PROGRAM, nfs3::VERSION),
            (nfs4::PROGRAM, nfs4::VERSION),
            (mount::PROGRAM, mount::VERSION),
        ];
        for (prog, vers) in services {
            registry.set(Registration::new(prog, vers, netid, served, "stackquake"));
        }
        for (prog, vers) in lock_programs(locking) {
            registry.set(Registration::new(prog, vers, netid, served, "stackquake"));
        }
        for vers in portmap::MIN_VERSION..=portmap::MAX_VERSION {
            registry.set(Registration::new(
                portmap::PROGRAM,
                vers,
                netid,
                pmap,
                "stackquake",
            ));
        }
    }
    Ok(())
}

/// The (program, version) pairs `locking` serves.
fn lock_programs(locking: &LockConfig) -> Vec<(u32, u32)> {
    let mut v = Vec::new();
    if locking.nlm {
        v.extend(nlm::VERSIONS.iter().map(|&vers| (nlm::PROGRAM, vers)));
    }
    if locking.nsm {
        v.push((nsm::PROGRAM, nsm::VERSION));
    }
    v
}

fn locking_services(
    locking: &LockConfig,
    ip: IpAddr,
    registry: &Arc<PortRegistry>,
) -> (Option<Arc<Nlm>>, Option<Arc<Nsm>>) {
    let nlm = locking.nlm.then(|| Arc::new(Nlm::new(locking.clone(), ip)));
    let nsm = locking.nsm.then(|| {
        Arc::new(Nsm::new(
            nlm.clone(),
            locking.name.clone().unwrap_or_else(|| ip.to_string()),
            registry.clone(),
            ip,
            locking.peer_portmap_port,
            locking.callback_timeout,
        ))
    });
    (nlm, nsm)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// RFC 5531 §11 does not apply to UDP: one datagram is one message. Calls
/// go to the socket's worker pool so a stalled call does not stall the
/// socket.
fn udp_loop(shared: Arc<Shared>, socket: Arc<UdpSocket>) {
    let local = socket
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    let pool = CallPool::new("nfs-udp-call");
    while !shared.stop.load(Ordering::SeqCst) {
        let (n, peer) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => {
                tracing::debug!(error = %e, "udp receive failed");
                std::thread::sleep(POLL);
                continue;
            }
        };
        if shared.down.load(Ordering::SeqCst) {
            continue;
        }
        if n > MAX_DATAGRAM {
            tracing::debug!(%peer, "oversized udp datagram dropped");
            continue;
        }
        if !shared.udp_calls.try_enter(MAX_UDP_IN_FLIGHT) {
            tracing::debug!(%peer, "too many udp calls in flight; datagram dropped");
            continue;
        }
        let record = buf[..n].to_vec();
        shared.capture(Transport::Udp, peer, local, &record);
        let s = shared.clone();
        let sock = socket.clone();
        let spawned = pool.submit(move || {
            if let Outcome::Reply(reply) = s.dispatch(&record, peer, Transport::Udp) {
                s.capture(Transport::Udp, local, peer, &reply);
                if let Err(e) = sock.send_to(&reply, peer) {
                    tracing::debug!(%peer, error = %e, "udp reply failed");
                }
            }
            s.udp_calls.leave();
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot spawn udp call thread");
            shared.udp_calls.leave();
        }
    }
    // Held calls are released by a heal or by the server's shutdown.
    pool.close();
}

/// Closes connections idle for the timeout, as knfsd's
/// `svc_age_temp_xprts` does, and logs what the throttles suppressed once a
/// flood stops. One thread for the whole server: a timer per connection
/// would be a thread per connection again.
fn housekeeping(shared: &Shared) {
    let limits = *shared.conns.limits();
    // Often enough that a connection outlives its timeout by at most a
    // quarter of it, and a suppressed count is reported within a second.
    let tick = limits
        .idle_timeout
        .map_or(Duration::from_secs(1), |t| t / 4)
        .clamp(Duration::from_millis(10), Duration::from_secs(1));
    let (m, cv) = &shared.stop_wake;
    loop {
        {
            let g = lock(m);
            if shared.stop.load(Ordering::SeqCst) {
                return;
            }
            let _ = cv.wait_timeout(g, tick);
        }
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let now = Instant::now();
        let closed = shared.conns.close_idle(now);
        if !closed.is_empty() {
            tracing::debug!(
                count = closed.len(),
                open = shared.conns.len(),
                peers = ?closed,
                "idle connections closed"
            );
        }
        for t in shared.throttles.all() {
            if let Some(s) = t.flush(now) {
                tracing::warn!("{}{s}", t.what());
            }
        }
    }
}

/// The Linux client pipelines calls on one connection, and a call the
/// fault hook holds (say "stall every WRITE") must not hold the GETATTRs
/// behind it: see `tcp_conn`. Replies go out whole under the writer lock,
/// in completion order (RFC 5531 §11 matches them by xid, not by order).
fn serve_tcp_call(
    shared: &Shared,
    record: &[u8],
    (local, peer): (SocketAddr, SocketAddr),
    writer: &Mutex<SharedStream>,
) {
    match shared.dispatch(record, peer, Transport::Tcp) {
        Outcome::Reply(bytes) => {
            let mut w = lock(writer);
            // Under the writer lock, so the capture's order is the wire's.
            shared.capture(Transport::Tcp, local, peer, &bytes);
            if let Err(e) = rpc::write_record(&mut *w, &bytes) {
                tracing::debug!(%peer, error = %e, "reply write failed");
                let _ = w.shutdown(Shutdown::Both);
            }
        }
        Outcome::NoReply => {}
        Outcome::Close => {
            let _ = lock(writer).shutdown(Shutdown::Both);
        }
    }
}
