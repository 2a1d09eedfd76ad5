//! The cpio "newc" archive format the kernel unpacks as an initramfs
//! (Documentation/driver-api/early-userspace/buffer-format.rst).

use std::io::{self, Write};

/// "070701": the newc magic; the kernel also accepts "070702" (with CRC) but
/// we never need checksums.
const NEWC_MAGIC: &[u8; 6] = b"070701";
/// Header size: magic plus 13 eight-digit hex fields.
const HEADER_LEN: usize = 6 + 13 * 8;
const TRAILER: &str = "TRAILER!!!";

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

/// What one archive member is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File(Vec<u8>),
    Symlink(String),
    /// Character device (major, minor): /dev/console must exist before
    /// devtmpfs is mounted, or the kernel starts init without stdio.
    CharDev(u32, u32),
}

/// One archive member as written (and as parsed back by tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    pub mode: u32,
    pub kind: EntryKind,
}

/// An in-memory newc archive writer. Paths are relative ("bin/busybox"),
/// parents must be added before children, as the kernel creates them in
/// archive order.
pub struct NewcArchive<W: Write> {
    out: W,
    written: usize,
    next_ino: u32,
}

impl<W: Write> NewcArchive<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            written: 0,
            next_ino: 1,
        }
    }

    pub fn dir(&mut self, path: &str, perm: u32) -> io::Result<()> {
        self.member(path, S_IFDIR | perm, 0, &[])
    }

    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        self.member(path, S_IFREG | perm, 0, data)
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        self.member(path, S_IFLNK | 0o777, 0, target.as_bytes())
    }

    pub fn char_dev(&mut self, path: &str, perm: u32, major: u32, minor: u32) -> io::Result<()> {
        self.member(path, S_IFCHR | perm, (major << 8) | minor, &[])
    }

    /// Writes the trailer and returns the underlying writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.member(TRAILER, 0, 0, &[])?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn member(&mut self, path: &str, mode: u32, rdev: u32, data: &[u8]) -> io::Result<()> {
        let ino = self.next_ino;
        self.next_ino += 1;
        let namesize = path.len() + 1;
        let nlink = if mode & 0o170000 == S_IFDIR { 2 } else { 1 };
        let fields = [
            ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime: fixed, so identical inputs give identical archives
            u32::try_from(data.len()).map_err(|_| io::Error::other("cpio member over 4 GiB"))?,
            0, // devmajor
            0, // devminor
            rdev >> 8,
            rdev & 0xff,
            namesize as u32,
            0, // check
        ];
        let mut header = Vec::with_capacity(HEADER_LEN + namesize + 3);
        header.extend_from_slice(NEWC_MAGIC);
        for f in fields {
            header.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        header.extend_from_slice(path.as_bytes());
        header.push(0);
        self.put(&header)?;
        self.pad()?;
        self.put(data)?;
        self.pad()
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len();
        Ok(())
    }

    /// newc aligns both the name and the data to four bytes.
    fn pad(&mut self) -> io::Result<()> {
        let pad = (4 - self.written % 4) % 4;
        self.put(&[0u8; 3][..pad])
    }
}

