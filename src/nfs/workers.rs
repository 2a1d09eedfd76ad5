//! A pool of reused call threads for one transport endpoint (a TCP
//! connection or a UDP socket). It replaces a thread spawned per call: under
//! TCG a clone+exit cost more than serving a GETATTR (bench/README.md).
//!
//! The invariant that matters for fault injection: every queued call has an
//! idle worker to take it, plus one more in reserve, so a call the fault hook
//! holds (stall, delay) never holds the calls behind it, and the next call
//! rarely waits for a spawn. Workers beyond the reserve exit after `LINGER`
//! idle; all exit when the pool is closed and its queue is drained.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a surplus idle worker waits for work before exiting.
const LINGER: Duration = Duration::from_secs(2);
/// Idle workers kept beyond the queued calls.
const RESERVE: usize = 1;

type Job = Box<dyn FnOnce() + Send + 'static>;

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    idle: usize,
    closed: bool,
    handles: Vec<JoinHandle<()>>,
}

#[derive(Default)]
struct Inner {
    state: Mutex<State>,
    work: Condvar,
}

/// Reused worker threads; see the module comment.
pub struct CallPool {
    inner: Arc<Inner>,
    name: String,
}

impl std::fmt::Debug for CallPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.inner.lock();
        f.debug_struct("CallPool")
            .field("name", &self.name)
            .field("queued", &st.queue.len())
            .field("idle", &st.idle)
            .field("workers", &st.handles.len())
            .finish()
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl CallPool {
    /// An empty pool; threads are named `name`.
    pub fn new(name: &str) -> CallPool {
        CallPool {
            inner: Arc::new(Inner::default()),
            name: name.to_string(),
        }
    }

    /// Queues `job`, spawning workers until every queued job has an idle
    /// worker and one is left in reserve. Fails only if no worker could be
    /// spawned at all while the job has none to run it.
    pub fn submit(&self, job: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
        let mut st = self.inner.lock();
        st.queue.push_back(Box::new(job));
        // Finished workers leave their handles behind; reap them here so a
        // long connection does not accumulate them.
        st.handles.retain(|h| !h.is_finished());
        while st.idle < st.queue.len() + RESERVE {
            match self.spawn_worker() {
                Ok(h) => {
                    st.handles.push(h);
                    st.idle += 1;
                }
                Err(e) if st.idle < st.queue.len() => {
                    st.queue.pop_back();
                    return Err(e);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "no reserve call worker");
                    break;
                }
            }
        }
        drop(st);
        self.inner.work.notify_one();
        Ok(())
    }

    /// Counted as idle by the caller before it runs, so a burst of submits
    /// does not spawn one thread per call.
    fn spawn_worker(&self) -> std::io::Result<JoinHandle<()>> {
        let inner = self.inner.clone();
        std::thread::Builder::new()
            .name(self.name.clone())
            .spawn(move || worker(&inner))
    }

    /// Lets the workers finish the queue and exit, and joins them. Jobs the
    /// fault hook holds keep their worker until healed or shut down.
    pub fn close(&self) {
        let handles = {
            let mut st = self.inner.lock();
            st.closed = true;
            std::mem::take(&mut st.handles)
        };
        self.inner.work.notify_all();
        for h in handles {
            let _ = h.join();
        }
    }

    /// Threads alive (for tests and the rate probe).
    pub fn workers(&self) -> usize {
        let mut st = self.inner.lock();
        st.handles.retain(|h| !h.is_finished());
        st.handles.len()
    }
}

impl Drop for CallPool {
    fn drop(&mut self) {
        self.close();
    }
}

fn worker(inner: &Inner) {
    let mut st = inner.lock();
    loop {
        if let Some(job) = st.queue.pop_front() {
            st.idle -= 1;
            drop(st);
            job();
            st = inner.lock();
            st.idle += 1;
            continue;
        }
        if st.closed {
            st.idle -= 1;
            return;
        }
        let (next, timeout) = inner
            .work
            .wait_timeout(st, LINGER)
            .unwrap_or_else(|e| e.into_inner());
        st = next;
        if timeout.timed_out() && st.queue.is_empty() && st.idle > RESERVE + 1 {
            st.idle -= 1;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn a_held_job_never_holds_the_next_one() {
        let pool = CallPool::new("test-call");
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let (done_tx, done_rx) = mpsc::channel::<u32>();
        let d = done_tx.clone();
        pool.submit(move || {
            release_rx.recv().unwrap();
            d.send(1).unwrap();
        })
        .unwrap();
        for i in 2..6 {
            let d = done_tx.clone();
            pool.submit(move || d.send(i).unwrap()).unwrap();
        }
        let mut got: Vec<u32> = (0..4)
            .map(|_| done_rx.recv_timeout(Duration::from_secs(5)).unwrap())
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![2, 3, 4, 5],
            "later jobs waited behind the held one"
        );
        release_tx.send(()).unwrap();
        assert_eq!(done_rx.recv_timeout(Duration::from_secs(5)).unwrap(), 1);
        pool.close();
        assert_eq!(pool.workers(), 0);
    }

    #[test]
    fn sequential_jobs_reuse_threads() {
        let pool = CallPool::new("test-call");
        let (tx, rx) = mpsc::channel();
        for _ in 0..200 {
            let tx = tx.clone();
            pool.submit(move || tx.send(std::thread::current().id()).unwrap())
                .unwrap();
            rx.recv_timeout(Duration::from_secs(5)).unwrap();
        }
        // One serving, one in reserve, a few more when a worker is slow to
        // come back on a loaded machine: far fewer than one per job.
        assert!(
            pool.workers() <= 20,
            "{} workers for 200 jobs",
            pool.workers()
        );
    }
}
