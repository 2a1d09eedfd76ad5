//! Operations on the current filehandle that do not open or change files:
//! PUTFH, PUTROOTFH, GETFH, LOOKUP, LOOKUPP, GETATTR, ACCESS, READLINK,
//! READDIR, SECINFO and SECINFO_NO_NAME (RFC 8881 §18).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

use nix::fcntl::OFlag;
use nix::unistd::AccessFlags;

use super::attr::{self, Attrs, Bitmap};
use super::compound::{Compound, Flow, OpResult};
use super::pseudo::Step;
use super::status::Nfs4Status;
use super::{Fh, NFS4_FHSIZE, Nfs4};
use crate::nfs::export::{Export, Node};
// Cookies are NFSv3's: 63-bit FNV of the name, above the values RFC 8881
// §18.23.4 reserves (0, 1, 2), so entries keep their place when others
// come and go.
use crate::nfs::nfs3::name_cookie;
use crate::nfs::nfs3::{NAME_MAX, PATH_MAX};
use crate::nfs::xdr::{XdrReader, XdrWriter};

/// The fsid of the pseudo file system: beside every export's (theirs
/// carry the export id in the low bits, which is never 0).
const PSEUDO_FSID: u64 = 0x5351_0000_0000_0000;
/// Largest READDIR reply we build, whatever the client asks.
const MAX_READDIR: u32 = 1 << 20;
/// RFC 8881 §18.7 ACCESS4 bits.
const ACCESS4_READ: u32 = 0x01;
const ACCESS4_LOOKUP: u32 = 0x02;
const ACCESS4_MODIFY: u32 = 0x04;
const ACCESS4_EXTEND: u32 = 0x08;
const ACCESS4_DELETE: u32 = 0x10;
const ACCESS4_EXECUTE: u32 = 0x20;

/// A name component from the wire, checked (RFC 8881 §14.5): not empty,
/// no "/" or NUL, not "." or "..", not too long.
pub fn component<'a>(
    r: &mut XdrReader<'a>,
) -> Result<Result<&'a OsStr, Nfs4Status>, crate::nfs::xdr::XdrError> {
    let name = r.string(PATH_MAX)?;
    Ok(if name.is_empty() {
        Err(Nfs4Status::INVAL)
    } else if name.len() > NAME_MAX as usize {
        Err(Nfs4Status::NAMETOOLONG)
    } else if name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0) {
        Err(Nfs4Status::BADNAME)
    } else {
        Ok(OsStr::from_bytes(name))
    })
}

