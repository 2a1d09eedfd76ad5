//! NFSv3 procedures on directory entries: LOOKUP, CREATE, MKDIR, SYMLINK,
//! MKNOD, REMOVE, RMDIR, RENAME and LINK (RFC 1813 §3.3.3, §3.3.8–§3.3.15).

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;

use nix::fcntl::{AT_FDCWD, AtFlags, OFlag, renameat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstatat, makedev, mkdirat, mknodat};
use nix::unistd::{UnlinkatFlags, linkat, symlinkat, unlinkat};

use super::attr::{self, Sattr, SetTime, WccAttr};
use super::{
    Fail, NFS3_CREATEVERFSIZE, Nfs3, Nfs3Status, PATH_MAX, ProcResult, check_name, get_fh,
};
use crate::nfs::call::CallContext;
use crate::nfs::export::{Export, Node, proc_fd_path};
use crate::nfs::xdr::{XdrReader, XdrWriter};

/// RFC 1813 §3.3.8 createmode3
const UNCHECKED: u32 = 0;
const GUARDED: u32 = 1;
const EXCLUSIVE: u32 = 2;

/// RFC 1813 §3.3.3 diropargs3, decoded but not yet resolved.
struct DirOp<'a> {
    fh: &'a [u8],
    name: &'a [u8],
}

fn get_dirop<'a>(r: &mut XdrReader<'a>) -> Result<DirOp<'a>, Fail> {
    let fh = get_fh(r)?;
    // Decoded with the path cap so that a long name is NAMETOOLONG, not
    // GARBAGE_ARGS.
    let name = r.string(PATH_MAX)?;
    Ok(DirOp { fh, name })
}

fn is_dot(name: &[u8]) -> bool {
    name == b"." || name == b".."
}

fn errno(e: nix::Error) -> Fail {
    Nfs3Status::from_errno(e as i32).into()
}

