//! A small per-export cache of open files, so that a stream of READs and
//! WRITEs on one handle does not open and close the file for each call.
//!
//! Entries are keyed by the kernel's handle of the inode (what an NFS handle
//! names) and whether the file was opened for writing. An open descriptor
//! pins its inode (and the file system under the export), so entries are
//! dropped when their file is removed or renamed over, when the export is
//! unexported or its handles invalidated, after `IDLE` without use, and on
//! request (`NfsServer::close_open_files`, before unmounting an export's
//! file system).

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::sys::fhandle::KernelHandle;

/// Descriptors kept per export.
pub const CAPACITY: usize = 32;
/// Entries unused this long are closed at the next cache access.
pub const IDLE: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Entry {
    key: KernelHandle,
    /// To forget an inode by number when a name of it is removed.
    ino: u64,
    writable: bool,
    file: Arc<File>,
    used: Instant,
}

#[derive(Debug, Default)]
pub struct OpenFiles {
    entries: Mutex<VecDeque<Entry>>,
}

impl OpenFiles {
    pub fn new() -> OpenFiles {
        OpenFiles::default()
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached descriptor of the inode `key` names (number `ino`),
    /// opened with `open` on a miss. A writable entry also serves reads.
    pub fn get(
        &self,
        key: &KernelHandle,
        ino: u64,
        writable: bool,
        open: impl FnOnce() -> io::Result<File>,
    ) -> io::Result<Arc<File>> {
        let now = Instant::now();
        {
            let mut entries = self.lock();
            entries.retain(|e| now.duration_since(e.used) < IDLE);
            let hit = entries
                .iter()
                .position(|e| e.key == *key && (e.writable || !writable));
            if let Some(i) = hit
                && let Some(mut e) = entries.remove(i)
            {
                e.used = now;
                let file = e.file.clone();
                entries.push_back(e);
                return Ok(file);
            }
        }
        // Opened outside the lock: an open on a slow file system must not
        // hold every other call of the export.
        let file = Arc::new(open()?);
        let mut entries = self.lock();
        while entries.len() >= CAPACITY {
            entries.pop_front();
        }
        entries.push_back(Entry {
            key: key.clone(),
            ino,
            writable,
            file: file.clone(),
            used: now,
        });
        Ok(file)
    }

    /// Closes the cached descriptors of an inode (removed, renamed over).
    pub fn forget(&self, ino: u64) {
        self.lock().retain(|e| e.ino != ino);
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> KernelHandle {
        KernelHandle {
            handle_type: 1,
            bytes: vec![n; 8],
        }
    }

    #[test]
    fn hits_reuse_and_writable_serves_reads() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"x").unwrap();
        let c = OpenFiles::new();
        let mut opens = 0;
        let mut open = |w: bool| {
            opens += 1;
            std::fs::OpenOptions::new().read(true).write(w).open(&p)
        };
        let a = c.get(&key(1), 1, true, || open(true)).unwrap();
        let b = c.get(&key(1), 1, false, || open(false)).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        // Same inode number, another generation: another inode.
        let _ = c.get(&key(2), 1, false, || open(false)).unwrap();
        assert_eq!(c.len(), 2);
        c.forget(1);
        assert!(c.is_empty());
        assert_eq!(opens, 2);
    }

    #[test]
    fn bounded() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"x").unwrap();
        let c = OpenFiles::new();
        for ino in 0..(CAPACITY as u64 * 3) {
            c.get(&key(ino as u8), ino, false, || File::open(&p))
                .unwrap();
        }
        assert_eq!(c.len(), CAPACITY);
    }
}
