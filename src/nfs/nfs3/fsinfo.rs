//! NFSv3 file-system level procedures: FSSTAT, FSINFO, PATHCONF
//! (RFC 1813 §3.3.18–§3.3.20).

use super::{NAME_MAX, Nfs3, ProcResult, attr, get_fh, max_io};
use crate::nfs::call::CallContext;
use crate::nfs::xdr::{XdrReader, XdrWriter};

/// RFC 1813 §3.3.19 FSINFO properties.
const FSF3_LINK: u32 = 0x0001;
const FSF3_SYMLINK: u32 = 0x0002;
const FSF3_HOMOGENEOUS: u32 = 0x0008;
const FSF3_CANSETTIME: u32 = 0x0010;

/// Preferred READDIR size; the Linux client uses dtpref as its readdir buffer.
const DTPREF: u32 = 64 * 1024;

impl Nfs3 {
    /// RFC 1813 §3.3.18
    pub(super) fn fsstat(
        &self,
        ctx: &CallContext<'_>,
        args: &mut XdrReader<'_>,
        out: &mut XdrWriter,
    ) -> ProcResult {
        let raw = get_fh(args)?;
        let (export, loc) = self.resolve(raw, ctx.client.ip())?;
        let st = nix::sys::statvfs::fstatvfs(loc.fd())
            .map_err(|e| super::Nfs3Status::from_errno(e as i32))?;
        let frsize = st.fragment_size() as u64;
        out.u32(0);
        attr::put_post_op(out, export, Some(&loc.meta));
        out.u64(st.blocks() as u64 * frsize)
            .u64(st.blocks_free() as u64 * frsize)
            .u64(st.blocks_available() as u64 * frsize)
            .u64(st.files() as u64)
            .u64(st.files_free() as u64)
            .u64(st.files_available() as u64)
            .u32(0); // invarsec: the numbers may change at any time
        Ok(())
    }

    /// RFC 1813 §3.3.19
    pub(super) fn fsinfo(
        &self,
        ctx: &CallContext<'_>,
        args: &mut XdrReader<'_>,
        out: &mut XdrWriter,
    ) -> ProcResult {
        let raw = get_fh(args)?;
        let (export, loc) = self.resolve(raw, ctx.client.ip())?;
        out.u32(0);
        attr::put_post_op(out, export, Some(&loc.meta));
        let max_io = max_io(ctx.transport);
        out.u32(max_io) // rtmax
            .u32(max_io) // rtpref
            .u32(4096) // rtmult
            .u32(max_io) // wtmax
            .u32(max_io) // wtpref
            .u32(4096) // wtmult
            .u32(DTPREF)
            .u64(i64::MAX as u64) // maxfilesize, as on a 64-bit Linux host
            .u32(0)
            .u32(1) // time_delta: nanosecond timestamps
            .u32(FSF3_LINK | FSF3_SYMLINK | FSF3_HOMOGENEOUS | FSF3_CANSETTIME);
        Ok(())
    }

    /// RFC 1813 §3.3.20
    pub(super) fn pathconf(
        &self,
        ctx: &CallContext<'_>,
        args: &mut XdrReader<'_>,
        out: &mut XdrWriter,
    ) -> ProcResult {
        let raw = get_fh(args)?;
        let (export, loc) = self.resolve(raw, ctx.client.ip())?;
        out.u32(0);
        attr::put_post_op(out, export, Some(&loc.meta));
        out.u32(u32::MAX) // linkmax
            .u32(NAME_MAX)
            .bool(true) // no_trunc
            .bool(true) // chown_restricted
            .bool(false) // case_insensitive
            .bool(true); // case_preserving
        Ok(())
    }
}
