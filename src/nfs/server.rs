//! The server: a listener thread accepting TCP connections and one thread per
//! connection reading RPC records and writing replies.

use std::collections::HashMap;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::NfsError;
use super::dispatch::{Dispatcher, Outcome};
use super::export::{ExportSpec, ExportTable};
use super::hook::FaultHook;
use super::nfs3::MAX_IO;
use super::rpc;

/// The largest record accepted: a maximal WRITE plus generous room for the
/// headers. Anything bigger closes the connection.
const MAX_RECORD: usize = MAX_IO as usize + 64 * 1024;
/// How often the accept loop looks at the stop flag. The listener is
/// non-blocking because a wake-up connection could not reach it from another
/// network namespace.
const ACCEPT_POLL: Duration = Duration::from_millis(20);

/// What the engine asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerConfig {
    pub exports: Vec<ExportSpec>,
}

#[derive(Debug)]
struct Shared {
    dispatcher: Dispatcher,
    stop: AtomicBool,
    next_conn: AtomicU64,
    conns: Mutex<HashMap<u64, TcpStream>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// A running in-process NFS server.
#[derive(Debug)]
pub struct NfsServer {
    shared: Arc<Shared>,
    hook: Arc<FaultHook>,
    local_addr: SocketAddr,
    acceptor: Option<JoinHandle<()>>,
}

impl NfsServer {
    /// Serves portmap v2, MOUNT v3 and NFSv3 on `listener` (created by the
    /// caller in the server's network namespace).
    pub fn start(config: ServerConfig, listener: TcpListener) -> Result<NfsServer, NfsError> {
        let exports = Arc::new(ExportTable::new(&config.exports)?);
        let local_addr = listener.local_addr().map_err(|source| NfsError::Listener {
            what: "local address",
            source,
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| NfsError::Listener {
                what: "set non-blocking",
                source,
            })?;
        let hook = Arc::new(FaultHook::new());
        let shared = Arc::new(Shared {
            dispatcher: Dispatcher::new(exports, hook.clone(), local_addr.port()),
            stop: AtomicBool::new(false),
            next_conn: AtomicU64::new(0),
            conns: Mutex::new(HashMap::new()),
            threads: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let acceptor = std::thread::Builder::new()
            .name("nfs-accept".into())
            .spawn(move || accept_loop(s, listener))
            .map_err(NfsError::Spawn)?;
        tracing::info!(%local_addr, "nfs server started");
        Ok(NfsServer {
            shared,
            hook,
            local_addr,
            acceptor: Some(acceptor),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
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

    /// The fault hook in front of dispatch, to add and heal rules.
    pub fn hook(&self) -> &FaultHook {
        &self.hook
    }

    /// Stops accepting, releases held calls, closes connections and joins
    /// every thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = acceptor.join();
        self.hook.shut_down();
        for stream in lock(&self.shared.conns).values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        let threads = std::mem::take(&mut *lock(&self.shared.threads));
        for t in threads {
            let _ = t.join();
        }
        tracing::info!(local_addr = %self.local_addr, "nfs server stopped");
    }
}

impl Drop for NfsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, peer)) => {
                if let Err(e) = start_connection(&shared, stream, peer) {
                    tracing::warn!(%peer, error = %e, "cannot serve connection");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(ACCEPT_POLL),
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                std::thread::sleep(ACCEPT_POLL);
            }
        }
    }
}

fn start_connection(
    shared: &Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    let id = shared.next_conn.fetch_add(1, Ordering::SeqCst);
    lock(&shared.conns).insert(id, stream.try_clone()?);
    let s = shared.clone();
    let handle = std::thread::Builder::new()
        .name(format!("nfs-conn-{id}"))
        .spawn(move || {
            tracing::debug!(%peer, "connection opened");
            serve_connection(&s, stream, peer);
            lock(&s.conns).remove(&id);
            tracing::debug!(%peer, "connection closed");
        })?;
    let mut threads = lock(&shared.threads);
    threads.retain(|t| !t.is_finished());
    threads.push(handle);
    Ok(())
}

fn serve_connection(shared: &Shared, mut stream: TcpStream, peer: SocketAddr) {
    loop {
        let record = match rpc::read_record(&mut stream, MAX_RECORD) {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "connection read ended");
                break;
            }
        };
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        // A bug in one procedure must not take the connection's thread down
        // silently: log it and close this connection like a crashed server.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            shared.dispatcher.handle(&record, peer)
        }))
        .unwrap_or_else(|_| {
            tracing::error!(%peer, "nfs call handler panicked");
            Outcome::Close
        });
        match outcome {
            Outcome::Reply(bytes) => {
                if let Err(e) = rpc::write_record(&mut stream, &bytes) {
                    tracing::debug!(%peer, error = %e, "reply write failed");
                    break;
                }
            }
            Outcome::NoReply => {}
            Outcome::Close => break,
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
}
