//! The open TCP connections: admission against the caps (in total and per
//! client address), closing the longest-idle one to make room, each
//! connection's activity for the idle timeout, and the sockets that a
//! restart, the idle timeout and shutdown close.
//!
//! Issue 11: 10,000 idle connections took the server down (a thread each,
//! no cap, no idle timeout). knfsd bounds both: `svc_check_conn_limits`
//! caps the connections and `svc_age_temp_xprts` closes idle ones
//! (net/sunrpc/svc_xprt.c).

use std::collections::HashMap;
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The caps and the idle timeout (`ServerConfig::connections`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once, from every client together.
    pub max_total: usize,
    /// Connections open at once from one client address.
    pub max_per_client: usize,
    /// A connection with no call in service and none received or answered
    /// for this long is closed; `None` keeps idle connections forever.
    pub idle_timeout: Option<Duration>,
}

/// knfsd's cap is `(threads + 3) * 20` (220 for the default 8 threads;
/// newer kernels cap only connections that have not yet sent a valid
/// call) and over it closes the oldest connection to admit the new one.
/// So do we, with two differences: we close the longest-idle connection
/// in the cap's scope (the same client address for the per-client cap),
/// and never one with a call in service, which keeps a call a scenario
/// holds with `nfs.stall` held; only when every connection in scope has a
/// call in service is the new one refused. Refusing the new one instead,
/// as we did first, let a flood from a client's own address (or filling
/// the total) lock that client out until the flood aged out, 6 minutes.
/// A client host uses one connection per server (times nconnect, at most
/// 16) plus lockd's and statd's, so 64 per address is far above a real
/// client; 1024 in total is a few dozen such hosts, and costs at most
/// 1024 descriptors and mostly idle threads.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
pub const DEFAULT_MAX_CONNECTIONS_PER_CLIENT: usize = 64;
/// knfsd's `svc_conn_age_period`: "clients close idle connections after 5
/// minutes, servers after 6" (the Linux client's idle timeout is 5 min).
/// knfsd marks and sweeps every 6 minutes, so it closes after 6 to 12
/// minutes idle; we close at 6.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(6 * 60);

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_total: DEFAULT_MAX_CONNECTIONS,
            max_per_client: DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
        }
    }
}

/// The cap a new connection reached: why it was refused, or why an older
/// connection was closed for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cap {
    Total { limit: usize },
    PerClient { client: IpAddr, limit: usize },
}

impl Cap {
    /// The client address whose connections the cap counts; `None` for
    /// all of them.
    fn scope(&self) -> Option<IpAddr> {
        match *self {
            Cap::Total { .. } => None,
            Cap::PerClient { client, .. } => Some(client),
        }
    }
}

/// A connection closed to make room for a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Eviction {
    /// The cap the new connection reached.
    pub(super) cap: Cap,
    /// The peer of the connection closed.
    pub(super) victim: SocketAddr,
}

/// A connection counted in, and the one closed for it if a cap was reached.
#[derive(Debug)]
pub(super) struct Admitted {
    pub(super) id: u64,
    pub(super) entry: Arc<ConnEntry>,
    pub(super) evicted: Option<Eviction>,
    /// The connection closed, to wait for its threads (`wait_ended`).
    pub(super) victim: Option<Arc<ConnEntry>>,
}

/// How many connections are open, in total and per client address.
#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
}

impl Counts {
    fn admit(&mut self, client: IpAddr, limits: &ConnectionLimits) -> Result<(), Cap> {
        let from_client = self.per_client.get(&client).copied().unwrap_or(0);
        // Per client first: a flood from one address is named as such even
        // when it has also filled the total.
        if from_client >= limits.max_per_client {
            return Err(Cap::PerClient {
                client,
                limit: limits.max_per_client,
            });
        }
        if self.total >= limits.max_total {
            return Err(Cap::Total {
                limit: limits.max_total,
            });
        }
        self.total += 1;
        *self.per_client.entry(client).or_insert(0) += 1;
        Ok(())
    }

