//! The TCP accept loop: admits a connection against the caps (closing the
//! longest-idle one in the cap's scope to make room) or closes it at once,
//! and backs off when accepting fails for lack of descriptors
//! instead of retrying (and logging) in a tight loop.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::conns::{Admitted, Cap, ConnEntry, Eviction};
use super::{POLL, Shared, lock, tcp_conn};

/// Go's net/http server backs off from 5 ms, doubling up to 1 s, when
/// accept fails with a temporary error; so do we when descriptors or
/// memory run out. The pending connection stays in the backlog meanwhile:
/// retrying at once would fail again, burn a core and (issue 11) write
/// thousands of warnings.
const BACKOFF_MIN: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Connections closed to make room for new ones whose threads may still
/// run: past this many, the accept loop waits for the oldest one's threads
/// before it serves the next connection. They end as soon as they see the
/// shutdown (none has a call in service), but in a flood on a busy machine
/// they lag: without a bound, 16 connections held by the per-client cap
/// measured 148 threads. Waiting for every one instead slows the accept
/// loop so that the backlog stays full and a normal client's SYN is
/// dropped and retried a second later.
const MAX_CLOSING: usize = 16;
/// How long to wait for them: this bounds only a scheduler that is very
/// late.
const CLOSING_GRACE: Duration = Duration::from_millis(200);

/// The connections closed for new ones, oldest first, until their threads
/// have ended.
#[derive(Debug, Default)]
struct Closing(std::collections::VecDeque<Arc<ConnEntry>>);

impl Closing {
    fn push(&mut self, victim: Arc<ConnEntry>) {
        self.0.retain(|e| !e.wait_ended(Duration::ZERO));
        self.0.push_back(victim);
        while self.0.len() > MAX_CLOSING {
            let oldest = self.0.pop_front().expect("not empty");
            if !oldest.wait_ended(CLOSING_GRACE) {
                tracing::debug!(peer = %oldest.peer, "closed connection's threads still running");
            }
        }
    }
}

/// How long to wait before the next accept after a failure.
#[derive(Debug)]
struct AcceptBackoff {
    next: Duration,
}

impl AcceptBackoff {
    fn new() -> AcceptBackoff {
        AcceptBackoff { next: BACKOFF_MIN }
    }

    /// `None`: retry at once (the failure was the peer's, e.g. it reset
    /// the connection before we accepted it).
    fn after(&mut self, e: &io::Error) -> Option<Duration> {
        match e.raw_os_error() {
            Some(libc::ECONNABORTED | libc::EINTR | libc::EPROTO | libc::EPERM) => None,
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                let d = self.next;
                self.next = (self.next * 2).min(BACKOFF_MAX);
                Some(d)
            }
            _ => Some(POLL),
        }
    }

    fn reset(&mut self) {
        self.next = BACKOFF_MIN;
    }
}

pub(super) fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    let mut backoff = AcceptBackoff::new();
    let mut closing = Closing::default();
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, peer)) if shared.down.load(Ordering::SeqCst) => {
                backoff.reset();
                tracing::debug!(%peer, "connection refused: server down");
                drop(stream);
            }
            Ok((stream, peer)) => {
                backoff.reset();
                admit(&shared, &mut closing, stream, peer);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_for_connection(&listener),
            Err(e) => match backoff.after(&e) {
                None => tracing::debug!(error = %e, "accept failed; retrying"),
                Some(pause) => {
                    if let Some(s) = shared.throttles.accept_failed.admit(Instant::now()) {
                        tracing::warn!(
                            error = %e,
                            "accept failed; retrying in {}ms{s}",
                            pause.as_millis()
                        );
                    }
                    std::thread::sleep(pause);
                }
            },
        }
    }
}

/// Waits until a connection is pending, or `POLL` to look at the stop
/// flag. Waking on the connection, not after a fixed sleep: in a flood the
/// backlog (128 for std's listeners) fills within one sleep, and every
/// connection past it, a normal client's too, waits for a SYN retry a
/// second later.
fn wait_for_connection(listener: &TcpListener) {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let timeout = PollTimeout::try_from(POLL).unwrap_or(PollTimeout::MAX);
    let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
    if poll(&mut fds, timeout).is_err() {
        // EINTR or ENOMEM: the loop's accept tells which, without a spin.
        std::thread::sleep(POLL);
    }
}

