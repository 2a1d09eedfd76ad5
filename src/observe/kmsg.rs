//! /dev/kmsg reader (Documentation/ABI/testing/dev-kmsg): one record per
//! read(2), starting at the end, never blocking.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use super::ObserveError;

const KMSG: &str = "/dev/kmsg";
/// The kernel truncates records to fit; 8 KiB holds any of them
/// (CONSOLE_EXT_LOG_MAX).
const RECORD_BUF: usize = 8192;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsgRecord {
    pub seq: u64,
    /// Syslog level 0 (emerg) … 7 (debug); the facility is dropped.
    pub level: u8,
    /// Microseconds since boot (monotonic).
    pub usec: u64,
    /// The message, with the kernel's \xNN escapes decoded.
    pub text: String,
}

#[derive(Debug)]
pub struct Kmsg {
    file: File,
    /// Records overwritten before we read them (EPIPE), counted per event.
    gaps: u64,
    last_seq: Option<u64>,
}

impl Kmsg {
    /// Opens /dev/kmsg positioned after the newest record: only what the
    /// kernel logs from now on is seen.
    pub fn open_at_end() -> Result<Kmsg, ObserveError> {
        let mut kmsg = Self::open_at_start()?;
        kmsg.file
            .seek(SeekFrom::End(0))
            .map_err(|source| ObserveError::Seek { source })?;
        Ok(kmsg)
    }

    /// Opens /dev/kmsg at the oldest record the ring buffer still holds.
    pub fn open_at_start() -> Result<Kmsg, ObserveError> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(KMSG)
            .map_err(|source| ObserveError::Open {
                path: PathBuf::from(KMSG),
                source,
            })?;
        Ok(Kmsg {
            file,
            gaps: 0,
            last_seq: None,
        })
    }

    /// Every record logged since the last call. On EPIPE (the ring buffer
    /// overwrote records we had not read yet) the gap is counted and reading
    /// continues from the oldest surviving record.
    pub fn read_available(&mut self) -> Vec<KmsgRecord> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; RECORD_BUF];
        loop {
            match self.file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if let Some(r) = parse_record(&buf[..n]) {
                        if let Some(last) = self.last_seq
                            && r.seq > last + 1
                        {
                            tracing::warn!(missed = r.seq - last - 1, "kmsg sequence gap");
                        }
                        self.last_seq = Some(r.seq);
                        out.push(r);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {
                    self.gaps += 1;
                    tracing::warn!("kmsg overrun: records lost before they were read");
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::error!(error = %e, "kmsg read failed");
                    break;
                }
            }
        }
        out
    }

    /// How many overruns (EPIPE) have been seen.
    pub fn gaps(&self) -> u64 {
        self.gaps
    }
}

/// Parses "prio,seq,usec,flags[,…];text\n[ KEY=value\n…]".
pub fn parse_record(raw: &[u8]) -> Option<KmsgRecord> {
    let s = String::from_utf8_lossy(raw);
    let (prefix, rest) = s.split_once(';')?;
    let mut fields = prefix.split(',');
    let prio: u32 = fields.next()?.parse().ok()?;
    let seq = fields.next()?.parse().ok()?;
    let usec = fields.next()?.parse().ok()?;
    // Continuation lines (dictionary) start with a space; keep the message.
    let text = rest.split('\n').next().unwrap_or("");
    Some(KmsgRecord {
        seq,
        level: (prio & 7) as u8,
        usec,
        text: unescape(text),
    })
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1] == b'x'
            && let Ok(v) = u8::from_str_radix(&s[i + 2..i + 4], 16)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The marker line for a step: `stackquake[<run>]: step <id> <phase>`.
pub fn marker_text(run: &str, step: &str, phase: &str) -> String {
    format!("stackquake[{run}]: step {step} {phase}")
}

/// Writes `text` into the kernel log at level notice. A fresh fd per
/// marker: /dev/kmsg rate-limits writers per open file (10 lines per 5 s,
/// unless printk.devkmsg=on), and a run writes many markers.
pub fn write_marker(text: &str) -> Result<(), ObserveError> {
    let mut f = OpenOptions::new()
        .write(true)
        .open(KMSG)
        .map_err(|source| ObserveError::Open {
            path: PathBuf::from(KMSG),
            source,
        })?;
    // "<5>" = LOG_NOTICE; one write(2) = one record.
    let line = format!("<5>{}\n", text.replace('\n', " "));
    f.write_all(line.as_bytes())
        .map_err(|source| ObserveError::Write { source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_record_with_dictionary_and_escapes() {
        let raw = b"6,339,5140900,-;XFS (loop0): Mounting V5 Filesystem\\x0a done\n SUBSYSTEM=block\n DEVICE=b7:0\n";
        let r = parse_record(raw).unwrap();
        assert_eq!(r.seq, 339);
        assert_eq!(r.level, 6);
        assert_eq!(r.usec, 5140900);
        assert_eq!(r.text, "XFS (loop0): Mounting V5 Filesystem\n done");
    }

    #[test]
    fn facility_is_masked_from_level() {
        // facility LOG_USER (1) << 3 | LOG_NOTICE (5) = 13
        let r = parse_record(b"13,1,2,-;stackquake[x]: step a begin\n").unwrap();
        assert_eq!(r.level, 5);
        assert_eq!(r.text, "stackquake[x]: step a begin");
    }

    #[test]
    fn garbage_is_not_a_record() {
        assert_eq!(parse_record(b"no semicolon"), None);
        assert_eq!(parse_record(b"x,1,2,-;t"), None);
    }
}
