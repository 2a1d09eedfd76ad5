//! Operations on directory entries: CREATE (non-regular objects),
//! REMOVE, RENAME and LINK (RFC 8881 §18.4, §18.9, §18.25, §18.26).
//! Each is one confined step below a directory, made as the caller.

use std::ffi::OsStr;
use std::sync::Arc;

use nix::fcntl::{AT_FDCWD, AtFlags, renameat};
use nix::sys::stat::{Mode, SFlag, fstatat, makedev, mkdirat, mknodat};
use nix::unistd::{UnlinkatFlags, linkat, symlinkat, unlinkat};

use super::attr;
use super::compound::{Compound, Flow, OpResult};
use super::fh_ops::{check_dir, component};
use super::file_ops::{dir_change, put_change_info};
use super::status::Nfs4Status;
use super::{Fh, Nfs4};
use crate::nfs::export::{Export, Node, proc_fd_path};
use crate::nfs::nfs3::{PATH_MAX, Sattr};
use crate::nfs::xdr::{XdrError, XdrReader, XdrWriter};

/// RFC 8881 §18.4 createtype4, decoded.
enum Kind<'a> {
    Symlink(&'a [u8]),
    Device(SFlag, u64),
    Special(SFlag),
    Dir,
}

impl Nfs4 {
    /// The writable real directory the current filehandle names.
    fn target_dir<'f>(&self, fh: &'f Fh) -> Result<(&Export, &'f Arc<Node>), Nfs4Status> {
        let (export, dir) = self.real(fh, Nfs4Status::ROFS)?;
        check_dir(dir)?;
        if export.read_only {
            return Err(Nfs4Status::ROFS);
        }
        Ok((export, dir))
    }

    /// RFC 8881 §18.4
    pub(super) fn create(
        &self,
        c: &mut Compound<'_, '_>,
        r: &mut XdrReader<'_>,
        w: &mut XdrWriter,
    ) -> OpResult {
        let at = r.position();
        let kind = match r.u32()? {
            5 => Kind::Symlink(r.string(PATH_MAX)?),
            t @ (3 | 4) => {
                let (major, minor) = (r.u32()?, r.u32()?);
                let flag = if t == 3 {
                    SFlag::S_IFBLK
                } else {
                    SFlag::S_IFCHR
                };
                Kind::Device(flag, makedev(major as u64, minor as u64))
            }
            6 => Kind::Special(SFlag::S_IFSOCK),
            7 => Kind::Special(SFlag::S_IFIFO),
            2 => Kind::Dir,
            // Regular files are made by OPEN; named-attribute types are not served.
            1 | 8 | 9 => return Err(Nfs4Status::BADTYPE.into()),
            value => return Err(XdrError::BadEnum { at, value }.into()),
        };
        let name = component(r)?;
        let sa = attr::get_setattrs(r)??;
        let cfh = c.cfh()?.clone();
        let (export, dir) = self.target_dir(&cfh)?;
        let name = name?;
        let before = dir_change(dir);
        let default_mode = if matches!(kind, Kind::Dir) {
            0o755
        } else {
            0o644
        };
        let mode = sa.sattr.mode.unwrap_or(default_mode) & 0o7777;
        let perm = Mode::from_bits_truncate(mode);
        let node = {
            let _as = Self::act_as(c.ctx, export)?;
            match kind {
                Kind::Dir => mkdirat(dir.fd(), name, perm)?,
                Kind::Symlink(target) => {
                    if target.is_empty() || target.contains(&0) {
                        return Err(Nfs4Status::INVAL.into());
                    }
                    symlinkat(
                        <OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(target),
                        dir.fd(),
                        name,
                    )?
                }
                Kind::Device(flag, dev) => mknodat(dir.fd(), name, flag, perm, dev)?,
                Kind::Special(flag) => mknodat(dir.fd(), name, flag, perm, 0)?,
            }
            export.lookup(dir, name)?
        };
        // The umask may have trimmed the mode; symlinks have none to set.
        let settle = Sattr {
            mode: (!node.meta.file_type().is_symlink()).then_some(mode),
            ..sa.sattr
        };
        self.set_attrs(c.ctx, export, &node, &settle)?;
        put_change_info(w, before, dir);
        attr::put_bitmap(w, &sa.mask);
        c.cfh = Some(Fh::Real {
            export: export.id,
            node: Arc::new(node),
        });
        Ok(Flow::Next)
    }

    /// RFC 8881 §18.25: files and empty directories alike.
    pub(super) fn remove(
        &self,
        c: &mut Compound<'_, '_>,
        r: &mut XdrReader<'_>,
        w: &mut XdrWriter,
    ) -> OpResult {
        let name = component(r)?;
        let cfh = c.cfh()?.clone();
        let (export, dir) = self.target_dir(&cfh)?;
        let name = name?;
        let before = dir_change(dir);
        let victim = {
            let _as = Self::act_as(c.ctx, export)?;
            let victim = fstatat(dir.fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
            let is_dir =
                SFlag::from_bits_truncate(victim.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR;
            let how = if is_dir {
                UnlinkatFlags::RemoveDir
            } else {
                UnlinkatFlags::NoRemoveDir
            };
            unlinkat(dir.fd(), name, how)?;
            victim
        };
        // A cached descriptor would keep the removed file's blocks.
        export.open_files.forget(victim.st_ino);
        put_change_info(w, before, dir);
        Ok(Flow::Next)
    }

    /// RFC 8881 §18.26: from the saved directory to the current one.
    pub(super) fn rename(
        &self,
        c: &mut Compound<'_, '_>,
        r: &mut XdrReader<'_>,
        w: &mut XdrWriter,
    ) -> OpResult {
        let from = component(r)?;
        let to = component(r)?;
        let saved = c.saved.clone().ok_or(Nfs4Status::NOFILEHANDLE)?;
        let cfh = c.cfh()?.clone();
        let (export, fdir) = self.target_dir(&saved)?;
        let (to_export, tdir) = self.target_dir(&cfh)?;
        if export.id != to_export.id {
            return Err(Nfs4Status::XDEV.into());
        }
        let (from, to) = (from?, to?);
        let (fbefore, tbefore) = (dir_change(fdir), dir_change(tdir));
        let replaced = {
            let _as = Self::act_as(c.ctx, export)?;
            let replaced = fstatat(tdir.fd(), to, AtFlags::AT_SYMLINK_NOFOLLOW).ok();
            renameat(fdir.fd(), from, tdir.fd(), to)?;
            replaced
        };
        if let Some(old) = replaced {
            export.open_files.forget(old.st_ino);
        }
        put_change_info(w, fbefore, fdir);
        put_change_info(w, tbefore, tdir);
        Ok(Flow::Next)
    }

    /// RFC 8881 §18.9: the saved filehandle gets a new name in the current
    /// directory, linked through its descriptor so it is exactly that inode.
    pub(super) fn link(
        &self,
        c: &mut Compound<'_, '_>,
        r: &mut XdrReader<'_>,
        w: &mut XdrWriter,
    ) -> OpResult {
        let name = component(r)?;
        let saved = c.saved.clone().ok_or(Nfs4Status::NOFILEHANDLE)?;
        let cfh = c.cfh()?.clone();
        let (export, file) = self.real(&saved, Nfs4Status::ISDIR)?;
        let (dir_export, dir) = self.target_dir(&cfh)?;
        if export.id != dir_export.id {
            return Err(Nfs4Status::XDEV.into());
        }
        if file.meta.is_dir() {
            return Err(Nfs4Status::ISDIR.into());
        }
        let name = name?;
        let before = dir_change(dir);
        {
            let _as = Self::act_as(c.ctx, export)?;
            linkat(
                AT_FDCWD,
                &proc_fd_path(file.fd()),
                dir.fd(),
                name,
                AtFlags::AT_SYMLINK_FOLLOW,
            )?;
        }
        put_change_info(w, before, dir);
        Ok(Flow::Next)
    }
}
