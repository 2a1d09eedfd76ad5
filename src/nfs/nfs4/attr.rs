//! NFSv4 attributes (RFC 8881 §5): the bitmaps, fattr4 for GETATTR and
//! READDIR, and the settable subset SETATTR, OPEN and CREATE decode.
//! supported_attrs lists exactly what `Attrs::put` can encode.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;

use nix::sys::statvfs::Statvfs;

use super::status::Nfs4Status;
use crate::nfs::nfs3::attr::ftype;
use crate::nfs::nfs3::{MAX_IO, Sattr, SetTime};
use crate::nfs::xdr::{XdrError, XdrReader, XdrWriter};

/// RFC 8881 §3.3.1 bitmap4, three words: every attribute we know is below 96.
pub type Bitmap = [u32; 3];

/// Attribute numbers (RFC 8881 §5.8).
pub mod num {
    pub const SUPPORTED_ATTRS: u32 = 0;
    pub const TYPE: u32 = 1;
    pub const FH_EXPIRE_TYPE: u32 = 2;
    pub const CHANGE: u32 = 3;
    pub const SIZE: u32 = 4;
    pub const LINK_SUPPORT: u32 = 5;
    pub const SYMLINK_SUPPORT: u32 = 6;
    pub const NAMED_ATTR: u32 = 7;
    pub const FSID: u32 = 8;
    pub const UNIQUE_HANDLES: u32 = 9;
    pub const LEASE_TIME: u32 = 10;
    pub const RDATTR_ERROR: u32 = 11;
    pub const CANSETTIME: u32 = 15;
    pub const CASE_INSENSITIVE: u32 = 16;
    pub const CASE_PRESERVING: u32 = 17;
    pub const CHOWN_RESTRICTED: u32 = 18;
    pub const FILEHANDLE: u32 = 19;
    pub const FILEID: u32 = 20;
    pub const FILES_AVAIL: u32 = 21;
    pub const FILES_FREE: u32 = 22;
    pub const FILES_TOTAL: u32 = 23;
    pub const HOMOGENEOUS: u32 = 26;
    pub const MAXFILESIZE: u32 = 27;
    pub const MAXLINK: u32 = 28;
    pub const MAXNAME: u32 = 29;
    pub const MAXREAD: u32 = 30;
    pub const MAXWRITE: u32 = 31;
    pub const MODE: u32 = 33;
    pub const NO_TRUNC: u32 = 34;
    pub const NUMLINKS: u32 = 35;
    pub const OWNER: u32 = 36;
    pub const OWNER_GROUP: u32 = 37;
    pub const RAWDEV: u32 = 41;
    pub const SPACE_AVAIL: u32 = 42;
    pub const SPACE_FREE: u32 = 43;
    pub const SPACE_TOTAL: u32 = 44;
    pub const SPACE_USED: u32 = 45;
    pub const TIME_ACCESS: u32 = 47;
    pub const TIME_ACCESS_SET: u32 = 48;
    pub const TIME_DELTA: u32 = 51;
    pub const TIME_METADATA: u32 = 52;
    pub const TIME_MODIFY: u32 = 53;
    pub const TIME_MODIFY_SET: u32 = 54;
    pub const MOUNTED_ON_FILEID: u32 = 55;
    pub const SUPPATTR_EXCLCREAT: u32 = 75;
}
use num::*;

const fn bits(list: &[u32]) -> Bitmap {
    let mut b = [0u32; 3];
    let mut i = 0;
    while i < list.len() {
        b[(list[i] / 32) as usize] |= 1 << (list[i] % 32);
        i += 1;
    }
    b
}

/// What GETATTR can answer, and SETATTR can set.
pub const SUPPORTED: Bitmap = bits(&[
    SUPPORTED_ATTRS,
    TYPE,
    FH_EXPIRE_TYPE,
    CHANGE,
    SIZE,
    LINK_SUPPORT,
    SYMLINK_SUPPORT,
    NAMED_ATTR,
    FSID,
    UNIQUE_HANDLES,
    LEASE_TIME,
    RDATTR_ERROR,
    CANSETTIME,
    CASE_INSENSITIVE,
    CASE_PRESERVING,
    CHOWN_RESTRICTED,
    FILEHANDLE,
    FILEID,
    FILES_AVAIL,
    FILES_FREE,
    FILES_TOTAL,
    HOMOGENEOUS,
    MAXFILESIZE,
    MAXLINK,
    MAXNAME,
    MAXREAD,
    MAXWRITE,
    MODE,
    NO_TRUNC,
    NUMLINKS,
    OWNER,
    OWNER_GROUP,
    RAWDEV,
    SPACE_AVAIL,
    SPACE_FREE,
    SPACE_TOTAL,
    SPACE_USED,
    TIME_ACCESS,
    TIME_ACCESS_SET,
    TIME_DELTA,
    TIME_METADATA,
    TIME_MODIFY,
    TIME_MODIFY_SET,
    MOUNTED_ON_FILEID,
    SUPPATTR_EXCLCREAT,
]);

