//! The open TCP connections: admission against the caps (in total and per
//! client address), each connection's activity for the idle timeout, and
//! the sockets that a restart, the idle timeout and shutdown close.
//!
//! Issue 11: 10,000 idle connections took the server down (a thread each,
//! no cap, no idle timeout). knfsd bounds both: `svc_check_conn_limits`
//! caps the connections and `svc_age_temp_xprts` closes idle ones
//! (net/sunrpc/svc_xprt.c).

use std::collections::HashMap;
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
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
/// call) and it then closes the oldest connection. We refuse the new one
/// instead: closing an old one could cut off a call a scenario holds with
/// `nfs.stall`. A client host uses one connection per server (times
/// nconnect, at most 16) plus lockd's and statd's, so 64 per address is
/// far above a real client; 1024 in total is a few dozen such hosts, and
/// costs at most 1024 descriptors and mostly idle threads.
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

/// Why a new connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    Total { limit: usize },
    PerClient { client: IpAddr, limit: usize },
}

/// How many connections are open, in total and per client address.
#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
}

impl Counts {
    fn admit(&mut self, client: IpAddr, limits: &ConnectionLimits) -> Result<(), Refusal> {
        let from_client = self.per_client.get(&client).copied().unwrap_or(0);
        // Per client first: a flood from one address is named as such even
        // when it has also filled the total.
        if from_client >= limits.max_per_client {
            return Err(Refusal::PerClient {
                client,
                limit: limits.max_per_client,
            });
        }
        if self.total >= limits.max_total {
            return Err(Refusal::Total {
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
    /// Closed for being idle: a call read after this is not served.
    closed_idle: bool,
}

impl Activity {
    /// knfsd closes only a transport nobody holds a reference to
    /// (`xpt_ref` 1, not `XPT_BUSY`): a call in service is never cut off,
    /// which is what keeps `nfs.stall` a stall and not a disconnection.
    fn idle_for(&self, now: Instant, timeout: Duration) -> bool {
        self.in_service == 0 && now.saturating_duration_since(self.last) >= timeout
    }
}

/// One open connection, shared by its serving threads and the table.
#[derive(Debug)]
pub(super) struct ConnEntry {
    pub(super) stream: Arc<TcpStream>,
    pub(super) peer: SocketAddr,
    activity: Mutex<Activity>,
}

impl ConnEntry {
    fn activity(&self) -> MutexGuard<'_, Activity> {
        self.activity.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A call was read: it is in service from now on, unless the idle
    /// timeout closed the connection while it arrived (then false: the
    /// client sends it again on a new connection, as after knfsd's close).
    pub(super) fn call_started(&self) -> bool {
        let mut a = self.activity();
        if a.closed_idle {
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
}

#[derive(Debug, Default)]
struct Table {
    next_id: u64,
    counts: Counts,
    conns: HashMap<u64, Arc<ConnEntry>>,
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

    /// Counts the connection in, or says which cap it hits; the caller
    /// closes a refused one at once.
    pub(super) fn admit(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
    ) -> Result<(u64, Arc<ConnEntry>), Refusal> {
        let mut t = self.table();
        t.counts.admit(peer.ip(), &self.limits)?;
        let id = t.next_id;
        t.next_id += 1;
        let entry = Arc::new(ConnEntry {
            stream: Arc::new(stream),
            peer,
            activity: Mutex::new(Activity {
                in_service: 0,
                last: Instant::now(),
                closed_idle: false,
            }),
        });
        t.conns.insert(id, entry.clone());
        Ok((id, entry))
    }

    /// The connection has ended and every call on it too.
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
            if !a.closed_idle && a.idle_for(now, timeout) {
                // Under the activity lock: a call read from now on is not
                // served (`call_started`), so none is cut off half-way.
                a.closed_idle = true;
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
            Err(Refusal::PerClient {
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
        assert_eq!(c.admit(ip(9), &l), Err(Refusal::Total { limit: 4 }));
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
            closed_idle: false,
        };
        assert!(!a.idle_for(t0 + Duration::from_secs(3600), timeout));
        a.in_service = 0;
        assert!(!a.idle_for(t0 + Duration::from_secs(359), timeout));
        assert!(a.idle_for(t0 + timeout, timeout));
    }
}
