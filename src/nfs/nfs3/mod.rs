//! The NFS version 3 program (RFC 1813): procedure dispatch, status codes and
//! file-handle resolution; the procedures live in the submodules.

pub mod attr;
mod dir;
pub use dir::name_cookie;
mod file;
mod fsinfo;
mod names;

use std::io;
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::call::{CallContext, CallError, Transport};
use super::export::{Export, ExportTable, Node, ResolveError};
use super::handle::{FileHandle, NFS3_FHSIZE};
use super::program::{Program, ProgramInfo};
use super::xdr::{XdrError, XdrReader, XdrWriter};
use crate::sys::fscreds::ActingAs;

pub use attr::{Sattr, SetTime};

/// RFC 1813 §2.3 program number.
pub const PROGRAM: u32 = 100003;
pub const VERSION: u32 = 3;

/// RFC 1813 §2.4 sizes.
pub const NFS3_COOKIEVERFSIZE: usize = 8;
pub const NFS3_WRITEVERFSIZE: usize = 8;
pub const NFS3_CREATEVERFSIZE: usize = 8;
/// Longest name component / path we accept (Linux NAME_MAX / PATH_MAX).
pub const NAME_MAX: u32 = 255;
pub const PATH_MAX: u32 = 4096;

/// Largest READ/WRITE payload; advertised in FSINFO as rtmax/wtmax. 1 MiB is
/// what knfsd offers and what the Linux client negotiates down from.
pub const MAX_IO: u32 = 1 << 20;

/// The largest READ/WRITE payload that fits a reply on `transport`: a UDP
/// datagram carries at most 65507 bytes, so UDP gets 32 KiB as knfsd gives
/// it; TCP gets the full `MAX_IO`.
pub fn max_io(transport: Transport) -> u32 {
    match transport {
        Transport::Tcp => MAX_IO,
        Transport::Udp => 32 * 1024,
    }
}

/// NFSv3's row in the program table; procedures as RFC 1813 §3.3 numbers them.
pub static INFO: ProgramInfo = ProgramInfo {
    number: PROGRAM,
    names: &["nfs"],
    versions: &[VERSION],
    procedures: &[
        "NULL",
        "GETATTR",
        "SETATTR",
        "LOOKUP",
        "ACCESS",
        "READLINK",
        "READ",
        "WRITE",
        "CREATE",
        "MKDIR",
        "SYMLINK",
        "MKNOD",
        "REMOVE",
        "RMDIR",
        "RENAME",
        "LINK",
        "READDIR",
        "READDIRPLUS",
        "FSSTAT",
        "FSINFO",
        "PATHCONF",
        "COMMIT",
    ],
    procedure_prefixes: &["NFSPROC3_"],
    status_reply: |_vers, proc_, _args, status, out| encode_failure(proc_, Nfs3Status(status), out),
};

/// RFC 1813 §2.5 nfsstat3
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nfs3Status(pub u32);

impl Nfs3Status {
    pub const OK: Self = Self(0);
    pub const PERM: Self = Self(1);
    pub const NOENT: Self = Self(2);
    pub const IO: Self = Self(5);
    pub const NXIO: Self = Self(6);
    pub const ACCES: Self = Self(13);
    pub const EXIST: Self = Self(17);
    pub const XDEV: Self = Self(18);
    pub const NODEV: Self = Self(19);
    pub const NOTDIR: Self = Self(20);
    pub const ISDIR: Self = Self(21);
    pub const INVAL: Self = Self(22);
    pub const FBIG: Self = Self(27);
    pub const NOSPC: Self = Self(28);
    pub const ROFS: Self = Self(30);
    pub const MLINK: Self = Self(31);
    pub const NAMETOOLONG: Self = Self(63);
    pub const NOTEMPTY: Self = Self(66);
    pub const DQUOT: Self = Self(69);
    pub const STALE: Self = Self(70);
    pub const BADHANDLE: Self = Self(10001);
    pub const NOT_SYNC: Self = Self(10002);
    pub const BAD_COOKIE: Self = Self(10003);
    pub const NOTSUPP: Self = Self(10004);
    pub const TOOSMALL: Self = Self(10005);
    pub const SERVERFAULT: Self = Self(10006);
    pub const BADTYPE: Self = Self(10007);
    pub const JUKEBOX: Self = Self(10008);