    fn release(&mut self, client: IpAddr) {
        self.total -= 1;
        if let Some(n) = self.per_client.get_mut(&client) {
            *n -= 1;
            if *n == 0 {
                self.per_client.remove(&client);
            }
        }
    }
}

#[derive(Debug)]
struct Activity {
    /// Calls taken off the connection and not yet answered (or dropped):
    /// a call the fault hook holds counts until healed.
    in_service: usize,
    /// When the last call arrived or the last one in service ended.
    last: Instant,
    /// Closed, for being idle or to make room for a newer connection: a
    /// call read after this is not served.
    closed: bool,
}

impl Activity {
    /// knfsd closes only a transport nobody holds a reference to
    /// (`xpt_ref` 1, not `XPT_BUSY`): a call in service is never cut off,
    /// which is what keeps `nfs.stall` a stall and not a disconnection.
    fn idle_for(&self, now: Instant, timeout: Duration) -> bool {
        self.in_service == 0 && now.saturating_duration_since(self.last) >= timeout
    }

    /// Whether it may be closed for a newer connection: the same rule.
    fn evictable(&self) -> bool {
        self.in_service == 0
    }
}

/// One open connection, shared by its serving threads and the table.
#[derive(Debug)]
pub(super) struct ConnEntry {
    pub(super) stream: Arc<TcpStream>,
    pub(super) peer: SocketAddr,
    activity: Mutex<Activity>,
    /// Its threads have ended (`set_ended`).
    ended: Mutex<bool>,
    ended_cv: Condvar,
}

impl ConnEntry {
    fn activity(&self) -> MutexGuard<'_, Activity> {
        self.activity.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A call was read: it is in service from now on, unless the idle
    /// timeout or a newer connection closed this one while it arrived (then
    /// false: the client sends it again on a new connection, as after
    /// knfsd's close).
    pub(super) fn call_started(&self) -> bool {
        let mut a = self.activity();
        if a.closed {
            return false;
        }
        a.in_service += 1;
        a.last = Instant::now();
        true
    }

    /// The call was answered, dropped or closed the connection.
    pub(super) fn call_ended(&self) {
        let mut a = self.activity();
        a.in_service -= 1;
        a.last = Instant::now();
    }

    pub(super) fn shutdown(&self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// Every thread serving the connection has ended, or none started.
    pub(super) fn set_ended(&self) {
        *self.ended.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.ended_cv.notify_all();
    }

    /// Waits up to `timeout` for `set_ended`; whether it came.
    pub(super) fn wait_ended(&self, timeout: Duration) -> bool {
        let g = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        let (g, _) = self
            .ended_cv
            .wait_timeout_while(g, timeout, |ended| !*ended)
            .unwrap_or_else(|e| e.into_inner());
        *g
    }
}

#[derive(Debug, Default)]
struct Table {
    next_id: u64,
    counts: Counts,
    conns: HashMap<u64, Arc<ConnEntry>>,
}

impl Table {
    /// Closes the longest-idle connection from `scope` (from any address if
    /// `None`) with no call in service, removes it and releases its counts
    /// at once; returns its peer, or `None` if every connection in scope
    /// has a call in service. One the idle timeout closed already but
    /// whose thread has not removed yet goes first: it costs nothing.
    fn evict(&mut self, scope: Option<IpAddr>) -> Option<Arc<ConnEntry>> {
        loop {
            let (id, _) = self
                .conns
                .iter()
                .filter(|(_, e)| scope.is_none_or(|ip| e.peer.ip() == ip))
                .filter_map(|(&id, e)| {
                    let a = e.activity();
                    // Ties (one `Instant` for two connections) go to the
                    // older connection.
                    a.evictable().then_some((id, (!a.closed, a.last, id)))
                })
                .min_by_key(|&(_, key)| key)?;
            let e = self.conns[&id].clone();
            {
                let mut a = e.activity();
                // A call may have started since the look above: then
                // choose again, from the others.
                if !a.evictable() {
                    continue;
                }
                // Under the activity lock, as for the idle timeout: a call
                // read from now on is not served.
                a.closed = true;
            }
            e.shutdown();
            self.conns.remove(&id);
            self.counts.release(e.peer.ip());
            return Some(e);
        }
    }
}

/// Every open TCP connection of one server.
#[derive(Debug)]
pub(super) struct ConnTable {
    limits: ConnectionLimits,
    table: Mutex<Table>,
}

impl ConnTable {
    pub(super) fn new(limits: ConnectionLimits) -> ConnTable {
        ConnTable {
            limits,
            table: Mutex::new(Table::default()),
        }
    }

