//! NFSv3 READDIR and READDIRPLUS (RFC 1813 §3.3.16, §3.3.17).
//!
//! Cookies are a fixed hash of the entry name (FNV-1a, top bit clear), with
//! entries sent in cookie order: a cookie then stays meaningful when other
//! entries are added or removed between calls, the way ext4's hash cookies
//! behave under knfsd. "." and ".." take cookies 1 and 2. The cookie verifier
//! is always zero and never checked, as knfsd does, because the Linux client
//! does not recover well from NFS3ERR_BAD_COOKIE.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use super::attr;
use super::{NFS3_COOKIEVERFSIZE, Nfs3, Nfs3Status, ProcResult, get_fh, put_fh};
use crate::nfs::dispatch::CallContext;
use crate::nfs::handle::{HANDLE_LEN, fnv1a64};
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
    rel: PathBuf,
}

impl Nfs3 {
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
        let dir_path = export.abs(&dir.rel);

        let mut entries = vec![
            Entry {
                cookie: 1,
                name: ".".into(),
                rel: dir.rel.clone(),
            },
            Entry {
                cookie: 2,
                name: "..".into(),
                rel: dir.rel.parent().map(PathBuf::from).unwrap_or_default(),
            },
        ];
        let mut rest: Vec<Entry> = std::fs::read_dir(&dir_path)?
            .flatten()
            .map(|e| {
                let name = e.file_name();
                Entry {
                    cookie: name_cookie(name.as_bytes()),
                    rel: dir.rel.join(&name),
                    name,
                }
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
            let meta = match std::fs::symlink_metadata(export.abs(&entry.rel)) {
                Ok(m) => m,
                // Removed since read_dir: skip it, as the client would
                // never see it anyway.
                Err(_) => continue,
            };
            let mut size = 4 + 8 + 4 + name.len() + pad_len(name.len()) + 8;
            if plus {
                size += 4 + 84 + 4 + 4 + HANDLE_LEN;
            }
            if used + size > maxcount {
                eof = false;
                break;
            }
            used += size;
            sent += 1;
            out.bool(true)
                .u64(meta.ino())
                .string(name)
                .u64(entry.cookie);
            if plus {
                attr::put_post_op(out, export, Some(&meta));
                let fh = export.handle_for(&entry.rel, &meta);
                out.bool(true);
                put_fh(out, &fh);
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