    /// Maps a host errno to the closest nfsstat3, as knfsd's nfserrno does.
    pub fn from_errno(errno: i32) -> Nfs3Status {
        match errno {
            libc::EPERM => Self::PERM,
            libc::ENOENT => Self::NOENT,
            libc::EIO => Self::IO,
            libc::ENXIO => Self::NXIO,
            libc::EACCES => Self::ACCES,
            libc::EEXIST => Self::EXIST,
            libc::EXDEV => Self::XDEV,
            libc::ENODEV => Self::NODEV,
            libc::ENOTDIR => Self::NOTDIR,
            libc::EISDIR => Self::ISDIR,
            libc::EINVAL => Self::INVAL,
            libc::EFBIG => Self::FBIG,
            libc::ENOSPC => Self::NOSPC,
            libc::EROFS => Self::ROFS,
            libc::EMLINK => Self::MLINK,
            libc::ENAMETOOLONG => Self::NAMETOOLONG,
            libc::ENOTEMPTY => Self::NOTEMPTY,
            libc::EDQUOT => Self::DQUOT,
            libc::ESTALE => Self::STALE,
            libc::EOPNOTSUPP => Self::NOTSUPP,
            // A symlink where O_NOFOLLOW met one: not a regular file.
            libc::ELOOP => Self::INVAL,
            _ => Self::IO,
        }
    }
}

impl From<io::Error> for Nfs3Status {
    fn from(e: io::Error) -> Self {
        match e.raw_os_error() {
            Some(errno) => Nfs3Status::from_errno(errno),
            None => Nfs3Status::IO,
        }
    }
}

/// How a procedure failed: with a status (answered on the wire) or because
/// its arguments did not decode (answered with GARBAGE_ARGS).
#[derive(Debug)]
pub enum Fail {
    Status(Nfs3Status),
    Garbage(XdrError),
}

impl From<Nfs3Status> for Fail {
    fn from(s: Nfs3Status) -> Self {
        Fail::Status(s)
    }
}

impl From<XdrError> for Fail {
    fn from(e: XdrError) -> Self {
        Fail::Garbage(e)
    }
}

impl From<io::Error> for Fail {
    fn from(e: io::Error) -> Self {
        Fail::Status(e.into())
    }
}

type ProcResult = Result<(), Fail>;

/// How many zero words (attributes_follow = FALSE) follow the status in each
/// procedure's resfail arm (RFC 1813 §3.3): post_op_attr counts one, wcc_data
/// two (pre_op_attr + post_op_attr).
fn failure_words(proc_: u32) -> usize {
    match proc_ {
        1 => 0,               // GETATTR
        3..=6 | 16..=20 => 1, // LOOKUP ACCESS READLINK READ READDIR(PLUS) FS*
        2 | 7..=13 | 21 => 2, // SETATTR WRITE CREATE..RMDIR COMMIT
        15 => 3,              // LINK: post_op_attr + wcc_data
        14 => 4,              // RENAME: two wcc_data
        _ => 0,
    }
}

/// Encodes a failed result for `proc_`: the status and empty attributes.
/// Shared by the procedures and by the fault hook's "reply with a status".
pub fn encode_failure(proc_: u32, status: Nfs3Status, w: &mut XdrWriter) {
    w.u32(status.0);
    for _ in 0..failure_words(proc_) {
        w.u32(0);
    }
}

/// The export id named by the file handle that starts the arguments of every
/// NFSv3 procedure but NULL; used to match fault rules by export.
pub fn peek_export_id(proc_: u32, args: &[u8]) -> Option<u32> {
    if proc_ == 0 {
        return None;
    }
    let mut r = XdrReader::new(args);
    let raw = r.opaque(NFS3_FHSIZE).ok()?;
    FileHandle::peek_export_id(raw)
}

