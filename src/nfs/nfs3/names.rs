//! NFSv3 procedures on directory entries: LOOKUP, CREATE, MKDIR, SYMLINK,
//! MKNOD, REMOVE, RMDIR, RENAME and LINK (RFC 1813 §3.3.3, §3.3.8–§3.3.15).

use std::ffi::OsStr;
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::{Mode, SFlag, UtimensatFlags, makedev, mknod, utimensat};
use nix::sys::time::TimeSpec;

use super::attr::{self, Sattr, WccAttr};
use super::{
    Fail, NFS3_CREATEVERFSIZE, Nfs3, Nfs3Status, PATH_MAX, ProcResult, check_name, get_fh, put_fh,
};
use crate::nfs::dispatch::CallContext;
use crate::nfs::export::{Export, Located};
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

/// The parent of `rel` inside the export; the root is its own parent, so
/// ".." can never climb out of the export.
fn parent_rel(rel: &Path) -> PathBuf {
    rel.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Where a new entry goes: its path inside the export, its absolute path,
/// and the directory's attributes before the change (for wcc_data).
struct NewEntry {
    rel: PathBuf,
    path: PathBuf,
    pre: WccAttr,
}

fn new_entry(export: &Export, dir: &Located, name: &[u8]) -> Result<NewEntry, Fail> {
    let rel = dir.rel.join(check_name(name)?);
    Ok(NewEntry {
        path: export.abs(&rel),
        pre: WccAttr::of(&dir.meta),
        rel,
    })
}

impl Nfs3 {
    /// The writable directory a CREATE, MKDIR, SYMLINK or MKNOD puts its new
    /// entry in; "." and ".." always exist already.
    fn creation_dir(
        &self,
        ctx: &CallContext<'_>,
        op: &DirOp<'_>,
    ) -> Result<(&Export, Located), Fail> {
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
    ) -> Result<(&Export, Located), Fail> {
        let (export, loc) = self.resolve(fh, ctx.client.ip())?;
        if !loc.meta.is_dir() {
            return Err(Nfs3Status::NOTDIR.into());
        }
        if write && export.read_only {
            return Err(Nfs3Status::ROFS.into());
        }
        Ok((export, loc))
    }

    /// RFC 1813 §3.3.3
    pub(super) fn lookup(
        &self,
        ctx: &CallContext<'_>,
        args: &mut XdrReader<'_>,
        out: &mut XdrWriter,
    ) -> ProcResult {
        let op = get_dirop(args)?;
        let (export, dir) = self.resolve_dir(ctx, op.fh, false)?;
        let rel = match op.name {
            b"." => dir.rel.clone(),
            b".." => parent_rel(&dir.rel),
            name => dir.rel.join(check_name(name)?),
        };
        let meta = std::fs::symlink_metadata(export.abs(&rel))?;
        let fh = export.handle_for(&rel, &meta);
        out.u32(0);
        put_fh(out, &fh);
        attr::put_post_op(out, export, Some(&meta));
        attr::put_post_op(out, export, Some(&dir.meta));
        Ok(())
    }

    /// Replies post_op_fh3 + post_op_attr for a new object and the parent's
    /// wcc_data: the common tail of CREATE, MKDIR, SYMLINK and MKNOD.
    fn reply_created(
        &self,
        export: &Export,
        dir: &Located,
        pre: WccAttr,
        rel: &Path,
        out: &mut XdrWriter,
    ) -> ProcResult {
        let meta = std::fs::symlink_metadata(export.abs(rel))?;
        let fh = export.handle_for(rel, &meta);
        out.u32(0);
        out.bool(true);
        put_fh(out, &fh);
        attr::put_post_op(out, export, Some(&meta));
        attr::put_wcc(out, export, Some(pre), &export.abs(&dir.rel));
        Ok(())
    }

    /// Gives a new object the caller's ownership (the server runs as root),
    /// then the attributes the client asked for.
    fn settle_new(&self, ctx: &CallContext<'_>, path: &Path, sattr: &Sattr) -> Result<(), Fail> {
        let (uid, gid) = ctx.cred.owner();
        std::os::unix::fs::lchown(
            path,
            Some(sattr.uid.unwrap_or(uid)),
            Some(sattr.gid.unwrap_or(gid)),
        )?;
        let meta = std::fs::symlink_metadata(path)?;
        let rest = Sattr {
            uid: None,
            gid: None,
            ..sattr.clone()
        };
        rest.apply(path, &meta)?;
        Ok(())
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
        let NewEntry { rel, path, pre } = new_entry(export, &dir, op.name)?;
        let mode = sattr.mode.unwrap_or(0o644) & 0o7777;
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path);
        match created {
            Ok(_) => {
                if let Some([a, m]) = verf {
                    let (uid, gid) = ctx.cred.owner();
                    std::os::unix::fs::lchown(&path, Some(uid), Some(gid))?;
                    utimensat(
                        nix::fcntl::AT_FDCWD,
                        &path,
                        &TimeSpec::new(a as i64, 0),
                        &TimeSpec::new(m as i64, 0),
                        UtimensatFlags::NoFollowSymlink,
                    )
                    .map_err(|e| Nfs3Status::from_errno(e as i32))?;
                } else {
                    // The umask may have trimmed the mode; set it exactly.
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
                    self.settle_new(
                        ctx,
                        &path,
                        &Sattr {
                            mode: None,
                            ..sattr
                        },
                    )?;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let meta = std::fs::symlink_metadata(&path)?;
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
                        Sattr {
                            size: sattr.size,
                            ..Sattr::default()
                        }
                        .apply(&path, &meta)?;
                    }
                }
            }
            Err(e) => return Err(e.into()),
        }
        self.reply_created(export, &dir, pre, &rel, out)
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
        let NewEntry { rel, path, pre } = new_entry(export, &dir, op.name)?;
        std::fs::create_dir(&path)?;
        let mode = sattr.mode.unwrap_or(0o755) & 0o7777;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
        self.settle_new(
            ctx,
            &path,
            &Sattr {
                mode: None,
                ..sattr
            },
        )?;
        self.reply_created(export, &dir, pre, &rel, out)
    }

    /// RFC 1813 §3.3.10: the target text is stored verbatim and never followed.
    pub(super) fn symlink(
        &self,
        ctx: &CallContext<'_>,
        args: &mut XdrReader<'_>,
        out: &mut XdrWriter,
    ) -> ProcResult {
        use std::os::unix::ffi::OsStrExt;
        let op = get_dirop(args)?;
        let sattr = Sattr::decode(args)?;
        let target = args.string(PATH_MAX)?;
        let (export, dir) = self.creation_dir(ctx, &op)?;
        if target.is_empty() || target.contains(&0) {
            return Err(Nfs3Status::INVAL.into());
        }
        let NewEntry { rel, path, pre } = new_entry(export, &dir, op.name)?;
        std::os::unix::fs::symlink(OsStr::from_bytes(target), &path)?;
        self.settle_new(
            ctx,
            &path,
            &Sattr {
                mode: None,
                ..sattr
            },
        )?;
        self.reply_created(export, &dir, pre, &rel, out)
    }

    /// RFC 1813 §3.3.11
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
        let NewEntry { rel, path, pre } = new_entry(export, &dir, op.name)?;
        let mode = Mode::from_bits_truncate(sattr.mode.unwrap_or(0o644) & 0o7777);
        mknod(&path, kind, mode, dev).map_err(|e| Nfs3Status::from_errno(e as i32))?;
        self.settle_new(ctx, &path, &sattr)?;
        self.reply_created(export, &dir, pre, &rel, out)
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
        let path = export.abs(&dir.rel.join(check_name(op.name)?));
        let victim = std::fs::symlink_metadata(&path)?;
        if victim.is_dir() {
            return Err(Nfs3Status::ISDIR.into());
        }
        std::fs::remove_file(&path)?;
        // A cached descriptor would keep the removed file's blocks.
        export.open_files.forget(victim.ino());
        out.u32(0);
        attr::put_wcc(
            out,
            export,
            Some(WccAttr::of(&dir.meta)),
            &export.abs(&dir.rel),
        );
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
        let path = export.abs(&dir.rel.join(check_name(op.name)?));
        if !std::fs::symlink_metadata(&path)?.is_dir() {
            return Err(Nfs3Status::NOTDIR.into());
        }
        std::fs::remove_dir(&path)?;
        out.u32(0);
        attr::put_wcc(
            out,
            export,
            Some(WccAttr::of(&dir.meta)),
            &export.abs(&dir.rel),
        );
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
        let from_rel = fdir.rel.join(check_name(from.name)?);
        let to_rel = tdir.rel.join(check_name(to.name)?);
        let replaced = std::fs::symlink_metadata(export.abs(&to_rel)).ok();
        std::fs::rename(export.abs(&from_rel), export.abs(&to_rel))?;
        if let Some(old) = replaced {
            export.open_files.forget(old.ino());
        }
        if let Ok(meta) = std::fs::symlink_metadata(export.abs(&to_rel)) {
            export.remember(&to_rel, &meta);
        }
        out.u32(0);
        attr::put_wcc(
            out,
            export,
            Some(WccAttr::of(&fdir.meta)),
            &export.abs(&fdir.rel),
        );
        attr::put_wcc(
            out,
            export,
            Some(WccAttr::of(&tdir.meta)),
            &export.abs(&tdir.rel),
        );
        Ok(())
    }

    /// RFC 1813 §3.3.15
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
        let rel = dir.rel.join(check_name(op.name)?);
        // linkat without AT_SYMLINK_FOLLOW: links the symlink itself.
        std::fs::hard_link(export.abs(&file.rel), export.abs(&rel))?;
        out.u32(0);
        attr::put_post_op_path(out, export, &export.abs(&file.rel));
        attr::put_wcc(
            out,
            export,
            Some(WccAttr::of(&dir.meta)),
            &export.abs(&dir.rel),
        );
        Ok(())
    }
}
