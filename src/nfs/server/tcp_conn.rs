//! One TCP connection served leader/follower: the worker that reads a
//! record serves it itself and the next free worker takes over reading.
//! A call then costs one wakeup (the reader's, on data) as in knfsd's
//! svc threads, instead of a reader waking a second thread for every call;
//! under TCG each wakeup of a halted vCPU is a host thread wakeup on a
//! loaded machine (bench/README.md).
//!
//! The fault-injection invariant: after a worker takes a call, some other
//! worker is free to read the next one (spawned if none is), so a call the
//! fault hook holds never holds the calls behind it. Only
//! `MAX_TCP_IN_FLIGHT` calls in service stop the reading, bounding a
//! hostile peer.

use std::io::{BufReader, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::ops::Deref;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::conns::ConnEntry;
use super::{MAX_RECORD, MAX_TCP_IN_FLIGHT, Shared, lock, serve_tcp_call};
use crate::nfs::call::Transport;
use crate::nfs::rpc;

/// Free workers beyond which one that finishes a call exits: one reading,
/// one in reserve.
const KEEP_FREE: usize = 2;

/// Receive buffers an exiting worker leaves for the next one spawned: a
/// burst of pipelined 1 MiB WRITEs spawns and ends workers, and a fresh
/// buffer costs a megabyte of page faults (and its unmapping a TLB
/// shoot-down), dear under TCG.
const SPARE_BUFFERS: usize = 2;

/// The connection's one socket, read by the reader and written by the
/// replies through the same descriptor: `try_clone` cost two more
/// descriptors per connection, and issue 11's flood ran out of them.
#[derive(Debug, Clone)]
pub(super) struct SharedStream(Arc<TcpStream>);

impl Deref for SharedStream {
    type Target = TcpStream;
    fn deref(&self) -> &TcpStream {
        &self.0
    }
}

impl Read for SharedStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl Write for SharedStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (&*self.0).write(buf)
    }

    // Forwarded so a reply's record mark and body still go out in one
    // writev (`rpc::write_record`).
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> std::io::Result<usize> {
        (&*self.0).write_vectored(bufs)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        (&*self.0).flush()
    }
}

#[derive(Default)]
struct Workers {
    /// Workers not serving a call (reading, or waiting to read).
    free: usize,
    /// Workers serving a call.
    busy: usize,
    closed: bool,
    handles: Vec<JoinHandle<()>>,
}

struct Conn {
    shared: Arc<Shared>,
    reader: Mutex<BufReader<SharedStream>>,
    writer: Mutex<SharedStream>,
    entry: Arc<ConnEntry>,
    local: SocketAddr,
    peer: SocketAddr,
    workers: Mutex<Workers>,
    spare: Mutex<Vec<Vec<u8>>>,
}

/// Serves the connection on this thread and on as many workers as calls in
/// service need; returns once the connection is closed and every call on
/// it has ended (held calls end with a heal or the server's shutdown).
pub(super) fn serve(shared: &Arc<Shared>, entry: Arc<ConnEntry>) {
    let stream = SharedStream(entry.stream.clone());
    let peer = entry.peer;
    let local = stream
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let conn = Arc::new(Conn {
        shared: shared.clone(),
        // Buffered: a record mark and a small call arrive in one read
        // instead of three (one byte, three bytes, the body).
        reader: Mutex::new(BufReader::with_capacity(64 * 1024, stream.clone())),
        writer: Mutex::new(stream),
        entry,
        local,
        peer,
        workers: Mutex::new(Workers {
            free: 1,
            ..Workers::default()
        }),
        spare: Mutex::new(Vec::new()),
    });
    work(&conn);
    loop {
        let handles = std::mem::take(&mut lock(&conn.workers).handles);
        if handles.is_empty() {
            break;
        }
        for h in handles {
            let _ = h.join();
        }
    }
    if let Some(p) = lock(&shared.capture).as_ref() {
        p.connection_closed(local, peer);
    }
}

fn spawn_worker(conn: &Arc<Conn>) -> std::io::Result<JoinHandle<()>> {
    let c = conn.clone();
    std::thread::Builder::new()
        .name("nfs-tcp-call".into())
        .spawn(move || work(&c))
}

/// Reads the next record into the worker's own buffer (holding the
/// reader); false once the connection is done, closing it is this
/// function's job.
fn next_record(conn: &Conn, record: &mut Vec<u8>) -> bool {
    let mut reader = lock(&conn.reader);
    if lock(&conn.workers).closed {
        return false;
    }
    let shared = &conn.shared;
    let ended = match rpc::read_record_into(&mut *reader, MAX_RECORD, record) {
        Ok(true) if !shared.stop.load(Ordering::SeqCst) && !shared.down.load(Ordering::SeqCst) => {
            // Under the reader lock, so the capture has calls in wire order.
            shared.capture(Transport::Tcp, conn.peer, conn.local, record);
            return true;
        }
        Ok(_) => "closed or server stopping".to_string(),
        Err(e) => e.to_string(),
    };
    tracing::debug!(peer = %conn.peer, reason = %ended, "connection read ended");
    lock(&conn.workers).closed = true;
    let _ = reader.get_ref().shutdown(Shutdown::Both);
    false
}

fn work(conn: &Arc<Conn>) {
    // Kept across calls (see `rpc::read_record_into`) and across workers.
    let mut record = lock(&conn.spare).pop().unwrap_or_default();
    while next_record(conn, &mut record) {
        if !conn.entry.call_started() {
            // Closed (idle, or for a newer connection) as the call
            // arrived: the read that follows ends the connection.
            continue;
        }
        {
            let mut w = lock(&conn.workers);
            w.free -= 1;
            w.busy += 1;
            if w.free == 0 && w.busy < MAX_TCP_IN_FLIGHT && !w.closed {
                w.handles.retain(|h| !h.is_finished());
                match spawn_worker(conn) {
                    Ok(h) => {
                        w.handles.push(h);
                        w.free += 1;
                    }
                    // The next call waits for this one: degraded, not wrong.
                    Err(e) => {
                        tracing::warn!(peer = %conn.peer, error = %e, "cannot spawn call thread")
                    }
                }
            }
        }
        serve_tcp_call(&conn.shared, &record, (conn.local, conn.peer), &conn.writer);
        conn.entry.call_ended();
        let mut w = lock(&conn.workers);
        w.busy -= 1;
        if w.free >= KEEP_FREE {
            drop(w);
            keep_spare(conn, record);
            return;
        }
        w.free += 1;
    }
    lock(&conn.workers).free -= 1;
}

fn keep_spare(conn: &Conn, record: Vec<u8>) {
    let mut spare = lock(&conn.spare);
    if spare.len() < SPARE_BUFFERS {
        spare.push(record);
    }
}