/// The NFSv3 program.
#[derive(Debug)]
pub struct Nfs3 {
    exports: Arc<ExportTable>,
    /// RFC 1813 §3.3.7: changes when the server loses unstable writes; the
    /// start time of this server instance, like knfsd's boot verifier.
    write_verf: AtomicU64,
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

impl Nfs3 {
    pub fn new(exports: Arc<ExportTable>) -> Nfs3 {
        Nfs3 {
            exports,
            write_verf: AtomicU64::new(now_nanos()),
        }
    }

    pub fn write_verf(&self) -> [u8; NFS3_WRITEVERFSIZE] {
        self.write_verf.load(Ordering::SeqCst).to_be_bytes()
    }

    /// A new boot: clients must resend every UNSTABLE write not yet
    /// committed (RFC 1813 §3.3.7). Always differs from the previous one.
    pub fn new_write_verf(&self) -> [u8; NFS3_WRITEVERFSIZE] {
        let old = self.write_verf.load(Ordering::SeqCst);
        let new = now_nanos().max(old.wrapping_add(1));
        self.write_verf.store(new, Ordering::SeqCst);
        new.to_be_bytes()
    }

    /// Looks up the export a raw handle names and opens the inode.
    fn resolve(&self, raw: &[u8], client: IpAddr) -> Result<(&Export, Node), Fail> {
        let fh = FileHandle::decode(raw, self.exports.key()).map_err(|_| Nfs3Status::BADHANDLE)?;
        let export = self.exports.by_id(fh.export_id).ok_or(Nfs3Status::STALE)?;
        match export.resolve(&fh, client) {
            Ok(node) => Ok((export, node)),
            Err(ResolveError::Stale) => Err(Nfs3Status::STALE.into()),
            Err(ResolveError::Denied) => Err(Nfs3Status::ACCES.into()),
        }
    }
}

impl Program for Nfs3 {
    fn info(&self) -> &'static ProgramInfo {
        &INFO
    }

    fn call(
        &self,
        ctx: &CallContext<'_>,
        _vers: u32,
        proc_: u32,
        args: &mut XdrReader<'_>,
        out: &mut XdrWriter,
    ) -> Result<(), CallError> {
        let start = out.len();
        let result = match proc_ {
            0 => Ok(()),
            1 => self.getattr(ctx, args, out),
            2 => self.setattr(ctx, args, out),
            3 => self.lookup(ctx, args, out),
            4 => self.access(ctx, args, out),
            5 => self.readlink(ctx, args, out),
            6 => self.read(ctx, args, out),
            7 => self.write(ctx, args, out),
            8 => self.create(ctx, args, out),
            9 => self.mkdir(ctx, args, out),
            10 => self.symlink(ctx, args, out),
            11 => self.mknod(ctx, args, out),
            12 => self.remove(ctx, args, out),
            13 => self.rmdir(ctx, args, out),
            14 => self.rename(ctx, args, out),
            15 => self.link(ctx, args, out),
            16 => self.readdir(ctx, args, out, false),
            17 => self.readdir(ctx, args, out, true),
            18 => self.fsstat(ctx, args, out),
            19 => self.fsinfo(ctx, args, out),
            20 => self.pathconf(ctx, args, out),
            21 => self.commit(ctx, args, out),
            _ => return Err(CallError::ProcUnavail),
        };
        match result {
            Ok(()) => Ok(()),
            Err(Fail::Garbage(e)) => Err(CallError::Garbage(e)),
            Err(Fail::Status(status)) => {
                tracing::debug!(proc_, status = status.0, "nfs3 call failed");
                out.truncate(start);
                encode_failure(proc_, status, out);
                Ok(())
            }
        }
    }

    fn export_of(&self, proc_: u32, args: &[u8]) -> Option<String> {
        let id = peek_export_id(proc_, args)?;
        self.exports.by_id(id).map(|e| e.name.clone())
    }
}