impl Nfs4 {
    /// The export and node a real filehandle names; a pseudo directory
    /// answers `pseudo` (what the operation says about a read-only,
    /// file-less directory).
    pub(super) fn real<'f>(
        &self,
        fh: &'f Fh,
        pseudo: Nfs4Status,
    ) -> Result<(&Export, &'f Arc<Node>), Nfs4Status> {
        match fh {
            Fh::Pseudo(_) => Err(pseudo),
            Fh::Real { export, node } => Ok((self.export(*export)?, node)),
        }
    }

    /// The attributes of `fh`, with the file system's statistics if `req`
    /// asks for them.
    pub(super) fn attrs_of(&self, fh: &Fh, req: &Bitmap) -> Result<Attrs, Nfs4Status> {
        match fh {
            Fh::Pseudo(i) => Ok(Attrs {
                ftype: 2,
                mode: 0o555,
                nlink: 2,
                uid: 0,
                gid: 0,
                size: 4096,
                used: 0,
                rdev: 0,
                fsid: PSEUDO_FSID,
                fileid: name_cookie(self.pseudo.path(*i).as_bytes()),
                atime: (0, 0),
                mtime: (0, 0),
                ctime: (0, 0),
                fh: self.encode_fh(fh),
                statfs: None,
            }),
            Fh::Real { export, node } => {
                let export = self.export(*export)?;
                let meta = node.meta_now()?;
                let mut a = Attrs::of_meta(&meta, export.fsid(), self.encode_fh(fh));
                if Attrs::wants_statfs(req) {
                    a.statfs = nix::sys::statvfs::fstatvfs(node.fd()).ok();
                }
                Ok(a)
            }
        }
    }

    pub(super) fn putfh(&self, c: &mut Compound<'_, '_>, r: &mut XdrReader<'_>) -> OpResult {
        let raw = r.opaque(NFS4_FHSIZE)?;
        c.cfh = Some(self.decode_fh(raw, c.ctx.client.ip())?);
        Ok(Flow::Next)
    }

    /// The pseudo root, or the export that is "/" itself.
    pub(super) fn putrootfh(&self, c: &mut Compound<'_, '_>) -> OpResult {
        c.cfh = Some(match self.pseudo.root_export() {
            Some(id) => self.export_root(id, c.ctx.client.ip())?,
            None => Fh::Pseudo(0),
        });
        Ok(Flow::Next)
    }

    pub(super) fn getfh(&self, c: &mut Compound<'_, '_>, w: &mut XdrWriter) -> OpResult {
        let fh = self.encode_fh(c.cfh()?);
        w.opaque(&fh);
        Ok(Flow::Next)
    }

    /// RFC 8881 §18.15: one confined step, as the caller; from the pseudo
    /// file system only into its directories and the exports' roots.
    pub(super) fn lookup(
        &self,
        c: &mut Compound<'_, '_>,
        r: &mut XdrReader<'_>,
        _w: &mut XdrWriter,
    ) -> OpResult {
        let name = component(r)?;
        let next = match c.cfh()? {
            Fh::Pseudo(i) => {
                let name = name?;
                match self.pseudo.lookup(*i, &name.to_string_lossy()) {
                    Some(Step::Dir(j)) => Fh::Pseudo(j),
                    Some(Step::Export(id)) => self.export_root(id, c.ctx.client.ip())?,
                    None => return Err(Nfs4Status::NOENT.into()),
                }
            }
            Fh::Real { export, node } => {
                let export_id = *export;
                let export = self.export(export_id)?;
                check_dir(node)?;
                let name = name?;
                let found = {
                    let _as = Self::act_as(c.ctx, export)?;
                    export.lookup(node, name)?
                };
                Fh::Real {
                    export: export_id,
                    node: Arc::new(found),
                }
            }
        };
        c.cfh = Some(next);
        Ok(Flow::Next)
    }

    /// RFC 8881 §18.14: the parent, which above an export's root is the
    /// pseudo directory it hangs from, and never anything outside it.
    pub(super) fn lookupp(&self, c: &mut Compound<'_, '_>) -> OpResult {
        let next = match c.cfh()? {
            Fh::Pseudo(i) => Fh::Pseudo(self.pseudo.parent_of_dir(*i).ok_or(Nfs4Status::NOENT)?),
            Fh::Real { export, node } => {
                let export_id = *export;
                let export = self.export(export_id)?;
                check_dir(node)?;
                if export.is_root(&node.meta) {
                    Fh::Pseudo(
                        self.pseudo
                            .parent_of_export(export_id)
                            .ok_or(Nfs4Status::NOENT)?,
                    )
                } else {
                    let parent = {
                        let _as = Self::act_as(c.ctx, export)?;
                        export.lookup(node, OsStr::new(".."))?
                    };
                    Fh::Real {
                        export: export_id,
                        node: Arc::new(parent),
                    }
                }
            }
        };
        c.cfh = Some(next);
        Ok(Flow::Next)
    }

    /// RFC 8881 §18.7
    pub(super) fn getattr(
        &self,
        c: &mut Compound<'_, '_>,
        r: &mut XdrReader<'_>,
        w: &mut XdrWriter,
    ) -> OpResult {
        let req = attr::get_bitmap(r)??;
        let attrs = self.attrs_of(c.cfh()?, &req)?;
        attrs.put(&req, w);
        Ok(Flow::Next)
    }

    /// RFC 8881 §18.1: each bit asked of the kernel as the caller, as
    /// NFSv3's ACCESS does.
    pub(super) fn access(
        &self,
        c: &mut Compound<'_, '_>,
        r: &mut XdrReader<'_>,
        w: &mut XdrWriter,
    ) -> OpResult {
        let wanted = r.u32()? & 0x3f;
        let granted = match c.cfh()? {
            Fh::Pseudo(_) => ACCESS4_READ | ACCESS4_LOOKUP,
            Fh::Real { export, node } => {
                let export = self.export(*export)?;
                let _as = Self::act_as(c.ctx, export)?;
                let may = |mode| node.may(mode).is_ok();
                let writable = !export.read_only && may(AccessFlags::W_OK);
                let mut bits = 0;
                if may(AccessFlags::R_OK) {
                    bits |= ACCESS4_READ;
                }
                if node.meta.is_dir() {
                    let search = may(AccessFlags::X_OK);
                    if search {
                        bits |= ACCESS4_LOOKUP;
                    }
                    if search && writable {
                        bits |= ACCESS4_MODIFY | ACCESS4_EXTEND | ACCESS4_DELETE;
                    }
                } else {
                    if may(AccessFlags::X_OK) {
                        bits |= ACCESS4_EXECUTE;
                    }
                    if writable {
                        bits |= ACCESS4_MODIFY | ACCESS4_EXTEND;
                    }
                }
                bits
            }
        };
        w.u32(wanted).u32(granted & wanted);
        Ok(Flow::Next)
    }

    /// RFC 8881 §18.24: the link text as stored, never followed.
    pub(super) fn readlink(&self, c: &mut Compound<'_, '_>, w: &mut XdrWriter) -> OpResult {
        let (_, node) = self.real(c.cfh()?, Nfs4Status::INVAL)?;
        if !node.meta.file_type().is_symlink() {
            return Err(Nfs4Status::INVAL.into());
        }
        let target = nix::fcntl::readlinkat(node.fd(), "")?;
        w.string(target.as_bytes());
        Ok(Flow::Next)
    }

    /// RFC 8881 §18.29 SECINFO and §18.45 SECINFO_NO_NAME: AUTH_SYS only,
    /// and the current filehandle is consumed.
    pub(super) fn secinfo(
        &self,
        c: &mut Compound<'_, '_>,
        r: &mut XdrReader<'_>,
        w: &mut XdrWriter,
        named: bool,
    ) -> OpResult {
        if named {
            component(r)??;
        } else {
            r.u32()?;
        }
        c.cfh()?;
        c.cfh = None;
        w.u32(1).u32(1);
        Ok(Flow::Next)
    }

    /// RFC 8881 §18.23: entries in cookie order with the attributes asked
    /// for, looked up one confined step below the directory as the caller.
    pub(super) fn readdir(
        &self,
        c: &mut Compound<'_, '_>,
        r: &mut XdrReader<'_>,
        w: &mut XdrWriter,
    ) -> OpResult {
        let cookie = r.u64()?;
        let _verf = r.opaque_fixed(8)?;
        let _dircount = r.u32()?;
        let maxcount = r.u32()?.min(MAX_READDIR) as usize;
        let req = attr::get_bitmap(r)??;
        let dir = c.cfh()?.clone();
        w.opaque_fixed(&[0u8; 8]);
        // Each entry is encoded as it is looked up and its node dropped
        // then: a reply of a million bytes names thousands of files, and
        // holding a descriptor for each would run out of them.
        let mut page = Page {
            w,
            used: 8 + 8 + 16,
            maxcount,
            sent: 0,
        };
        let mut full = false;
        match &dir {
            Fh::Pseudo(i) => {
                let mut entries: Vec<(u64, String, Fh)> = Vec::new();
                for (name, step) in self.pseudo.entries(*i) {
                    let fh = match step {
                        Step::Dir(j) => Fh::Pseudo(j),
                        Step::Export(id) => match self.export_root(id, c.ctx.client.ip()) {
                            Ok(fh) => fh,
                            Err(_) => continue,
                        },
                    };
                    entries.push((name_cookie(name.as_bytes()), name, fh));
                }
                entries.retain(|(k, _, _)| *k > cookie);
                entries.sort_by_key(|e| e.0);
                for (k, name, fh) in &entries {
                    if !page.put(*k, name.as_bytes(), self.attrs_of(fh, &req), &req) {
                        full = true;
                        break;
                    }
                }
            }
            Fh::Real { export, node } => {
                let export_id = *export;
                let export = self.export(export_id)?;
                check_dir(node)?;
                let _as = Self::act_as(c.ctx, export)?;
                let listing = export.open_in(
                    node,
                    OsStr::new("."),
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY,
                    0,
                )?;
                let listing = nix::dir::Dir::from_fd(listing)?;
                let mut names: Vec<(u64, Vec<u8>)> = listing
                    .into_iter()
                    .flatten()
                    .map(|e| e.file_name().to_bytes().to_vec())
                    .filter(|n| n != b"." && n != b"..")
                    .map(|n| (name_cookie(&n), n))
                    .filter(|(k, _)| *k > cookie)
                    .collect();
                names.sort();
                for (k, name) in names {
                    // Gone since the listing, or a mount point: skipped, as
                    // the v3 READDIRPLUS skips it.
                    let Some(found) = export.lookup_listed(node, OsStr::from_bytes(&name))? else {
                        continue;
                    };
                    let fh = Fh::Real {
                        export: export_id,
                        node: Arc::new(found),
                    };
                    if !page.put(k, &name, self.attrs_of(&fh, &req), &req) {
                        full = true;
                        break;
                    }
                }
            }
        }
        if page.sent == 0 && full {
            return Err(Nfs4Status::TOOSMALL.into());
        }
        let eof = !full;
        w.bool(false).bool(eof);
        Ok(Flow::Next)
    }
}