/// What SETATTR (and OPEN's and CREATE's createattrs) may set.
pub const SETTABLE: Bitmap = bits(&[
    SIZE,
    MODE,
    OWNER,
    OWNER_GROUP,
    TIME_ACCESS_SET,
    TIME_MODIFY_SET,
]);

/// RFC 8881 §5.8.1.14 suppattr_exclcreat: what an EXCLUSIVE4_1 create
/// may carry beside the verifier, which takes the times.
pub const EXCLCREAT: Bitmap = bits(&[SIZE, MODE, OWNER, OWNER_GROUP]);

const STATFS: Bitmap = bits(&[
    FILES_AVAIL,
    FILES_FREE,
    FILES_TOTAL,
    SPACE_AVAIL,
    SPACE_FREE,
    SPACE_TOTAL,
]);

pub fn has(b: &Bitmap, attr: u32) -> bool {
    b.get((attr / 32) as usize)
        .is_some_and(|w| w & (1 << (attr % 32)) != 0)
}

pub fn and(a: &Bitmap, b: &Bitmap) -> Bitmap {
    [a[0] & b[0], a[1] & b[1], a[2] & b[2]]
}

/// Reads a bitmap4; words past the third are ignored if zero, else the
/// attribute is one we do not know.
pub fn get_bitmap(r: &mut XdrReader<'_>) -> Result<Result<Bitmap, Nfs4Status>, XdrError> {
    let n = r.count(8)?;
    let mut b = [0u32; 3];
    let mut unknown = false;
    for i in 0..n as usize {
        let w = r.u32()?;
        match b.get_mut(i) {
            Some(slot) => *slot = w,
            None => unknown |= w != 0,
        }
    }
    Ok(if unknown {
        Err(Nfs4Status::ATTRNOTSUPP)
    } else {
        Ok(b)
    })
}

/// Writes a bitmap4 without trailing zero words.
pub fn put_bitmap(w: &mut XdrWriter, b: &Bitmap) {
    let len = b.iter().rposition(|&x| x != 0).map_or(0, |i| i + 1);
    w.u32(len as u32);
    for word in &b[..len] {
        w.u32(*word);
    }
}

fn put_time(w: &mut XdrWriter, secs: i64, nsecs: i64) {
    w.u64(secs as u64).u32(nsecs as u32);
}