/// An entry's attributes without following it, relative to its directory.
fn stat_entry(dir: &Node, name: &OsStr) -> Result<FileStat, Fail> {
    fstatat(dir.fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(errno)
}

fn is_dir_stat(st: &FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR
}

impl Nfs3 {
    /// The writable directory a CREATE, MKDIR, SYMLINK or MKNOD puts its new
    /// entry in; "." and ".." always exist already.
    fn creation_dir(&self, ctx: &CallContext<'_>, op: &DirOp<'_>) -> Result<(&Export, Node), Fail> {
        let (export, dir) = self.resolve_dir(ctx, op.fh, true)?;
        if is_dot(op.name) {
            return Err(Nfs3Status::EXIST.into());
        }
        Ok((export, dir))
    }

    fn resolve_dir(
        &self,
        ctx: &CallContext<'_>,
        fh: &[u8],
        write: bool,
    ) -> Result<(&Export, Node), Fail> {
        let (export, dir) = self.resolve(fh, ctx.client.ip())?;
        if !dir.meta.is_dir() {
            return Err(Nfs3Status::NOTDIR.into());
        }
        if write && export.read_only {
            return Err(Nfs3Status::ROFS.into());
        }
        Ok((export, dir))
    }

    /// RFC 1813 §3.3.3: one confined step, as the caller (who needs search
    /// permission on the directory).
    pub(super) fn lookup(
        &self,
        ctx: &CallContext<'_>,
        args: &mut XdrReader<'_>,
        out: &mut XdrWriter,
    ) -> ProcResult {
        let op = get_dirop(args)?;
        let (export, dir) = self.resolve_dir(ctx, op.fh, false)?;
        let name = if is_dot(op.name) {
            OsStr::from_bytes(op.name)
        } else {
            check_name(op.name)?
        };
        let node = {
            let _as = self.act_as(ctx, export)?;
            export.lookup(&dir, name)?
        };
        out.u32(0);
        self.put_fh(out, &node.fh);
        attr::put_post_op(out, export, Some(&node.meta));
        attr::put_post_op(out, export, Some(&dir.meta));
        Ok(())
    }

    /// Replies post_op_fh3 + post_op_attr for a new object and the parent's
    /// wcc_data: the common tail of CREATE, MKDIR, SYMLINK and MKNOD.
    fn reply_created(
        &self,
        export: &Export,
        dir: &Node,
        pre: WccAttr,
        node: &Node,
        out: &mut XdrWriter,
    ) -> ProcResult {
        let meta = node.meta_now()?;
        out.u32(0);
        out.bool(true);
        self.put_fh(out, &node.fh);
        attr::put_post_op(out, export, Some(&meta));
        attr::put_wcc(out, export, Some(pre), dir);
        Ok(())
    }

    /// Makes a new entry as the caller (so it is the caller's, and the
    /// kernel checks the directory's permissions) and opens it, confined.
    fn make_entry(
        &self,
        ctx: &CallContext<'_>,
        export: &Export,
        dir: &Node,
        name: &OsStr,
        make: impl FnOnce() -> nix::Result<()>,
    ) -> Result<Node, Fail> {
        let _as = self.act_as(ctx, export)?;
        make().map_err(errno)?;
        Ok(export.lookup(dir, name)?)
    }

    /// RFC 1813 §3.3.8. EXCLUSIVE keeps the verifier in atime/mtime seconds,
    /// as knfsd does, so a retransmitted CREATE finds its own file.
    pub(super) fn create(
        &self,
        ctx: &CallContext<'_>,
        args: &mut XdrReader<'_>,
        out: &mut XdrWriter,
    ) -> ProcResult {
        let op = get_dirop(args)?;
        let at = args.position();
        let how = args.u32()?;
        let (sattr, verf) = match how {
            UNCHECKED | GUARDED => (Sattr::decode(args)?, None),
            EXCLUSIVE => {
                let v = args.opaque_fixed(NFS3_CREATEVERFSIZE)?;
                (
                    Sattr::default(),
                    Some([
                        u32::from_be_bytes([v[0], v[1], v[2], v[3]]),
                        u32::from_be_bytes([v[4], v[5], v[6], v[7]]),
                    ]),
                )
            }
            value => return Err(crate::nfs::xdr::XdrError::BadEnum { at, value }.into()),
        };
        let (export, dir) = self.creation_dir(ctx, &op)?;
        let name = check_name(op.name)?;
        let pre = WccAttr::of(&dir.meta);
        let mode = sattr.mode.unwrap_or(0o644) & 0o7777;
        let created = {
            let _as = self.act_as(ctx, export)?;
            export.open_in(
                &dir,
                name,
                OFlag::O_RDONLY | OFlag::O_CREAT | OFlag::O_EXCL,
                mode,
            )
        };
        let node = match created {
            Ok(fd) => {
                let node = export.node(fd)?;
                let settle = match verf {
                    Some([a, m]) => Sattr {
                        atime: Some(SetTime::ClientTime(a, 0)),
                        mtime: Some(SetTime::ClientTime(m, 0)),
                        ..Sattr::default()
                    },
                    // The umask may have trimmed the mode; set it exactly.
                    None => Sattr {
                        mode: Some(mode),
                        ..sattr
                    },
                };
                self.set_attrs(ctx, export, &node, &settle)?;
                node
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let node = {
                    let _as = self.act_as(ctx, export)?;
                    export.lookup(&dir, name)?
                };
                let meta = &node.meta;
                match (how, verf) {
                    (GUARDED, _) => return Err(Nfs3Status::EXIST.into()),
                    (EXCLUSIVE, Some([a, m])) => {
                        if !(meta.is_file() && meta.atime() as u32 == a && meta.mtime() as u32 == m)
                        {
                            return Err(Nfs3Status::EXIST.into());
                        }
                    }
                    _ => {
                        if !meta.is_file() {
                            return Err(Nfs3Status::EXIST.into());
                        }
                        // UNCHECKED on an existing file: only the size
                        // (truncation) is applied, as knfsd does.
                        let size = Sattr {
                            size: sattr.size,
                            ..Sattr::default()
                        };
                        self.set_attrs(ctx, export, &node, &size)?;
                    }
                }
                node
            }
            Err(e) => return Err(e.into()),
        };
        self.reply_created(export, &dir, pre, &node, out)
    }

    /// RFC 1813 §3.3.9
    pub(super) fn mkdir(
        &self,
        ctx: &CallContext<'_>,
        args: &mut XdrReader<'_>,
        out: &mut XdrWriter,
    ) -> ProcResult {
        let op = get_dirop(args)?;
        let sattr = Sattr::decode(args)?;
        let (export, dir) = self.creation_dir(ctx, &op)?;
        let name = check_name(op.name)?;
        let pre = WccAttr::of(&dir.meta);
        let mode = sattr.mode.unwrap_or(0o755) & 0o7777;
        let node = self.make_entry(ctx, export, &dir, name, || {
            mkdirat(dir.fd(), name, Mode::from_bits_truncate(mode))
        })?;
        let settle = Sattr {
            mode: Some(mode),
            ..sattr
        };
        self.set_attrs(ctx, export, &node, &settle)?;
        self.reply_created(export, &dir, pre, &node, out)
    }

    /// RFC 1813 §3.3.10: the target text is stored verbatim and never followed.
    pub(super) fn symlink(
        &self,
        ctx: &CallContext<'_>,
        args: &mut XdrReader<'_>,
        out: &mut XdrWriter,
    ) -> ProcResult {
        let op = get_dirop(args)?;
        let sattr = Sattr::decode(args)?;
        let target = args.string(PATH_MAX)?;
        let (export, dir) = self.creation_dir(ctx, &op)?;
        if target.is_empty() || target.contains(&0) {
            return Err(Nfs3Status::INVAL.into());
        }
        let name = check_name(op.name)?;
        let pre = WccAttr::of(&dir.meta);
        let node = self.make_entry(ctx, export, &dir, name, || {
            symlinkat(OsStr::from_bytes(target), dir.fd(), name)
        })?;
        let settle = Sattr {
            mode: None,
            ..sattr
        };
        self.set_attrs(ctx, export, &node, &settle)?;
        self.reply_created(export, &dir, pre, &node, out)
    }

    /// RFC 1813 §3.3.11: device nodes need CAP_MKNOD, which a caller other
    /// than an unsquashed root does not have, as with knfsd.
    pub(super) fn mknod(
        &self,
        ctx: &CallContext<'_>,
        args: &mut XdrReader<'_>,
        out: &mut XdrWriter,
    ) -> ProcResult {
        let op = get_dirop(args)?;
        let ftype = args.u32()?;
        let (kind, sattr, dev) = match ftype {
            3 | 4 => {
                let sattr = Sattr::decode(args)?;
                let (major, minor) = (args.u32()?, args.u32()?);
                let kind = if ftype == 3 {
                    SFlag::S_IFBLK
                } else {
                    SFlag::S_IFCHR
                };
                (kind, sattr, makedev(major as u64, minor as u64))
            }
            6 => (SFlag::S_IFSOCK, Sattr::decode(args)?, 0),
            7 => (SFlag::S_IFIFO, Sattr::decode(args)?, 0),
            _ => return Err(Nfs3Status::BADTYPE.into()),
        };
        let (export, dir) = self.creation_dir(ctx, &op)?;
        let name = check_name(op.name)?;
        let pre = WccAttr::of(&dir.meta);
        let mode = Mode::from_bits_truncate(sattr.mode.unwrap_or(0o644) & 0o7777);
        let node = self.make_entry(ctx, export, &dir, name, || {
            mknodat(dir.fd(), name, kind, mode, dev)
        })?;
        self.set_attrs(ctx, export, &node, &sattr)?;
        self.reply_created(export, &dir, pre, &node, out)
    }

    /// RFC 1813 §3.3.12
    pub(super) fn remove(
        &self,
        ctx: &CallContext<'_>,
        args: &mut XdrReader<'_>,
        out: &mut XdrWriter,
    ) -> ProcResult {
        let op = get_dirop(args)?;
        let (export, dir) = self.resolve_dir(ctx, op.fh, true)?;
        if is_dot(op.name) {
            return Err(Nfs3Status::ISDIR.into());
        }
        let name = check_name(op.name)?;
        let victim = {
            let _as = self.act_as(ctx, export)?;
            let victim = stat_entry(&dir, name)?;
            if is_dir_stat(&victim) {
                return Err(Nfs3Status::ISDIR.into());
            }
            unlinkat(dir.fd(), name, UnlinkatFlags::NoRemoveDir).map_err(errno)?;
            victim
        };
        // A cached descriptor would keep the removed file's blocks.
        export.open_files.forget(victim.st_ino);
        out.u32(0);
        attr::put_wcc(out, export, Some(WccAttr::of(&dir.meta)), &dir);
        Ok(())
    }

    /// RFC 1813 §3.3.13
    pub(super) fn rmdir(
        &self,
        ctx: &CallContext<'_>,
        args: &mut XdrReader<'_>,
        out: &mut XdrWriter,
    ) -> ProcResult {
        let op = get_dirop(args)?;
        let (export, dir) = self.resolve_dir(ctx, op.fh, true)?;
        match op.name {
            b"." => return Err(Nfs3Status::INVAL.into()),
            b".." => return Err(Nfs3Status::NOTEMPTY.into()),
            _ => {}
        }
        let name = check_name(op.name)?;
        {
            let _as = self.act_as(ctx, export)?;
            // AT_REMOVEDIR on anything but a directory is ENOTDIR.
            unlinkat(dir.fd(), name, UnlinkatFlags::RemoveDir).map_err(errno)?;
        }
        out.u32(0);
        attr::put_wcc(out, export, Some(WccAttr::of(&dir.meta)), &dir);
        Ok(())
    }

    /// RFC 1813 §3.3.14
    pub(super) fn rename(
        &self,
        ctx: &CallContext<'_>,
        args: &mut XdrReader<'_>,
        out: &mut XdrWriter,
    ) -> ProcResult {
        let from = get_dirop(args)?;
        let to = get_dirop(args)?;
        let (export, fdir) = self.resolve_dir(ctx, from.fh, true)?;
        let (to_export, tdir) = self.resolve_dir(ctx, to.fh, true)?;
        if export.id != to_export.id {
            return Err(Nfs3Status::XDEV.into());
        }
        if is_dot(from.name) || is_dot(to.name) {
            return Err(Nfs3Status::INVAL.into());
        }
        let (from_name, to_name) = (check_name(from.name)?, check_name(to.name)?);
        let replaced = {
            let _as = self.act_as(ctx, export)?;
            let replaced = stat_entry(&tdir, to_name).ok();
            renameat(fdir.fd(), from_name, tdir.fd(), to_name).map_err(errno)?;
            replaced
        };
        if let Some(old) = replaced {
            export.open_files.forget(old.st_ino);
        }
        out.u32(0);
        attr::put_wcc(out, export, Some(WccAttr::of(&fdir.meta)), &fdir);
        attr::put_wcc(out, export, Some(WccAttr::of(&tdir.meta)), &tdir);
        Ok(())
    }

    /// RFC 1813 §3.3.15: linked through the descriptor's /proc path, so the
    /// new name is for exactly the inode the handle names.
    pub(super) fn link(
        &self,
        ctx: &CallContext<'_>,
        args: &mut XdrReader<'_>,
        out: &mut XdrWriter,
    ) -> ProcResult {
        let file_fh = get_fh(args)?;
        let op = get_dirop(args)?;
        let (export, file) = self.resolve(file_fh, ctx.client.ip())?;
        let (dir_export, dir) = self.resolve_dir(ctx, op.fh, true)?;
        if export.id != dir_export.id {
            return Err(Nfs3Status::XDEV.into());
        }
        if file.meta.is_dir() {
            return Err(Nfs3Status::ISDIR.into());
        }
        if is_dot(op.name) {
            return Err(Nfs3Status::EXIST.into());
        }
        let name = check_name(op.name)?;
        {
            let _as = self.act_as(ctx, export)?;
            linkat(
                AT_FDCWD,
                &proc_fd_path(file.fd()),
                dir.fd(),
                name,
                AtFlags::AT_SYMLINK_FOLLOW,
            )
            .map_err(errno)?;
        }
        out.u32(0);
        attr::put_post_op_now(out, export, &file);
        attr::put_wcc(out, export, Some(WccAttr::of(&dir.meta)), &dir);
        Ok(())
    }
}