/// READDIR's reply as it fills: entries up to the client's maxcount.
struct Page<'w> {
    w: &'w mut XdrWriter,
    used: usize,
    maxcount: usize,
    sent: usize,
}

impl Page<'_> {
    /// Adds an entry; false if it does not fit (the reply is full). An
    /// entry whose attributes cannot be read is left out.
    fn put(
        &mut self,
        cookie: u64,
        name: &[u8],
        attrs: Result<Attrs, Nfs4Status>,
        req: &Bitmap,
    ) -> bool {
        let Ok(a) = attrs else {
            return true;
        };
        let mut e = XdrWriter::with_capacity(256);
        e.bool(true).u64(cookie).string(name);
        a.put(req, &mut e);
        if self.used + e.len() > self.maxcount {
            return false;
        }
        self.used += e.len();
        self.sent += 1;
        self.w.opaque_fixed(e.as_bytes());
        true
    }
}

/// A directory operation's filehandle must be a directory (RFC 8881
/// §15.2: SYMLINK for a symlink, NOTDIR for anything else).
pub(super) fn check_dir(node: &Node) -> Result<(), Nfs4Status> {
    let t = node.meta.file_type();
    if t.is_dir() {
        Ok(())
    } else if t.is_symlink() {
        Err(Nfs4Status::SYMLINK)
    } else {
        Err(Nfs4Status::NOTDIR)
    }
}
