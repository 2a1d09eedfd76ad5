//! NFSv3 attribute types: fattr3, sattr3, wcc_data and the ACCESS check
//! (RFC 1813 §2.6, §3.3.2, §3.3.4).

use std::fs::Metadata;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use nix::sys::stat::{UtimensatFlags, utimensat};
use nix::sys::time::TimeSpec;

use super::Nfs3Status;
use crate::nfs::export::Export;
use crate::nfs::xdr::{XdrError, XdrReader, XdrWriter};

/// RFC 1813 §2.6 ftype3
pub fn ftype(meta: &Metadata) -> u32 {
    let t = meta.file_type();
    if t.is_file() {
        1
    } else if t.is_dir() {
        2
    } else if t.is_block_device() {
        3
    } else if t.is_char_device() {
        4
    } else if t.is_symlink() {
        5
    } else if t.is_socket() {
        6
    } else {
        7
    }
}

/// RFC 1813 §2.6 fattr3
pub fn put_fattr(w: &mut XdrWriter, export: &Export, meta: &Metadata) {
    let rdev = meta.rdev();
    w.u32(ftype(meta))
        .u32(meta.mode() & 0o7777)
        .u32(meta.nlink() as u32)
        .u32(meta.uid())
        .u32(meta.gid())
        .u64(meta.size())
        .u64(meta.blocks() * 512)
        .u32(nix::sys::stat::major(rdev) as u32)
        .u32(nix::sys::stat::minor(rdev) as u32)
        .u64(export.fsid())
        .u64(meta.ino());
    put_time(w, meta.atime(), meta.atime_nsec());
    put_time(w, meta.mtime(), meta.mtime_nsec());
    put_time(w, meta.ctime(), meta.ctime_nsec());
}

fn put_time(w: &mut XdrWriter, secs: i64, nsecs: i64) {
    w.u32(secs as u32).u32(nsecs as u32);
}

/// RFC 1813 §2.6 post_op_attr
pub fn put_post_op(w: &mut XdrWriter, export: &Export, meta: Option<&Metadata>) {
    match meta {
        Some(m) => {
            w.bool(true);
            put_fattr(w, export, m);
        }
        None => {
            w.bool(false);
        }
    }
}

/// post_op_attr by looking the path up now.
pub fn put_post_op_path(w: &mut XdrWriter, export: &Export, path: &Path) {
    let meta = std::fs::symlink_metadata(path).ok();
    put_post_op(w, export, meta.as_ref());
}

/// RFC 1813 §2.6 wcc_attr, kept from before an operation.
#[derive(Debug, Clone, Copy)]
pub struct WccAttr {
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl WccAttr {
    pub fn of(meta: &Metadata) -> WccAttr {
        WccAttr {
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// RFC 1813 §2.6 wcc_data: pre-op attributes and post-op attributes read now.
pub fn put_wcc(w: &mut XdrWriter, export: &Export, pre: Option<WccAttr>, path: &Path) {
    put_pre_op(w, pre);
    put_post_op_path(w, export, path);
}

/// wcc_data whose post-op attributes the caller already has (an fstat of
/// the descriptor it wrote through: no second path walk per WRITE).
pub fn put_wcc_meta(
    w: &mut XdrWriter,
    export: &Export,
    pre: Option<WccAttr>,
    post: Option<&Metadata>,
) {
    put_pre_op(w, pre);
    put_post_op(w, export, post);
}

fn put_pre_op(w: &mut XdrWriter, pre: Option<WccAttr>) {
    match pre {
        Some(p) => {
            w.bool(true).u64(p.size);
            put_time(w, p.mtime.0, p.mtime.1);
            put_time(w, p.ctime.0, p.ctime.1);
        }
        None => {
            w.bool(false);
        }
    }
}

/// RFC 1813 §2.6 time_how for set_atime / set_mtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetTime {
    ServerTime,
    ClientTime(u32, u32),
}

/// RFC 1813 §2.6 sattr3
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sattr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<SetTime>,
    pub mtime: Option<SetTime>,
}

fn get_time_how(r: &mut XdrReader<'_>) -> Result<Option<SetTime>, XdrError> {
    let at = r.position();
    Ok(match r.u32()? {
        0 => None,
        1 => Some(SetTime::ServerTime),
        2 => Some(SetTime::ClientTime(r.u32()?, r.u32()?)),
        value => return Err(XdrError::BadEnum { at, value }),
    })
}

fn opt_u32(r: &mut XdrReader<'_>) -> Result<Option<u32>, XdrError> {
    Ok(if r.bool()? { Some(r.u32()?) } else { None })
}

impl Sattr {
    pub fn decode(r: &mut XdrReader<'_>) -> Result<Sattr, XdrError> {
        let mode = opt_u32(r)?;
        let uid = opt_u32(r)?;
        let gid = opt_u32(r)?;
        let size = if r.bool()? { Some(r.u64()?) } else { None };
        let atime = get_time_how(r)?;
        let mtime = get_time_how(r)?;
        Ok(Sattr {
            mode,
            uid,
            gid,
            size,
            atime,
            mtime,
        })
    }

    /// Applies the attributes to `path` without following a symlink there.
    /// Order matters: size, then owner (chown clears set-id bits), then mode,
    /// then times (every other change bumps mtime/ctime).
    pub fn apply(&self, path: &Path, meta: &Metadata) -> Result<(), Nfs3Status> {
        let is_link = meta.file_type().is_symlink();
        if let Some(size) = self.size {
            if !meta.is_file() {
                return Err(if meta.is_dir() {
                    Nfs3Status::ISDIR
                } else {
                    Nfs3Status::INVAL
                });
            }
            let f = open_nofollow(path, true)?;
            f.set_len(size)?;
        }
        if self.uid.is_some() || self.gid.is_some() {
            std::os::unix::fs::lchown(path, self.uid, self.gid)?;
        }
        if let Some(mode) = self.mode
            && !is_link
        {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7777))?;
        }
        if self.atime.is_some() || self.mtime.is_some() {
            let conv = |t: Option<SetTime>| match t {
                None => TimeSpec::UTIME_OMIT,
                Some(SetTime::ServerTime) => TimeSpec::UTIME_NOW,
                Some(SetTime::ClientTime(s, ns)) => TimeSpec::new(s as i64, ns as i64),
            };
            utimensat(
                nix::fcntl::AT_FDCWD,
                path,
                &conv(self.atime),
                &conv(self.mtime),
                UtimensatFlags::NoFollowSymlink,
            )
            .map_err(|e| Nfs3Status::from_errno(e as i32))?;
        }
        Ok(())
    }
}

