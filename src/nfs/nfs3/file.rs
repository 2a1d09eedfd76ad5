//! NFSv3 procedures on one object: GETATTR, SETATTR, ACCESS, READLINK, READ,
//! WRITE and COMMIT (RFC 1813 §3.3.1–§3.3.7, §3.3.21).

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use super::attr::{self, Sattr, WccAttr};
use super::{Fail, MAX_IO, Nfs3, Nfs3Status, ProcResult, get_fh};
use crate::nfs::dispatch::CallContext;
use crate::nfs::export::{Export, Located, ino_generation};
use crate::nfs::rpc::Credential;
use crate::nfs::xdr::{XdrReader, XdrWriter};

/// RFC 1813 §3.3.7 stable_how
const UNSTABLE: u32 = 0;
const DATA_SYNC: u32 = 1;
const FILE_SYNC: u32 = 2;

/// The export's cached descriptor for the located file, opened (never
/// following a symlink) on a miss.
fn cached_open(
    export: &Export,
    loc: &Located,
    path: &Path,
    write: bool,
) -> std::io::Result<Arc<File>> {
    export
        .open_files
        .get(loc.meta.ino(), ino_generation(&loc.meta), write, || {
            attr::open_nofollow(path, write)
        })
}

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
    /// RFC 1813 §3.3.1
    pub(super) fn getattr(
        &self,
        ctx: &CallContext<'_>,
        args: &mut XdrReader<'_>,
        out: &mut XdrWriter,
    ) -> ProcResult {
        let raw = get_fh(args)?;
        let (export, loc) = self.resolve(raw, ctx.client.ip())?;
        out.u32(0);
        attr::put_fattr(out, export, &loc.meta);
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
        let (export, loc) = self.resolve(raw, ctx.client.ip())?;
        if export.read_only {
            return Err(Nfs3Status::ROFS.into());
        }
        if let Some((s, ns)) = guard
            && (loc.meta.ctime() as u32, loc.meta.ctime_nsec() as u32) != (s, ns)
        {
            return Err(Nfs3Status::NOT_SYNC.into());
        }
        let path = export.abs(&loc.rel);
        sattr.apply(&path, &loc.meta)?;
        out.u32(0);
        attr::put_wcc(out, export, Some(WccAttr::of(&loc.meta)), &path);
        Ok(())
    }

    /// RFC 1813 §3.3.4
    pub(super) fn access(
        &self,
        ctx: &CallContext<'_>,
        args: &mut XdrReader<'_>,
        out: &mut XdrWriter,
    ) -> ProcResult {
        let raw = get_fh(args)?;
        let wanted = args.u32()?;
        let (export, loc) = self.resolve(raw, ctx.client.ip())?;
        let (uid, gid, gids): (u32, u32, &[u32]) = match ctx.cred {
            Credential::Sys(a) => (a.uid, a.gid, &a.gids),
            _ => (65534, 65534, &[]),
        };
        let granted = attr::access_bits(&loc.meta, uid, gid, gids, export.read_only) & wanted;
        out.u32(0);
        attr::put_post_op(out, export, Some(&loc.meta));
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
        let (export, loc) = self.resolve(raw, ctx.client.ip())?;
        if !loc.meta.file_type().is_symlink() {
            return Err(Nfs3Status::INVAL.into());
        }
        let target = std::fs::read_link(export.abs(&loc.rel))?;
        out.u32(0);
        attr::put_post_op(out, export, Some(&loc.meta));
        out.string(target.as_os_str().as_bytes());
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
        let count = args.u32()?.min(ctx.transport.max_io());
        let (export, loc) = self.resolve(raw, ctx.client.ip())?;
        regular_only(&loc.meta)?;
        let path = export.abs(&loc.rel);
        let file = cached_open(export, &loc, &path, false)?;
        // Sized by what the file holds, not by what was asked: many large
        // READs past EOF must not cost a buffer each. A file that grows
        // meanwhile gives a short read with eof false, which RFC 1813 allows.
        let avail = loc.meta.size().saturating_sub(offset);
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
        let (export, loc) = self.resolve(raw, ctx.client.ip())?;
        if export.read_only {
            return Err(Nfs3Status::ROFS.into());
        }
        regular_only(&loc.meta)?;
        let path = export.abs(&loc.rel);
        let file = cached_open(export, &loc, &path, true)?;
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
        attr::put_wcc_meta(out, export, Some(WccAttr::of(&loc.meta)), post.as_ref());
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
        let (export, loc) = self.resolve(raw, ctx.client.ip())?;
        regular_only(&loc.meta)?;
        let path = export.abs(&loc.rel);
        let file = cached_open(export, &loc, &path, false)?;
        file.sync_all()?;
        out.u32(0);
        attr::put_wcc(out, export, Some(WccAttr::of(&loc.meta)), &path);
        out.opaque_fixed(&self.write_verf());
        Ok(())
    }
}