/// RFC 8881 §5.8.1.4 change: from ctime, which every change moves, as
/// knfsd does on file systems without an i_version.
pub fn change((secs, nsecs): (i64, i64)) -> u64 {
    (secs as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(nsecs as u64)
}

/// The attributes of one object, real or of the pseudo file system.
#[derive(Debug)]
pub struct Attrs {
    pub ftype: u32,
    pub mode: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub used: u64,
    pub rdev: u64,
    pub fsid: u64,
    pub fileid: u64,
    pub atime: (i64, i64),
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
    pub fh: Vec<u8>,
    pub statfs: Option<Statvfs>,
}

impl Attrs {
    pub fn of_meta(meta: &Metadata, fsid: u64, fh: Vec<u8>) -> Attrs {
        Attrs {
            ftype: ftype(meta),
            mode: meta.mode() & 0o7777,
            nlink: meta.nlink() as u32,
            uid: meta.uid(),
            gid: meta.gid(),
            size: meta.size(),
            used: meta.blocks() * 512,
            rdev: meta.rdev(),
            fsid,
            fileid: meta.ino(),
            atime: (meta.atime(), meta.atime_nsec()),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
            fh,
            statfs: None,
        }
    }

    /// Whether answering `req` needs the file system's statistics.
    pub fn wants_statfs(req: &Bitmap) -> bool {
        and(req, &STATFS) != [0; 3]
    }

    /// Writes fattr4 with the supported attributes of `req`, in order.
    pub fn put(&self, req: &Bitmap, w: &mut XdrWriter) {
        let mut mask = and(req, &SUPPORTED);
        if self.statfs.is_none() {
            for a in [
                FILES_AVAIL,
                FILES_FREE,
                FILES_TOTAL,
                SPACE_AVAIL,
                SPACE_FREE,
                SPACE_TOTAL,
            ] {
                mask[(a / 32) as usize] &= !(1 << (a % 32));
            }
        }
        // Write-only attributes have no value to read.
        for a in [TIME_ACCESS_SET, TIME_MODIFY_SET] {
            mask[(a / 32) as usize] &= !(1 << (a % 32));
        }
        let mut v = XdrWriter::with_capacity(256);
        for a in 0..96u32 {
            if has(&mask, a) {
                self.put_one(a, &mut v);
            }
        }
        put_bitmap(w, &mask);
        w.opaque(v.as_bytes());
    }

    fn put_one(&self, a: u32, v: &mut XdrWriter) {
        let sf = self.statfs.as_ref();
        let frsize = sf.map_or(0, |s| s.fragment_size());
        match a {
            SUPPORTED_ATTRS => put_bitmap(v, &SUPPORTED),
            TYPE => {
                v.u32(self.ftype);
            }
            // FH4_PERSISTENT: handles survive restarts (unless the export
            // is told to lose them, which then answers STALE).
            FH_EXPIRE_TYPE => {
                v.u32(0);
            }
            CHANGE => {
                v.u64(change(self.ctime));
            }
            SIZE => {
                v.u64(self.size);
            }
            LINK_SUPPORT | SYMLINK_SUPPORT | UNIQUE_HANDLES | CANSETTIME | CASE_PRESERVING
            | CHOWN_RESTRICTED | HOMOGENEOUS | NO_TRUNC => {
                v.bool(true);
            }
            NAMED_ATTR | CASE_INSENSITIVE => {
                v.bool(false);
            }
            FSID => {
                v.u64(self.fsid).u64(0);
            }
            LEASE_TIME => {
                v.u32(super::state::LEASE.as_secs() as u32);
            }
            RDATTR_ERROR => {
                v.u32(0);
            }
            FILEHANDLE => {
                v.opaque(&self.fh);
            }
            FILEID | MOUNTED_ON_FILEID => {
                v.u64(self.fileid);
            }
            FILES_AVAIL => {
                v.u64(sf.map_or(0, |s| s.files_available()));
            }
            FILES_FREE => {
                v.u64(sf.map_or(0, |s| s.files_free()));
            }
            FILES_TOTAL => {
                v.u64(sf.map_or(0, |s| s.files()));
            }
            MAXFILESIZE => {
                v.u64(i64::MAX as u64);
            }
            MAXLINK => {
                v.u32(32000);
            }
            MAXNAME => {
                v.u32(crate::nfs::nfs3::NAME_MAX);
            }
            MAXREAD | MAXWRITE => {
                v.u64(MAX_IO as u64);
            }
            MODE => {
                v.u32(self.mode);
            }
            NUMLINKS => {
                v.u32(self.nlink);
            }
            // Numeric ids, as knfsd sends them to AUTH_SYS clients.
            OWNER => {
                v.string(self.uid.to_string().as_bytes());
            }
            OWNER_GROUP => {
                v.string(self.gid.to_string().as_bytes());
            }
            RAWDEV => {
                v.u32(nix::sys::stat::major(self.rdev) as u32)
                    .u32(nix::sys::stat::minor(self.rdev) as u32);
            }
            SPACE_AVAIL => {
                v.u64(sf.map_or(0, |s| s.blocks_available() * frsize));
            }
            SPACE_FREE => {
                v.u64(sf.map_or(0, |s| s.blocks_free() * frsize));
            }
            SPACE_TOTAL => {
                v.u64(sf.map_or(0, |s| s.blocks() * frsize));
            }
            SPACE_USED => {
                v.u64(self.used);
            }
            TIME_ACCESS => put_time(v, self.atime.0, self.atime.1),
            TIME_DELTA => put_time(v, 0, 1),
            TIME_METADATA => put_time(v, self.ctime.0, self.ctime.1),
            TIME_MODIFY => put_time(v, self.mtime.0, self.mtime.1),
            SUPPATTR_EXCLCREAT => put_bitmap(v, &EXCLCREAT),
            _ => unreachable!("attribute {a} is not in SUPPORTED"),
        }
    }
}

/// A decoded fattr4 of settable attributes, and the attributes it named.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SetAttrs {
    pub sattr: Sattr,
    pub mask: Bitmap,
}

fn settime(r: &mut XdrReader<'_>) -> Result<SetTime, XdrError> {
    let at = r.position();
    match r.u32()? {
        0 => Ok(SetTime::ServerTime),
        1 => {
            let secs = r.u64()?;
            let nsecs = r.u32()?;
            Ok(SetTime::ClientTime(secs as u32, nsecs))
        }
        value => Err(XdrError::BadEnum { at, value }),
    }
}

fn id_of(s: &[u8]) -> Result<u32, Nfs4Status> {
    // RFC 8881 §5.9: AUTH_SYS clients send numeric ids; a name we cannot
    // map is BADOWNER.
    std::str::from_utf8(s)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(Nfs4Status(10039))
}

