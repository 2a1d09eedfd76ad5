//! NFSv3 procedures on one object: GETATTR, SETATTR, ACCESS, READLINK, READ,
//! WRITE and COMMIT (RFC 1813 §3.3.1–§3.3.7, §3.3.21).

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};

use nix::unistd::AccessFlags;

use super::attr::{self, Sattr, SetTime, WccAttr};
use super::{Fail, MAX_IO, Nfs3, Nfs3Status, ProcResult, get_fh, max_io};
use crate::nfs::call::CallContext;
use crate::nfs::export::{Export, Node};
use crate::nfs::xdr::{XdrReader, XdrWriter};

/// RFC 1813 §3.3.7 stable_how
const UNSTABLE: u32 = 0;
const DATA_SYNC: u32 = 1;
const FILE_SYNC: u32 = 2;

fn regular_only(meta: &std::fs::Metadata) -> Result<(), Fail> {
    if meta.is_dir() {
        Err(Nfs3Status::ISDIR.into())
    } else if !meta.is_file() {
        Err(Nfs3Status::INVAL.into())
    } else {
        Ok(())
    }
}

impl Nfs3 {
    /// Applies a sattr3 to `node` as the caller: the size through a
    /// writable descriptor (after the same permission check as WRITE), then
    /// owner, mode and times, which the kernel checks itself.
    pub(super) fn set_attrs(
        &self,
        ctx: &CallContext<'_>,
        export: &Export,
        node: &Node,
        sattr: &Sattr,
    ) -> Result<(), Fail> {
        let mut rest = std::borrow::Cow::Borrowed(sattr);
        if let Some(size) = sattr.size {
            regular_only(&node.meta)?;
            self.may_io(ctx, export, node, true)?;
            export.open_io(node, true)?.set_len(size)?;
            // ftruncate(2) has just set mtime and ctime to now. The Linux
            // client's truncate (open with O_TRUNC included) asks for
            // exactly that: size plus mtime SET_TO_SERVER_TIME, atime
            // untouched. Doing it again with utimensat(OMIT, NOW) would
            // need the caller to own the file (the kernel takes a
            // one-sided UTIME_NOW as ATTR_TIMES_SET), where knfsd's
            // ATTR_MTIME needs only the write access checked above.
            if sattr.mtime == Some(SetTime::ServerTime) && sattr.atime.is_none() {
                rest.to_mut().mtime = None;
            }
        }
        let _as = self.act_as(ctx, export)?;
        rest.apply_to(node)?;
        Ok(())
    }

    /// RFC 1813 §3.3.1
    pub(super) fn getattr(
        &self,
        ctx: &CallContext<'_>,
        args: &mut XdrReader<'_>,
        out: &mut XdrWriter,
    ) -> ProcResult {
        let raw = get_fh(args)?;
        let (export, node) = self.resolve(raw, ctx.client.ip())?;
        out.u32(0);
        attr::put_fattr(out, export, &node.meta);
        Ok(())
    }

    /// RFC 1813 §3.3.2
    pub(super) fn setattr(
        &self,
        ctx: &CallContext<'_>,
        args: &mut XdrReader<'_>,
        out: &mut XdrWriter,
    ) -> ProcResult {
        let raw = get_fh(args)?;
        let sattr = Sattr::decode(args)?;
        let guard = if args.bool()? {
            Some((args.u32()?, args.u32()?))
        } else {
            None
        };
        let (export, node) = self.resolve(raw, ctx.client.ip())?;
        if export.read_only {
            return Err(Nfs3Status::ROFS.into());
        }
        if let Some((s, ns)) = guard
            && (node.meta.ctime() as u32, node.meta.ctime_nsec() as u32) != (s, ns)
        {
            return Err(Nfs3Status::NOT_SYNC.into());
        }
        self.set_attrs(ctx, export, &node, &sattr)?;
        out.u32(0);
        attr::put_wcc(out, export, Some(WccAttr::of(&node.meta)), &node);
        Ok(())
    }

    /// RFC 1813 §3.3.4: each bit is asked of the kernel as the caller, as
    /// knfsd's nfsd_access does, so modes, ACLs and squashing all count.
    pub(super) fn access(
        &self,
        ctx: &CallContext<'_>,
        args: &mut XdrReader<'_>,
        out: &mut XdrWriter,
    ) -> ProcResult {
        let raw = get_fh(args)?;
        let wanted = args.u32()?;
        let (export, node) = self.resolve(raw, ctx.client.ip())?;
        let granted = {
            let _as = self.act_as(ctx, export)?;
            let may = |mode| node.may(mode).is_ok();
            let writable = !export.read_only && may(AccessFlags::W_OK);
            let mut bits = 0;
            if may(AccessFlags::R_OK) {
                bits |= attr::ACCESS_READ;
            }
            if node.meta.is_dir() {
                let search = may(AccessFlags::X_OK);
                if search {
                    bits |= attr::ACCESS_LOOKUP;
                }
                if search && writable {
                    bits |= attr::ACCESS_MODIFY | attr::ACCESS_EXTEND | attr::ACCESS_DELETE;
                }
            } else {
                if may(AccessFlags::X_OK) {
                    bits |= attr::ACCESS_EXECUTE;
                }
                if writable {
                    bits |= attr::ACCESS_MODIFY | attr::ACCESS_EXTEND;
                }
            }
            bits & wanted
        };
        out.u32(0);
        attr::put_post_op(out, export, Some(&node.meta));
        out.u32(granted);
        Ok(())
    }