/// Opens a file for I/O without following a final symlink: the server never
/// follows one, so a symlink planted in the export cannot lead outside it.
pub fn open_nofollow(path: &Path, write: bool) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// RFC 1813 §3.3.4 ACCESS bits.
pub const ACCESS_READ: u32 = 0x01;
pub const ACCESS_LOOKUP: u32 = 0x02;
pub const ACCESS_MODIFY: u32 = 0x04;
pub const ACCESS_EXTEND: u32 = 0x08;
pub const ACCESS_DELETE: u32 = 0x10;
pub const ACCESS_EXECUTE: u32 = 0x20;

/// The ACCESS answer for a caller, from the mode bits as the server sees them.
/// Root may do everything except execute a file with no x bit, as in Linux.
pub fn access_bits(meta: &Metadata, uid: u32, gid: u32, gids: &[u32], read_only: bool) -> u32 {
    let mode = meta.mode();
    let perm = if uid == 0 {
        let x = if mode & 0o111 != 0 || meta.is_dir() {
            1
        } else {
            0
        };
        0o6 | x
    } else if uid == meta.uid() {
        (mode >> 6) & 7
    } else if gid == meta.gid() || gids.contains(&meta.gid()) {
        (mode >> 3) & 7
    } else {
        mode & 7
    };
    let mut bits = 0;
    if perm & 4 != 0 {
        bits |= ACCESS_READ;
    }
    if perm & 2 != 0 && !read_only {
        bits |= ACCESS_MODIFY | ACCESS_EXTEND;
        if meta.is_dir() {
            bits |= ACCESS_DELETE;
        }
    }
    if perm & 1 != 0 {
        bits |= if meta.is_dir() {
            ACCESS_LOOKUP
        } else {
            ACCESS_EXECUTE
        };
    }
    bits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sattr_decodes_all_fields() {
        let mut w = XdrWriter::new();
        w.bool(true).u32(0o644).bool(true).u32(1000).bool(false);
        w.bool(true).u64(512 << 20);
        w.u32(1).u32(2).u32(5).u32(6);
        let b = w.into_bytes();
        let s = Sattr::decode(&mut XdrReader::new(&b)).unwrap();
        assert_eq!(s.mode, Some(0o644));
        assert_eq!(s.uid, Some(1000));
        assert_eq!(s.gid, None);
        assert_eq!(s.size, Some(512 << 20));
        assert_eq!(s.atime, Some(SetTime::ServerTime));
        assert_eq!(s.mtime, Some(SetTime::ClientTime(5, 6)));
    }

    #[test]
    fn sattr_rejects_bad_time_how() {
        let mut w = XdrWriter::new();
        w.u32(0).u32(0).u32(0).u32(0).u32(3);
        let b = w.into_bytes();
        assert!(Sattr::decode(&mut XdrReader::new(&b)).is_err());
    }

    #[test]
    fn access_for_owner_other_and_root() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        let m = std::fs::metadata(&p).unwrap();
        let owner = access_bits(&m, m.uid().max(1), m.gid(), &[], false);
        // The test runs as root, so the owner is uid 0; check the owner
        // class through a uid that owns nothing: group class applies.
        assert_eq!(owner & ACCESS_READ, ACCESS_READ);
        let other = access_bits(&m, 4242, 4242, &[], false);
        assert_eq!(other, 0);
        let group = access_bits(&m, 4242, m.gid(), &[], false);
        assert_eq!(group, ACCESS_READ);
        let root_ro = access_bits(&m, 0, 0, &[], true);
        assert_eq!(root_ro, ACCESS_READ);
        let root_rw = access_bits(&m, 0, 0, &[], false);
        assert_eq!(root_rw, ACCESS_READ | ACCESS_MODIFY | ACCESS_EXTEND);
    }
}