    pub(super) fn limits(&self) -> &ConnectionLimits {
        &self.limits
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts the connection in. Over a cap, closes the longest-idle
    /// connection in the cap's scope that has no call in service to make
    /// room (knfsd's `svc_check_conn_limits` closes the oldest); if every
    /// one in scope has a call in service, says which cap refused the new
    /// one, which the caller closes at once (the stream is dropped).
    pub(super) fn admit(&self, stream: TcpStream, peer: SocketAddr) -> Result<Admitted, Cap> {
        let mut t = self.table();
        let (evicted, victim) = match t.counts.admit(peer.ip(), &self.limits) {
            Ok(()) => (None, None),
            Err(cap) => {
                let victim = t.evict(cap.scope()).ok_or(cap)?;
                // Cannot fail: per client, the victim was from the same
                // address, and it counted in the total either way.
                t.counts.admit(peer.ip(), &self.limits)?;
                let e = Eviction {
                    cap,
                    victim: victim.peer,
                };
                (Some(e), Some(victim))
            }
        };
        let id = t.next_id;
        t.next_id += 1;
        let entry = Arc::new(ConnEntry {
            stream: Arc::new(stream),
            peer,
            activity: Mutex::new(Activity {
                in_service: 0,
                last: Instant::now(),
                closed: false,
            }),
            ended: Mutex::new(false),
            ended_cv: Condvar::new(),
        });
        t.conns.insert(id, entry.clone());
        Ok(Admitted {
            id,
            entry,
            evicted,
            victim,
        })
    }

    /// The connection has ended and every call on it too. A connection
    /// closed for a newer one is no longer in the table: its counts were
    /// released then, and are not released again.
    pub(super) fn remove(&self, id: u64) {
        let mut t = self.table();
        if let Some(e) = t.conns.remove(&id) {
            t.counts.release(e.peer.ip());
        }
    }

    /// Shuts every connection down (restart, shutdown); their threads end
    /// once their calls in service have.
    pub(super) fn shutdown_all(&self) {
        for e in self.table().conns.values() {
            e.shutdown();
        }
    }

    /// Shuts down the connections idle for the timeout; returns their peers.
    pub(super) fn close_idle(&self, now: Instant) -> Vec<SocketAddr> {
        let Some(timeout) = self.limits.idle_timeout else {
            return Vec::new();
        };
        let mut closed = Vec::new();
        for e in self.table().conns.values() {
            let mut a = e.activity();
            if !a.closed && a.idle_for(now, timeout) {
                // Under the activity lock: a call read from now on is not
                // served (`call_started`), so none is cut off half-way.
                a.closed = true;
                e.shutdown();
                closed.push(e.peer);
            }
        }
        closed
    }

    /// Connections open now.
    pub(super) fn len(&self) -> usize {
        self.table().counts.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_client: usize) -> ConnectionLimits {
        ConnectionLimits {
            max_total: total,
            max_per_client: per_client,
            idle_timeout: None,
        }
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn one_address_is_capped_before_the_total() {
        let l = limits(10, 3);
        let mut c = Counts::default();
        for _ in 0..3 {
            c.admit(ip(2), &l).unwrap();
        }
        assert_eq!(
            c.admit(ip(2), &l),
            Err(Cap::PerClient {
                client: ip(2),
                limit: 3
            })
        );
        // Another address still gets in: the flood does not lock it out.
        c.admit(ip(1), &l).unwrap();
        assert_eq!(c.total, 4);
    }

    #[test]
    fn the_total_caps_many_addresses_and_release_reopens_it() {
        let l = limits(4, 3);
        let mut c = Counts::default();
        for last in 2..6 {
            c.admit(ip(last), &l).unwrap();
        }
        assert_eq!(c.admit(ip(9), &l), Err(Cap::Total { limit: 4 }));
        c.release(ip(3));
        assert!(!c.per_client.contains_key(&ip(3)), "empty entries go");
        c.admit(ip(9), &l).unwrap();
        assert_eq!(c.total, 4);
    }

    #[test]
    fn a_call_in_service_is_never_idle() {
        let t0 = Instant::now();
        let timeout = Duration::from_secs(360);
        let mut a = Activity {
            in_service: 1,
            last: t0,
            closed: false,
        };
        assert!(!a.idle_for(t0 + Duration::from_secs(3600), timeout));
        a.in_service = 0;
        assert!(!a.idle_for(t0 + Duration::from_secs(359), timeout));
        assert!(a.idle_for(t0 + timeout, timeout));
    }

    /// A table whose connections are real sockets (so that closing one can
    /// be seen) under made-up peer addresses (so that any client address
    /// can be had without binding to it).
    struct Fixture {
        listener: std::net::TcpListener,
        table: ConnTable,
        next_port: std::cell::Cell<u16>,
    }

    impl Fixture {
        fn new(l: ConnectionLimits) -> Fixture {
            Fixture {
                listener: std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
                table: ConnTable::new(l),
                next_port: std::cell::Cell::new(1000),
            }
        }

        /// A new connection from 127.0.0.`last`, idle since `idle_since`.
        fn admit(&self, last: u8, idle_since: Instant) -> Result<Admitted, Cap> {
            let stream = TcpStream::connect(self.listener.local_addr().unwrap()).unwrap();
            let port = self.next_port.get();
            self.next_port.set(port + 1);
            let a = self.table.admit(stream, SocketAddr::new(ip(last), port))?;
            a.entry.activity().last = idle_since;
            Ok(a)
        }

        fn open(&self) -> usize {
            let t = self.table.table();
            assert_eq!(t.conns.len(), t.counts.total, "table and counts disagree");
            t.counts.total
        }
    }

    fn ago(t0: Instant, secs: u64) -> Instant {
        t0 - Duration::from_secs(secs)
    }

    /// The socket of a connection closed for a newer one was shut down.
    fn shut_down(a: &Admitted) -> bool {
        let mut b = [0u8; 1];
        a.entry.stream.set_nonblocking(true).unwrap();
        matches!(std::io::Read::read(&mut &*a.entry.stream, &mut b), Ok(0))
    }

    #[test]
    fn over_the_cap_the_longest_idle_connection_makes_room() {
        let f = Fixture::new(limits(10, 3));
        let t0 = Instant::now();
        let a = f.admit(2, ago(t0, 10)).unwrap();
        let b = f.admit(2, ago(t0, 30)).unwrap();
        let c = f.admit(2, ago(t0, 20)).unwrap();
        assert!([&a, &b, &c].iter().all(|x| x.evicted.is_none()));
        let d = f.admit(2, t0).unwrap();
        assert_eq!(
            d.evicted,
            Some(Eviction {
                cap: Cap::PerClient {
                    client: ip(2),
                    limit: 3
                },
                victim: b.entry.peer,
            })
        );
        assert_eq!(f.open(), 3, "the victim's counts are released at once");
        assert!(shut_down(&b) && !shut_down(&a) && !shut_down(&c));
        // A call read on it afterwards is not served.
        assert!(!b.entry.call_started());
        // Its thread's own removal does not release it a second time.
        f.table.remove(b.id);
        assert_eq!(f.open(), 3);
        assert_eq!(f.table.table().counts.per_client[&ip(2)], 3);
        // Next in line: c (20 s), then a (10 s); d is the youngest.
        let e = f.admit(2, t0).unwrap();
        assert_eq!(e.evicted.unwrap().victim, c.entry.peer);
    }

    #[test]
    fn a_connection_with_a_call_in_service_is_never_closed() {
        let f = Fixture::new(limits(10, 3));
        let t0 = Instant::now();
        let held = f.admit(2, ago(t0, 300)).unwrap();
        assert!(held.entry.call_started());
        // `call_started` made it recent; the hold is what is tested.
        held.entry.activity().last = ago(t0, 300);
        let a = f.admit(2, ago(t0, 20)).unwrap();
        let b = f.admit(2, ago(t0, 10)).unwrap();
        let c = f.admit(2, t0).unwrap();
        assert_eq!(c.evicted.unwrap().victim, a.entry.peer);
        let d = f.admit(2, t0).unwrap();
        assert_eq!(d.evicted.unwrap().victim, b.entry.peer);
        assert!(!shut_down(&held) && !held.entry.activity().closed);
        assert_eq!(f.open(), 3);
    }

    #[test]
    fn with_every_connection_in_scope_busy_the_new_one_is_refused() {
        let f = Fixture::new(limits(10, 2));
        let t0 = Instant::now();
        let a = f.admit(2, ago(t0, 30)).unwrap();
        let b = f.admit(2, ago(t0, 20)).unwrap();
        // Idle for longer, but from another address: out of scope.
        let other = f.admit(3, ago(t0, 600)).unwrap();
        assert!(a.entry.call_started() && b.entry.call_started());
        let refused = f.admit(2, t0).unwrap_err();
        assert_eq!(
            refused,
            Cap::PerClient {
                client: ip(2),
                limit: 2
            }
        );
        assert_eq!(f.open(), 3);
        assert!(!shut_down(&a) && !shut_down(&b) && !shut_down(&other));
        // Once b's call ends, b is the one to go.
        b.entry.call_ended();
        let c = f.admit(2, t0).unwrap();
        assert_eq!(c.evicted.unwrap().victim, b.entry.peer);
        assert!(!shut_down(&other));
    }

    #[test]
    fn the_total_cap_closes_the_longest_idle_from_any_address() {
        let f = Fixture::new(limits(3, 3));
        let t0 = Instant::now();
        let old = f.admit(2, ago(t0, 30)).unwrap();
        let busy = f.admit(3, ago(t0, 60)).unwrap();
        assert!(busy.entry.call_started());
        busy.entry.activity().last = ago(t0, 60);
        let _young = f.admit(3, ago(t0, 5)).unwrap();
        let new = f.admit(4, t0).unwrap();
        assert_eq!(
            new.evicted,
            Some(Eviction {
                cap: Cap::Total { limit: 3 },
                victim: old.entry.peer,
            })
        );
        let counts = &f.table.table().counts;
        assert!(!counts.per_client.contains_key(&ip(2)));
        assert_eq!(counts.per_client[&ip(4)], 1);
        assert_eq!(counts.total, 3);
    }

    #[test]
    fn one_the_idle_timeout_closed_already_goes_first() {
        let f = Fixture::new(ConnectionLimits {
            idle_timeout: Some(Duration::from_secs(60)),
            ..limits(10, 2)
        });
        let t0 = Instant::now();
        let timed_out = f.admit(2, ago(t0, 100)).unwrap();
        assert_eq!(f.table.close_idle(t0), vec![timed_out.entry.peer]);
        // Idle for longer (made so), but open: it came after the sweep.
        let longest = f.admit(2, ago(t0, 600)).unwrap();
        let new = f.admit(2, t0).unwrap();
        assert_eq!(new.evicted.unwrap().victim, timed_out.entry.peer);
        assert!(!shut_down(&longest));
        f.table.remove(timed_out.id);
        assert_eq!(f.open(), 2);
    }
}