    /// RFC 1813 §3.3.5: the link text is returned as stored; the server never
    /// follows it.
    pub(super) fn readlink(
        &self,
        ctx: &CallContext<'_>,
        args: &mut XdrReader<'_>,
        out: &mut XdrWriter,
    ) -> ProcResult {
        let raw = get_fh(args)?;
        let (export, node) = self.resolve(raw, ctx.client.ip())?;
        if !node.meta.file_type().is_symlink() {
            return Err(Nfs3Status::INVAL.into());
        }
        // readlinkat(fd, "") reads the symlink an O_PATH descriptor holds.
        let target =
            nix::fcntl::readlinkat(node.fd(), "").map_err(|e| Nfs3Status::from_errno(e as i32))?;
        out.u32(0);
        attr::put_post_op(out, export, Some(&node.meta));
        out.string(target.as_bytes());
        Ok(())
    }

    /// RFC 1813 §3.3.6
    pub(super) fn read(
        &self,
        ctx: &CallContext<'_>,
        args: &mut XdrReader<'_>,
        out: &mut XdrWriter,
    ) -> ProcResult {
        let raw = get_fh(args)?;
        let offset = args.u64()?;
        let count = args.u32()?.min(max_io(ctx.transport));
        let (export, node) = self.resolve(raw, ctx.client.ip())?;
        regular_only(&node.meta)?;
        self.may_io(ctx, export, &node, false)?;
        let file = export.open_io(&node, false)?;
        // Sized by what the file holds, not by what was asked: many large
        // READs past EOF must not cost a buffer each. A file that grows
        // meanwhile gives a short read with eof false, which RFC 1813 allows.
        let avail = node.meta.size().saturating_sub(offset);
        let mut data = vec![0u8; (count as u64).min(avail) as usize];
        let mut got = 0usize;
        while got < data.len() {
            match file.read_at(&mut data[got..], offset.saturating_add(got as u64)) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        }
        data.truncate(got);
        let meta = file.metadata()?;
        let eof = offset.saturating_add(got as u64) >= meta.size();
        out.u32(0);
        attr::put_post_op(out, export, Some(&meta));
        out.u32(got as u32).bool(eof).opaque(&data);
        Ok(())
    }

    /// RFC 1813 §3.3.7: UNSTABLE writes go to the page cache and are made
    /// durable by COMMIT; DATA_SYNC is synced (data and what reading it back
    /// needs: fdatasync) and FILE_SYNC with all the file's metadata (fsync)
    /// before the reply, as knfsd's RWF_DSYNC / RWF_SYNC. The data is written
    /// from the call's receive buffer as it is (`XdrReader::opaque` borrows),
    /// the only copy between the socket and the page cache.
    pub(super) fn write(
        &self,
        ctx: &CallContext<'_>,
        args: &mut XdrReader<'_>,
        out: &mut XdrWriter,
    ) -> ProcResult {
        let raw = get_fh(args)?;
        let offset = args.u64()?;
        let count = args.u32()?;
        let stable = args.u32()?;
        let data = args.opaque(MAX_IO)?;
        if stable > FILE_SYNC {
            return Err(Nfs3Status::INVAL.into());
        }
        let data = &data[..data.len().min(count as usize)];
        let (export, node) = self.resolve(raw, ctx.client.ip())?;
        if export.read_only {
            return Err(Nfs3Status::ROFS.into());
        }
        regular_only(&node.meta)?;
        self.may_io(ctx, export, &node, true)?;
        let file = export.open_io(&node, true)?;
        offset
            .checked_add(data.len() as u64)
            .ok_or(Nfs3Status::FBIG)?;
        file.write_all_at(data, offset)?;
        match stable {
            UNSTABLE => {}
            DATA_SYNC => file.sync_data()?,
            FILE_SYNC => file.sync_all()?,
            _ => unreachable!("checked above"),
        }
        out.u32(0);
        let post = file.metadata().ok();
        attr::put_wcc_meta(out, export, Some(WccAttr::of(&node.meta)), post.as_ref());
        out.u32(data.len() as u32)
            .u32(stable)
            .opaque_fixed(&self.write_verf());
        Ok(())
    }

    /// RFC 1813 §3.3.21: fsync the whole file whatever range was asked.
    pub(super) fn commit(
        &self,
        ctx: &CallContext<'_>,
        args: &mut XdrReader<'_>,
        out: &mut XdrWriter,
    ) -> ProcResult {
        let raw = get_fh(args)?;
        let _offset = args.u64()?;
        let _count = args.u32()?;
        let (export, node) = self.resolve(raw, ctx.client.ip())?;
        regular_only(&node.meta)?;
        let file = export.open_io(&node, false)?;
        file.sync_all()?;
        out.u32(0);
        attr::put_wcc(out, export, Some(WccAttr::of(&node.meta)), &node);
        out.opaque_fixed(&self.write_verf());
        Ok(())
    }
}