/// Reads a fattr4 that sets attributes: outer errors are XDR, inner ones
/// what the operation answers (an attribute we do not support or cannot set).
pub fn get_setattrs(r: &mut XdrReader<'_>) -> Result<Result<SetAttrs, Nfs4Status>, XdrError> {
    let mask = match get_bitmap(r)? {
        Ok(m) => m,
        Err(s) => {
            r.opaque(crate::nfs::nfs3::PATH_MAX * 4)?;
            return Ok(Err(s));
        }
    };
    let vals = r.opaque(crate::nfs::nfs3::PATH_MAX * 4)?;
    if and(&mask, &SUPPORTED) != mask {
        return Ok(Err(Nfs4Status::ATTRNOTSUPP));
    }
    if and(&mask, &SETTABLE) != mask {
        return Ok(Err(Nfs4Status::INVAL));
    }
    let mut v = XdrReader::new(vals);
    let mut sattr = Sattr::default();
    for a in 0..96u32 {
        if !has(&mask, a) {
            continue;
        }
        match a {
            SIZE => sattr.size = Some(v.u64()?),
            MODE => sattr.mode = Some(v.u32()? & 0o7777),
            OWNER => match id_of(v.string(1024)?) {
                Ok(id) => sattr.uid = Some(id),
                Err(s) => return Ok(Err(s)),
            },
            OWNER_GROUP => match id_of(v.string(1024)?) {
                Ok(id) => sattr.gid = Some(id),
                Err(s) => return Ok(Err(s)),
            },
            TIME_ACCESS_SET => sattr.atime = Some(settime(&mut v)?),
            TIME_MODIFY_SET => sattr.mtime = Some(settime(&mut v)?),
            _ => unreachable!("checked against SETTABLE"),
        }
    }
    Ok(Ok(SetAttrs { sattr, mask }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmaps_round_trip_without_trailing_zeros() {
        let mut w = XdrWriter::new();
        put_bitmap(&mut w, &bits(&[TYPE, MODE]));
        assert_eq!(w.as_bytes(), &[0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2]);
        let mut r = XdrReader::new(w.as_bytes());
        assert_eq!(get_bitmap(&mut r).unwrap().unwrap(), bits(&[TYPE, MODE]));
        let mut w = XdrWriter::new();
        w.u32(4).u32(0).u32(0).u32(0).u32(1);
        let mut r = XdrReader::new(w.as_bytes());
        assert_eq!(get_bitmap(&mut r).unwrap(), Err(Nfs4Status::ATTRNOTSUPP));
    }

    #[test]
    fn setattrs_decode_and_refuse_what_cannot_be_set() {
        let mut vals = XdrWriter::new();
        vals.u64(10).u32(0o640).string(b"1000");
        vals.u32(1).u64(5).u32(6);
        let mut w = XdrWriter::new();
        put_bitmap(&mut w, &bits(&[SIZE, MODE, OWNER, TIME_MODIFY_SET]));
        w.opaque(vals.as_bytes());
        let mut r = XdrReader::new(w.as_bytes());
        let s = get_setattrs(&mut r).unwrap().unwrap();
        assert_eq!(s.sattr.size, Some(10));
        assert_eq!(s.sattr.mode, Some(0o640));
        assert_eq!(s.sattr.uid, Some(1000));
        assert_eq!(s.sattr.mtime, Some(SetTime::ClientTime(5, 6)));

        let mut w = XdrWriter::new();
        put_bitmap(&mut w, &bits(&[FILEID]));
        w.opaque(&[0; 8]);
        let mut r = XdrReader::new(w.as_bytes());
        assert_eq!(get_setattrs(&mut r).unwrap(), Err(Nfs4Status::INVAL));

        let mut vals = XdrWriter::new();
        vals.string(b"alice");
        let mut w = XdrWriter::new();
        put_bitmap(&mut w, &bits(&[OWNER]));
        w.opaque(vals.as_bytes());
        let mut r = XdrReader::new(w.as_bytes());
        assert_eq!(get_setattrs(&mut r).unwrap(), Err(Nfs4Status(10039)));
    }

    #[test]
    fn every_supported_attribute_encodes() {
        let meta = std::fs::metadata("/").unwrap();
        let a = Attrs::of_meta(&meta, 1, vec![1, 2, 3]);
        let mut w = XdrWriter::new();
        a.put(&[u32::MAX; 3], &mut w);
        let mut r = XdrReader::new(w.as_bytes());
        let mask = get_bitmap(&mut r).unwrap().unwrap();
        assert!(has(&mask, OWNER) && !has(&mask, SPACE_FREE) && !has(&mask, TIME_MODIFY_SET));
        assert!(!has(&mask, 12), "acl is not supported");
        r.opaque(4096).unwrap();
        assert_eq!(r.remaining(), 0);
    }
}