/// Reads an nfs_fh3 (RFC 1813 §2.5).
fn get_fh<'a>(r: &mut XdrReader<'a>) -> Result<&'a [u8], XdrError> {
    r.opaque(NFS3_FHSIZE)
}

impl Nfs3 {
    /// Writes an nfs_fh3.
    fn put_fh(&self, w: &mut XdrWriter, fh: &FileHandle) {
        w.opaque(&fh.encode(self.handle_key()));
    }

    fn handle_key(&self) -> &crate::nfs::handle::HandleKey {
        self.exports.key()
    }

    /// Makes this thread act as the caller (squashed as the export says)
    /// until the guard drops, so the kernel checks permissions as knfsd's
    /// nfsd_setuser makes it. An unsquashed root needs no switch. Handles
    /// must be resolved before: opening them needs root.
    fn act_as(&self, ctx: &CallContext<'_>, export: &Export) -> Result<Option<ActingAs>, Fail> {
        let creds = export.creds(ctx.cred);
        if creds.uid == 0 {
            return Ok(None);
        }
        match ActingAs::enter(&creds) {
            Ok(guard) => Ok(Some(guard)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot act as the caller");
                Err(Nfs3Status::SERVERFAULT.into())
            }
        }
    }

    /// May the caller read (or write) `node`? The owner always may, as with
    /// knfsd's NFSD_MAY_OWNER_OVERRIDE: a client that opened a file and then
    /// made it 0444 still writes through its open file.
    fn may_io(
        &self,
        ctx: &CallContext<'_>,
        export: &Export,
        node: &Node,
        write: bool,
    ) -> Result<(), Fail> {
        use nix::unistd::AccessFlags;
        let creds = export.creds(ctx.cred);
        if creds.uid == 0 || creds.uid == node.meta.uid() {
            return Ok(());
        }
        let _as = self.act_as(ctx, export)?;
        let mode = if write {
            AccessFlags::W_OK
        } else {
            AccessFlags::R_OK
        };
        node.may(mode)
            .map_err(|e| Nfs3Status::from_errno(e as i32))?;
        Ok(())
    }
}

/// Checks one name component: no separators, no NUL, not empty, not too long.
/// "." and ".." are left to the callers that give them meaning.
fn check_name(name: &[u8]) -> Result<&std::ffi::OsStr, Nfs3Status> {
    use std::os::unix::ffi::OsStrExt;
    if name.is_empty() {
        return Err(Nfs3Status::NOENT);
    }
    if name.len() > NAME_MAX as usize {
        return Err(Nfs3Status::NAMETOOLONG);
    }
    if name.contains(&b'/') || name.contains(&0) {
        return Err(Nfs3Status::ACCES);
    }
    Ok(std::ffi::OsStr::from_bytes(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_bodies_have_the_rfc_shapes() {
        let cases = [
            (1, 4),
            (2, 12),
            (3, 8),
            (6, 8),
            (7, 12),
            (14, 20),
            (15, 16),
            (17, 8),
            (21, 12),
        ];
        for (proc_, len) in cases {
            let mut w = XdrWriter::new();
            encode_failure(proc_, Nfs3Status::STALE, &mut w);
            assert_eq!(w.len(), len, "proc {proc_}");
            assert_eq!(&w.as_bytes()[..4], &70u32.to_be_bytes());
        }
    }

    #[test]
    fn names_are_checked() {
        assert_eq!(check_name(b""), Err(Nfs3Status::NOENT));
        assert_eq!(check_name(b"a/b"), Err(Nfs3Status::ACCES));
        assert_eq!(check_name(&[b'a'; 256]), Err(Nfs3Status::NAMETOOLONG));
        assert!(check_name(b"ok.img").is_ok());
    }

    #[test]
    fn errno_mapping() {
        assert_eq!(
            Nfs3Status::from_errno(libc::ENOTEMPTY),
            Nfs3Status::NOTEMPTY
        );
        let e: Nfs3Status = io::Error::from_raw_os_error(libc::ENOENT).into();
        assert_eq!(e, Nfs3Status::NOENT);
    }
}