/// Serves the connection, closing the longest-idle one with no call in
/// service in the cap's scope if a cap is reached; or, when every
/// connection in scope has a call in service, closes the new one at once:
/// closed rather than left in the backlog, where it would fill the queue
/// and make every later client, well-behaved or not, wait for a SYN retry.
fn admit(shared: &Arc<Shared>, closing: &mut Closing, stream: TcpStream, peer: SocketAddr) {
    let refusal = match shared.conns.admit(stream, peer) {
        Ok(Admitted {
            id,
            entry,
            evicted,
            victim,
        }) => {
            if let Some(e) = evicted {
                log_eviction(shared, peer, e);
            }
            if let Some(v) = victim {
                closing.push(v);
            }
            if let Err(e) = start_connection(shared, id, entry.clone()) {
                entry.set_ended();
                shared.conns.remove(id);
                if let Some(s) = shared.throttles.serve_failed.admit(Instant::now()) {
                    tracing::warn!(%peer, error = %e, "cannot serve connection{s}");
                }
            }
            return;
        }
        // The stream went with the refusal: it is closed already.
        Err(r) => r,
    };
    let now = Instant::now();
    match refusal {
        Cap::PerClient { client, limit } => {
            if let Some(s) = shared.throttles.refused_per_client.admit(now) {
                tracing::warn!(
                    %peer,
                    "connection refused: {limit} connections already open from {client} \
                     (max connections per client), each with a call in service{s}"
                );
            }
        }
        Cap::Total { limit } => {
            if let Some(s) = shared.throttles.refused_total.admit(now) {
                tracing::warn!(
                    %peer,
                    "connection refused: {limit} connections open (max connections), \
                     each with a call in service{s}"
                );
            }
        }
    }
}

/// A flood closes one connection per new one: rate-limited like refusals.
fn log_eviction(shared: &Shared, peer: SocketAddr, e: Eviction) {
    let now = Instant::now();
    let victim = e.victim;
    match e.cap {
        Cap::PerClient { client, limit } => {
            if let Some(s) = shared.throttles.evicted_per_client.admit(now) {
                tracing::warn!(
                    "connection cap ({limit} from {client}, max connections per client) \
                     reached: closed the longest-idle connection from {victim} for {peer}{s}"
                );
            }
        }
        Cap::Total { limit } => {
            if let Some(s) = shared.throttles.evicted_total.admit(now) {
                tracing::warn!(
                    "connection cap ({limit} in total, max connections) reached: \
                     closed the longest-idle connection from {victim} for {peer}{s}"
                );
            }
        }
    }
}

fn start_connection(shared: &Arc<Shared>, id: u64, entry: Arc<ConnEntry>) -> io::Result<()> {
    entry.stream.set_nonblocking(false)?;
    entry.stream.set_nodelay(true)?;
    let peer = entry.peer;
    let s = shared.clone();
    let handle = std::thread::Builder::new()
        .name(format!("nfs-conn-{id}"))
        .spawn(move || {
            tracing::debug!(%peer, "connection opened");
            tcp_conn::serve(&s, entry.clone());
            s.conns.remove(id);
            entry.set_ended();
            tracing::debug!(%peer, "connection closed");
        })?;
    let mut threads = lock(&shared.threads);
    threads.retain(|t| !t.is_finished());
    threads.push(handle);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(code: i32) -> io::Error {
        io::Error::from_raw_os_error(code)
    }

    #[test]
    fn out_of_descriptors_backs_off_exponentially_up_to_a_second() {
        let mut b = AcceptBackoff::new();
        let waits: Vec<Duration> = (0..10)
            .map(|_| b.after(&os(libc::EMFILE)).unwrap())
            .collect();
        assert_eq!(waits[0], Duration::from_millis(5));
        assert_eq!(waits[1], Duration::from_millis(10));
        assert!(waits.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(*waits.last().unwrap(), BACKOFF_MAX);
        // ENFILE (the system's table) continues the same backoff.
        assert_eq!(b.after(&os(libc::ENFILE)), Some(BACKOFF_MAX));
        b.reset();
        assert_eq!(b.after(&os(libc::EMFILE)), Some(BACKOFF_MIN));
    }

    #[test]
    fn a_peer_that_gave_up_is_retried_at_once() {
        let mut b = AcceptBackoff::new();
        assert_eq!(b.after(&os(libc::ECONNABORTED)), None);
        assert_eq!(b.after(&os(libc::EINTR)), None);
    }

    #[test]
    fn other_failures_wait_a_poll_interval() {
        let mut b = AcceptBackoff::new();
        assert_eq!(b.after(&os(libc::EINVAL)), Some(POLL));
    }
}
