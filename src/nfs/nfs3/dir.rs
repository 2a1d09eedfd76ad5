//! NFSv3 READDIR and READDIRPLUS (RFC 1813 §3.3.16, §3.3.17).
//!
//! Cookies are a fixed hash of the entry name (FNV-1a, top bit clear), with
//! entries sent in cookie order: a cookie then stays meaningful when other
//! entries are added or removed between calls, the way ext4's hash cookies
//! behave under knfsd. "." and ".." take cookies 1 and 2. The cookie verifier
//! is always zero and never checked, as knfsd does, because the Linux client
//! does not recover well from NFS3ERR_BAD_COOKIE.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::fstatat;

use super::attr;
use super::{NFS3_COOKIEVERFSIZE, Nfs3, Nfs3Status, ProcResult, get_fh};
use crate::nfs::call::CallContext;
use crate::nfs::fnv::fnv1a64;
use crate::nfs::xdr::{XdrReader, XdrWriter, pad_len};

/// Largest reply we build, whatever the client asks.
const MAX_REPLY: u32 = 1 << 20;

/// Cookie of a name: 63-bit FNV, moved above the two reserved for dot entries.
pub fn name_cookie(name: &[u8]) -> u64 {
    (fnv1a64(name) & 0x7fff_ffff_ffff_ffff).max(3)
}

struct Entry {
    cookie: u64,
    name: OsString,
}

impl Nfs3 {
    /// Reads the directory through a descriptor opened from its handle and
    /// looks each entry up one confined step below it, as the caller: the
    /// kernel checks read permission for the listing and search
    /// permission for READDIRPLUS's attributes and handles.
    pub(super) fn readdir(
        &self,
        ctx: &CallContext<'_>,
        args: &mut XdrReader<'_>,
        out: &mut XdrWriter,
        plus: bool,
    ) -> ProcResult {
        let raw = get_fh(args)?;
        let cookie = args.u64()?;
        let _verf = args.opaque_fixed(NFS3_COOKIEVERFSIZE)?;
        let maxcount = if plus {
            let _dircount = args.u32()?;
            args.u32()?
        } else {
            args.u32()?
        }
        .min(MAX_REPLY) as usize;
        let (export, dir) = self.resolve(raw, ctx.client.ip())?;
        if !dir.meta.is_dir() {
            return Err(Nfs3Status::NOTDIR.into());
        }
        let _as = self.act_as(ctx, export)?;
        let listing = export.open_in(
            &dir,
            OsStr::new("."),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            0,
        )?;
        let listing =
            nix::dir::Dir::from_fd(listing).map_err(|e| Nfs3Status::from_errno(e as i32))?;

        let mut entries = vec![
            Entry {
                cookie: 1,
                name: ".".into(),
            },
            Entry {
                cookie: 2,
                name: "..".into(),
            },
        ];
        let mut rest: Vec<Entry> = listing
            .into_iter()
            .flatten()
            .map(|e| OsStr::from_bytes(e.file_name().to_bytes()).to_os_string())
            .filter(|name| name != "." && name != "..")
            .map(|name| Entry {
                cookie: name_cookie(name.as_bytes()),
                name,
            })
            .collect();
        rest.sort_by(|a, b| a.cookie.cmp(&b.cookie).then_with(|| a.name.cmp(&b.name)));
        entries.extend(rest);

        out.u32(0);
        attr::put_post_op(out, export, Some(&dir.meta));
        out.opaque_fixed(&[0u8; NFS3_COOKIEVERFSIZE]);
        // status, post_op_attr, verifier, list end and eof.
        let mut used = 4 + 4 + 84 + NFS3_COOKIEVERFSIZE + 8;
        let mut sent = 0usize;
        let mut eof = true;
        for entry in entries.iter().filter(|e| e.cookie > cookie) {
            let name = entry.name.as_bytes();
            // Removed since the listing: skip it, as the client would never
            // see it anyway.
            let (fileid, node) = if plus {
                match export.lookup_listed(&dir, &entry.name) {
                    Ok(Some(node)) => (std::os::unix::fs::MetadataExt::ino(&node.meta), Some(node)),
                    Ok(None) => continue,
                    Err(e) => return Err(e.into()),
                }
            } else {
                match fstatat(
                    dir.fd(),
                    entry.name.as_os_str(),
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                ) {
                    Ok(st) => (st.st_ino, None),
                    Err(_) => continue,
                }
            };
            let fh = node.as_ref().map(|n| n.fh.encode(self.handle_key()));
            let mut size = 4 + 8 + 4 + name.len() + pad_len(name.len()) + 8;
            if let Some(fh) = &fh {
                size += 4 + 84 + 4 + 4 + fh.len() + pad_len(fh.len());
            }
            if used + size > maxcount {
                eof = false;
                break;
            }
            used += size;
            sent += 1;
            out.bool(true).u64(fileid).string(name).u64(entry.cookie);
            if let (Some(node), Some(fh)) = (&node, &fh) {
                attr::put_post_op(out, export, Some(&node.meta));
                out.bool(true).opaque(fh);
            }
        }
        if sent == 0 && !eof {
            return Err(Nfs3Status::TOOSMALL.into());
        }
        out.bool(false).bool(eof);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_avoid_reserved_values_and_are_stable() {
        assert!(name_cookie(b"a") >= 3);
        assert_eq!(name_cookie(b"disk.img"), name_cookie(b"disk.img"));
        assert_ne!(name_cookie(b"disk.img"), name_cookie(b"disk.imh"));
        assert!(name_cookie(b"x") < 1 << 63);
    }
}