/// Parses a newc archive back into entries (trailer excluded). Used by tests
/// and by `stackquake vm` diagnostics; it checks what the kernel checks.
pub fn parse(mut buf: &[u8]) -> Result<Vec<Entry>, String> {
    let total = buf.len();
    let mut entries = Vec::new();
    loop {
        let offset = total - buf.len();
        if buf.len() < HEADER_LEN {
            return Err(format!("truncated header at offset {offset}"));
        }
        if &buf[..6] != NEWC_MAGIC {
            return Err(format!("bad magic at offset {offset}"));
        }
        let field = |i: usize| -> Result<u32, String> {
            let s = std::str::from_utf8(&buf[6 + i * 8..6 + (i + 1) * 8])
                .map_err(|_| format!("non-ascii header field at offset {offset}"))?;
            u32::from_str_radix(s, 16)
                .map_err(|_| format!("bad hex field {s:?} at offset {offset}"))
        };
        let mode = field(1)?;
        let filesize = field(6)? as usize;
        let rdevmajor = field(9)?;
        let rdevminor = field(10)?;
        let namesize = field(11)? as usize;
        let name_end = HEADER_LEN + namesize;
        if buf.len() < name_end || namesize == 0 || buf[name_end - 1] != 0 {
            return Err(format!("bad name at offset {offset}"));
        }
        let path = String::from_utf8(buf[HEADER_LEN..name_end - 1].to_vec())
            .map_err(|_| format!("non-utf8 name at offset {offset}"))?;
        let data_start = align4(offset + name_end) - offset;
        let data_end = data_start + filesize;
        if buf.len() < data_end {
            return Err(format!("truncated data of {path} at offset {offset}"));
        }
        let data = buf[data_start..data_end].to_vec();
        let next = (align4(offset + data_end) - offset).min(buf.len());
        buf = &buf[next..];
        if path == TRAILER {
            return Ok(entries);
        }
        let kind = match mode & 0o170000 {
            S_IFDIR => EntryKind::Dir,
            S_IFREG => EntryKind::File(data),
            S_IFLNK => EntryKind::Symlink(
                String::from_utf8(data).map_err(|_| format!("non-utf8 link {path}"))?,
            ),
            S_IFCHR => EntryKind::CharDev(rdevmajor, rdevminor),
            other => return Err(format!("unexpected file type {other:o} for {path}")),
        };
        entries.push(Entry {
            path,
            mode: mode & 0o7777,
            kind,
        });
    }
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut a = NewcArchive::new(Vec::new());
        a.dir("bin", 0o755).unwrap();
        a.file("bin/busybox", 0o755, b"\x7fELF-ish").unwrap();
        a.symlink("bin/sh", "busybox").unwrap();
        a.dir("dev", 0o755).unwrap();
        a.char_dev("dev/console", 0o600, 5, 1).unwrap();
        a.file("init", 0o755, b"#!/bin/sh\n").unwrap();
        a.file("empty", 0o644, b"").unwrap();
        a.finish().unwrap()
    }

    #[test]
    fn round_trips_every_kind() {
        let entries = parse(&sample()).unwrap();
        let got: Vec<(&str, u32, &EntryKind)> = entries
            .iter()
            .map(|e| (e.path.as_str(), e.mode, &e.kind))
            .collect();
        assert_eq!(
            got,
            vec![
                ("bin", 0o755, &EntryKind::Dir),
                (
                    "bin/busybox",
                    0o755,
                    &EntryKind::File(b"\x7fELF-ish".to_vec())
                ),
                ("bin/sh", 0o777, &EntryKind::Symlink("busybox".into())),
                ("dev", 0o755, &EntryKind::Dir),
                ("dev/console", 0o600, &EntryKind::CharDev(5, 1)),
                ("init", 0o755, &EntryKind::File(b"#!/bin/sh\n".to_vec())),
                ("empty", 0o644, &EntryKind::File(Vec::new())),
            ]
        );
    }

    #[test]
    fn first_header_is_exact_newc() {
        let bytes = sample();
        // ino 1, dir 040755, uid 0, gid 0, nlink 2, mtime 0, size 0, dev 0:0,
        // rdev 0:0, namesize 4 ("bin\0"), check 0.
        let expected = "070701\
            00000001000041ED000000000000000000000002000000000000000000000000\
            00000000000000000000000000000004\
            00000000bin\0";
        assert_eq!(&bytes[..expected.len()], expected.as_bytes());
        // 110-byte header + 4-byte name = 114, padded to 116.
        assert_eq!(&bytes[114..116], b"\0\0");
        assert_eq!(&bytes[116..122], b"070701");
    }

    #[test]
    fn every_member_is_four_byte_aligned_and_archive_ends_with_trailer() {
        let bytes = sample();
        assert_eq!(bytes.len() % 4, 0);
        let mut starts = Vec::new();
        let mut i = 0;
        while let Some(pos) = bytes[i..].windows(6).position(|w| w == NEWC_MAGIC) {
            starts.push(i + pos);
            i += pos + 6;
        }
        assert_eq!(starts.len(), 8, "7 members + trailer");
        assert!(starts.iter().all(|s| s % 4 == 0), "{starts:?}");
        let last = *starts.last().unwrap();
        assert_eq!(
            &bytes[last + HEADER_LEN..last + HEADER_LEN + 10],
            b"TRAILER!!!"
        );
    }

    #[test]
    fn parse_rejects_garbage_and_truncation() {
        assert!(parse(b"not a cpio archive at all, clearly not one, no no no no no no no no no no no no no no no no no no no no").is_err());
        let bytes = sample();
        assert!(parse(&bytes[..bytes.len() - 20]).is_err());
    }
}
