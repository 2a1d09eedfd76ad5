//! NFSv3 attribute types: fattr3, sattr3, wcc_data and the ACCESS check
//! (RFC 1813 §2.6, §3.3.2, §3.3.4).

use nix::sys::stat::{FchmodatFlags, Mode, UtimensatFlags, fchmodat, utimensat};
use nix::sys::time::TimeSpec;
use std::fs::Metadata;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use super::Nfs3Status;
use crate::nfs::export::{Export, Node, proc_fd_path};
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

/// post_op_attr of a node as it is now.
pub fn put_post_op_now(w: &mut XdrWriter, export: &Export, node: &Node) {
    let meta = node.meta_now().ok();
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
pub fn put_wcc(w: &mut XdrWriter, export: &Export, pre: Option<WccAttr>, node: &Node) {
    put_pre_op(w, pre);
    put_post_op_now(w, export, node);
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

    /// Applies owner, mode and times to the inode `node` holds (never
    /// through a name), in that order: chown clears set-id bits, and every
    /// other change bumps mtime/ctime. The size is the caller's (it needs a
    /// writable descriptor). Runs as the caller, so the kernel decides who
    /// may chown, chmod and set times.
    pub fn apply_to(&self, node: &Node) -> Result<(), Nfs3Status> {
        let errno = |e: nix::Error| Nfs3Status::from_errno(e as i32);
        if self.uid.is_some() || self.gid.is_some() {
            nix::unistd::fchownat(
                node.fd(),
                "",
                self.uid.map(nix::unistd::Uid::from_raw),
                self.gid.map(nix::unistd::Gid::from_raw),
                nix::fcntl::AtFlags::AT_EMPTY_PATH,
            )
            .map_err(errno)?;
        }
        // Linux has no mode on symlinks to set.
        if let Some(mode) = self.mode
            && !node.meta.file_type().is_symlink()
        {
            fchmodat(
                nix::fcntl::AT_FDCWD,
                &proc_fd_path(node.fd()),
                Mode::from_bits_truncate(mode & 0o7777),
                FchmodatFlags::FollowSymlink,
            )
            .map_err(errno)?;
        }
        if self.atime.is_some() || self.mtime.is_some() {
            let conv = |t: Option<SetTime>| match t {
                None => TimeSpec::UTIME_OMIT,
                Some(SetTime::ServerTime) => TimeSpec::UTIME_NOW,
                Some(SetTime::ClientTime(s, ns)) => TimeSpec::new(s as i64, ns as i64),
            };
            // Following the /proc magic link lands on the inode itself, a
            // symlink included; it is never followed further.
            utimensat(
                nix::fcntl::AT_FDCWD,
                &proc_fd_path(node.fd()),
                &conv(self.atime),
                &conv(self.mtime),
                UtimensatFlags::FollowSymlink,
            )
            .map_err(errno)?;
        }
        Ok(())
    }
}

/// RFC 1813 §3.3.4 ACCESS bits.
pub const ACCESS_READ: u32 = 0x01;
pub const ACCESS_LOOKUP: u32 = 0x02;
pub const ACCESS_MODIFY: u32 = 0x04;
pub const ACCESS_EXTEND: u32 = 0x08;
pub const ACCESS_DELETE: u32 = 0x10;
pub const ACCESS_EXECUTE: u32 = 0x20;

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
}
