//! Operations that open files and move their data: OPEN, CLOSE,
//! OPEN_DOWNGRADE, READ, WRITE, COMMIT and SETATTR (RFC 8881 §18).

use std::borrow::Cow;
use std::ffi::OsStr;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::Arc;
use std::time::Instant;

use nix::fcntl::OFlag;
use nix::unistd::AccessFlags;

use super::attr::{self, Bitmap, SetAttrs};
use super::compound::{Compound, Flow, OpFail, OpResult};
use super::fh_ops::{check_dir, component};
use super::owners::{OwnerKey, OwnerKind};
use super::session_ops::{get_stateid, put_stateid};
use super::state::{Open, State, StateId};
use super::status::Nfs4Status;
use super::{Fh, Nfs4, ops};
use crate::nfs::call::CallContext;
use crate::nfs::export::{Export, Node};
use crate::nfs::nfs3::{MAX_IO, Sattr, SetTime};
use crate::nfs::xdr::{XdrError, XdrReader, XdrWriter};

/// RFC 8881 §18.16 share_access bits (the rest are 4.1's WANT flags).
const SHARE_ACCESS_READ: u32 = 1;
const SHARE_ACCESS_WRITE: u32 = 2;
/// RFC 8881 §18.16.3 rflags: POSIX lock semantics; never CONFIRM, so a
/// 4.0 client needs no OPEN_CONFIRM.
const OPEN4_RESULT_LOCKTYPE_POSIX: u32 = 4;
/// RFC 8881 §18.32 stable_how4
const FILE_SYNC4: u32 = 2;

/// RFC 8881 §18.16 createhow4
enum CreateHow {
    Unchecked(SetAttrs),
    Guarded(SetAttrs),
    Exclusive([u8; 8], SetAttrs),
}

/// RFC 8881 §18.16 open_claim4, the kinds we serve.
enum Claim<'a> {
    Null(Result<&'a OsStr, Nfs4Status>),
    Previous,
    Fh,
}

fn verifier(r: &mut XdrReader<'_>) -> Result<[u8; 8], XdrError> {
    let mut v = [0u8; 8];
    v.copy_from_slice(r.opaque_fixed(8)?);
    Ok(v)
}

/// The verifier as the atime and mtime seconds it is kept in, as knfsd
/// and our NFSv3 CREATE keep it.
fn verifier_times(v: &[u8; 8]) -> (u32, u32) {
    (
        u32::from_be_bytes([v[0], v[1], v[2], v[3]]),
        u32::from_be_bytes([v[4], v[5], v[6], v[7]]),
    )
}

fn change_of(meta: &std::fs::Metadata) -> u64 {
    attr::change((meta.ctime(), meta.ctime_nsec()))
}

/// RFC 8881 §3.3.5 change_info4 around a directory change.
pub(super) fn put_change_info(w: &mut XdrWriter, before: u64, dir: &Node) {
    let after = dir.meta_now().map_or(before, |m| change_of(&m));
    w.bool(false).u64(before).u64(after);
}

pub(super) fn dir_change(dir: &Node) -> u64 {
    change_of(&dir.meta)
}

pub(super) fn regular_only(node: &Node) -> Result<(), Nfs4Status> {
    let t = node.meta.file_type();
    if t.is_file() {
        Ok(())
    } else if t.is_dir() {
        Err(Nfs4Status::ISDIR)
    } else if t.is_symlink() {
        Err(Nfs4Status::SYMLINK)
    } else {
        Err(Nfs4Status::INVAL)
    }
}

/// The file an open is of: its export and kernel handle.
pub(super) fn file_key(export: u32, node: &Node) -> (u32, Vec<u8>) {
    (export, node.fh.kernel.bytes.clone())
}

impl Nfs4 {
    /// May the caller read (or write) `node`? The owner always may, as
    /// NFSv3's check and knfsd's NFSD_MAY_OWNER_OVERRIDE.
    pub(super) fn may_io(
        &self,
        ctx: &CallContext<'_>,
        export: &Export,
        node: &Node,
        write: bool,
    ) -> Result<(), Nfs4Status> {
        let creds = export.creds(ctx.cred);
        if creds.uid == 0 || creds.uid == node.meta.uid() {
            return Ok(());
        }
        self.may_open(ctx, export, node, write)
    }

    /// Whether the caller may open `node` for reading or writing, by the
    /// file's mode alone: an owner does not override it here (knfsd's
    /// OPEN of an existing file neither), so its 0444 file is EACCES.
    fn may_open(
        &self,
        ctx: &CallContext<'_>,
        export: &Export,
        node: &Node,
        write: bool,
    ) -> Result<(), Nfs4Status> {
        let _as = Self::act_as(ctx, export)?;
        let mode = if write {
            AccessFlags::W_OK
        } else {
            AccessFlags::R_OK
        };
        node.may(mode)?;
        Ok(())
    }

    /// Applies settable attributes as the caller: the size through a
    /// writable descriptor after WRITE's check, the rest by the kernel's
    /// own checks (as NFSv3's SETATTR).
    pub(super) fn set_attrs(
        &self,
        ctx: &CallContext<'_>,
        export: &Export,
        node: &Node,
        sattr: &Sattr,
    ) -> Result<(), Nfs4Status> {
        if export.read_only {
            return Err(Nfs4Status::ROFS);
        }
        let mut rest = Cow::Borrowed(sattr);
        if let Some(size) = sattr.size {
            regular_only(node)?;
            self.may_io(ctx, export, node, true)?;
            export.open_io(node, true)?.set_len(size)?;
            // ftruncate set mtime already; see NFSv3's set_attrs.
            if sattr.mtime == Some(SetTime::ServerTime) && sattr.atime.is_none() {
                rest.to_mut().mtime = None;
            }
        }
        let _as = Self::act_as(ctx, export)?;
        rest.apply_to(node).map_err(|s| Nfs4Status(s.0))?;
        Ok(())
    }

    /// A stateid READ, WRITE or SETATTR carries must be current (or a
    /// special one): a stale one makes the client reclaim after a restart.
    fn check_io_stateid(&self, sid: &StateId) -> Result<(), Nfs4Status> {
        if sid.is_special() {
            return Ok(());
        }
        // An open's or a lock-owner's (the client sends the latter while
        // it holds locks on the file).
        self.state().known(sid)
    }

    /// RFC 8881 §18.16
    pub(super) fn open(
        &self,
        c: &mut Compound<'_, '_>,
        r: &mut XdrReader<'_>,
        w: &mut XdrWriter,
    ) -> OpResult {
        let seqid = r.u32()?;
        let share_access = r.u32()?;
        let share_deny = r.u32()?;
        let owner_client = r.u64()?;
        let owner = r.opaque(1024)?.to_vec();
        let at = r.position();
        let how = match r.u32()? {
            0 => None,
            1 => {
                let at = r.position();
                Some(match r.u32()? {
                    0 => CreateHow::Unchecked(attr::get_setattrs(r)??),
                    1 => CreateHow::Guarded(attr::get_setattrs(r)??),
                    2 => CreateHow::Exclusive(verifier(r)?, SetAttrs::default()),
                    3 => {
                        let v = verifier(r)?;
                        CreateHow::Exclusive(v, attr::get_setattrs(r)??)
                    }
                    value => return Err(XdrError::BadEnum { at, value }.into()),
                })
            }
            value => return Err(XdrError::BadEnum { at, value }.into()),
        };
        let at = r.position();
        let claim = match r.u32()? {
            0 => Claim::Null(component(r)?),
            1 => {
                r.u32()?;
                Claim::Previous
            }
            4 => Claim::Fh,
            // Delegation claims: we never grant delegations.
            2..=6 => return Err(Nfs4Status::NOTSUPP.into()),
            value => return Err(XdrError::BadEnum { at, value }.into()),
        };
        let access = share_access & (SHARE_ACCESS_READ | SHARE_ACCESS_WRITE);
        let deny = share_deny & 3;
        if access == 0 {
            return Err(Nfs4Status::INVAL.into());
        }
        let client = c.client.unwrap_or(owner_client);
        let key = OwnerKey {
            client,
            kind: OwnerKind::Open,
            owner: owner.clone(),
        };
        if let Some(replay) = self.owner_seqid(c, seqid, ops::OPEN, None, |_| Ok(key))? {
            return Ok(Flow::Repeat(replay));
        }
        {
            let mut st = self.state();
            let now = Instant::now();
            st.live_client(client, now)?;
            let reclaim = matches!(claim, Claim::Previous);
            if reclaim && (!st.in_grace(now) || !st.may_reclaim(client)) {
                return Err(Nfs4Status::NO_GRACE.into());
            }
            if !reclaim && st.in_grace(now) {
                return Err(Nfs4Status::GRACE.into());
            }
        }

        let cfh = c.cfh()?.clone();
        let (export, dir_or_file) = self.real(
            &cfh,
            if how.is_some() {
                Nfs4Status::ROFS
            } else {
                Nfs4Status::ISDIR
            },
        )?;
        let export_id = export.id;
        let mut attrset: Bitmap = [0; 3];
        let mut cinfo = None;
        let (node, created) = match claim {
            Claim::Null(name) => {
                let dir = dir_or_file;
                check_dir(dir)?;
                let name = name?;
                let before = dir_change(dir);
                let (node, created) = match how {
                    None => {
                        let _as = Self::act_as(c.ctx, export)?;
                        (export.lookup(dir, name)?, false)
                    }
                    Some(how) => self.open_create(c.ctx, export, dir, name, how, &mut attrset)?,
                };
                cinfo = Some((before, dir.clone()));
                (node, created)
            }
            Claim::Previous | Claim::Fh => {
                let node = export
                    .resolve(&dir_or_file.fh, c.ctx.client.ip())
                    .map_err(|_| Nfs4Status::STALE)?;
                (node, false)
            }
        };
        regular_only(&node)?;
        if !created {
            if access & SHARE_ACCESS_READ != 0 {
                self.may_open(c.ctx, export, &node, false)?;
            }
            if access & SHARE_ACCESS_WRITE != 0 {
                if export.read_only {
                    return Err(Nfs4Status::ROFS.into());
                }
                self.may_open(c.ctx, export, &node, true)?;
            }
        }

        let file = file_key(export_id, &node);
        let sid = {
            let mut st = self.state();
            st.purge_expired(Instant::now());
            if st.share_conflict(client, &owner, &file, access, deny) {
                return Err(Nfs4Status::SHARE_DENIED.into());
            }
            match st.open_by_owner(client, &owner, &file) {
                Some((other, open)) => {
                    open.seqid = open.seqid.wrapping_add(1);
                    open.access |= access;
                    open.deny |= deny;
                    StateId {
                        seqid: open.seqid,
                        other,
                    }
                }
                None => st.new_open(Open {
                    client,
                    owner,
                    file,
                    seqid: 1,
                    access,
                    deny,
                })?,
            }
        };
        put_stateid(w, &sid);
        match &cinfo {
            Some((before, dir)) => put_change_info(w, *before, dir),
            None => {
                w.bool(false).u64(0).u64(0);
            }
        }
        w.u32(OPEN4_RESULT_LOCKTYPE_POSIX);
        attr::put_bitmap(w, &attrset);
        w.u32(0); // OPEN_DELEGATE_NONE
        c.cfh = Some(Fh::Real {
            export: export_id,
            node: Arc::new(node),
        });
        Ok(Flow::Next)
    }

    /// OPEN with OPEN4_CREATE: makes the file as the caller, or finds the
    /// one a retransmitted exclusive create made. Returns the node and
    /// whether this call created it.
    fn open_create(
        &self,
        ctx: &CallContext<'_>,
        export: &Export,
        dir: &Node,
        name: &OsStr,
        how: CreateHow,
        attrset: &mut Bitmap,
    ) -> Result<(Node, bool), OpFail> {
        if export.read_only {
            return Err(Nfs4Status::ROFS.into());
        }
        let (sa, verf, guarded) = match how {
            CreateHow::Unchecked(sa) => (sa, None, false),
            CreateHow::Guarded(sa) => (sa, None, true),
            CreateHow::Exclusive(v, sa) => (sa, Some(verifier_times(&v)), true),
        };
        let mode = sa.sattr.mode.unwrap_or(0o644) & 0o7777;
        let created = {
            let _as = Self::act_as(ctx, export)?;
            export.open_in(
                dir,
                name,
                OFlag::O_RDONLY | OFlag::O_CREAT | OFlag::O_EXCL,
                mode,
            )
        };
        match created {
            Ok(fd) => {
                let node = export.node(fd)?;
                let mut settle = Sattr {
                    mode: Some(mode),
                    ..sa.sattr.clone()
                };
                if let Some((a, m)) = verf {
                    settle.atime = Some(SetTime::ClientTime(a, 0));
                    settle.mtime = Some(SetTime::ClientTime(m, 0));
                }
                // The creator owns the file; a size of 0 is what it has.
                if settle.size == Some(0) {
                    settle.size = None;
                }
                self.set_attrs(ctx, export, &node, &settle)?;
                *attrset = sa.mask;
                Ok((node, true))
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let node = {
                    let _as = Self::act_as(ctx, export)?;
                    export.lookup(dir, name)?
                };
                let meta = &node.meta;
                match verf {
                    Some((a, m)) => {
                        if !(meta.is_file() && meta.atime() as u32 == a && meta.mtime() as u32 == m)
                        {
                            return Err(Nfs4Status::EXIST.into());
                        }
                    }
                    None if guarded => return Err(Nfs4Status::EXIST.into()),
                    None => {
                        regular_only(&node)?;
                        // UNCHECKED on an existing file: only the size
                        // (an O_TRUNC open) is applied, as knfsd does.
                        if let Some(size) = sa.sattr.size {
                            let size = Sattr {
                                size: Some(size),
                                ..Sattr::default()
                            };
                            self.set_attrs(ctx, export, &node, &size)?;
                            attrset[0] |= 1 << attr::num::SIZE;
                        }
                    }
                }
                Ok((node, false))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// RFC 8881 §18.2
    pub(super) fn close(
        &self,
        c: &mut Compound<'_, '_>,
        r: &mut XdrReader<'_>,
        w: &mut XdrWriter,
    ) -> OpResult {
        let seqid = r.u32()?;
        let sid = get_stateid(r)?;
        c.cfh()?;
        // A repeated CLOSE finds its owner by the reply it got: the open
        // is gone.
        let owner = |st: &State| match st.open_owner(&sid) {
            Err(e) => st.owners.last_acting_on(&sid.other, ops::CLOSE).ok_or(e),
            found => found,
        };
        if let Some(replay) = self.owner_seqid(c, seqid, ops::CLOSE, Some(sid.other), owner)? {
            return Ok(Flow::Repeat(replay));
        }
        let mut st = self.state();
        let seqid = st.open_of(&sid)?.seqid;
        st.opens.remove(&sid.other);
        st.locks.drop_open(&sid.other);
        put_stateid(
            w,
            &StateId {
                seqid: seqid.wrapping_add(1),
                other: sid.other,
            },
        );
        Ok(Flow::Next)
    }

    /// RFC 8881 §18.18: access and deny may only shrink.
    pub(super) fn open_downgrade(
        &self,
        c: &mut Compound<'_, '_>,
        r: &mut XdrReader<'_>,
        w: &mut XdrWriter,
    ) -> OpResult {
        let sid = get_stateid(r)?;
        let seqid = r.u32()?;
        let access = r.u32()? & 3;
        let deny = r.u32()? & 3;
        c.cfh()?;
        let owner = |st: &State| st.open_owner(&sid);
        if let Some(replay) = self.owner_seqid(c, seqid, ops::OPEN_DOWNGRADE, None, owner)? {
            return Ok(Flow::Repeat(replay));
        }
        let mut st = self.state();
        let open = st.open_of(&sid)?;
        if access == 0 || access & !open.access != 0 || deny & !open.deny != 0 {
            return Err(Nfs4Status::INVAL.into());
        }
        open.access = access;
        open.deny = deny;
        open.seqid = open.seqid.wrapping_add(1);
        let new = StateId {
            seqid: open.seqid,
            other: sid.other,
        };
        put_stateid(w, &new);
        Ok(Flow::Next)
    }

    /// RFC 8881 §18.22
    pub(super) fn read(
        &self,
        c: &mut Compound<'_, '_>,
        r: &mut XdrReader<'_>,
        w: &mut XdrWriter,
    ) -> OpResult {
        let sid = get_stateid(r)?;
        let offset = r.u64()?;
        let count = r.u32()?.min(MAX_IO);
        let (export, node) = self.real(c.cfh()?, Nfs4Status::ISDIR)?;
        regular_only(node)?;
        self.check_io_stateid(&sid)?;
        self.may_io(c.ctx, export, node, false)?;
        let file = export.open_io(node, false)?;
        let size = file.metadata()?.size();
        // Sized by what the file holds, not by what was asked.
        let mut data = vec![0u8; (count as u64).min(size.saturating_sub(offset)) as usize];
        let mut got = 0usize;
        while got < data.len() {
            match file.read_at(&mut data[got..], offset.saturating_add(got as u64)) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        }
        data.truncate(got);
        let eof = offset.saturating_add(got as u64) >= file.metadata()?.size();
        w.bool(eof).opaque(&data);
        Ok(Flow::Next)
    }

    /// RFC 8881 §18.32: as NFSv3's WRITE, UNSTABLE to the page cache and
    /// the stable kinds synced before the reply.
    pub(super) fn write(
        &self,
        c: &mut Compound<'_, '_>,
        r: &mut XdrReader<'_>,
        w: &mut XdrWriter,
    ) -> OpResult {
        let sid = get_stateid(r)?;
        let offset = r.u64()?;
        let stable = r.u32()?;
        let data = r.opaque(MAX_IO)?;
        if stable > FILE_SYNC4 {
            return Err(Nfs4Status::INVAL.into());
        }
        let (export, node) = self.real(c.cfh()?, Nfs4Status::ISDIR)?;
        if export.read_only {
            return Err(Nfs4Status::ROFS.into());
        }
        regular_only(node)?;
        self.check_io_stateid(&sid)?;
        self.may_io(c.ctx, export, node, true)?;
        offset
            .checked_add(data.len() as u64)
            .filter(|end| *end <= i64::MAX as u64)
            .ok_or(Nfs4Status::FBIG)?;
        let file = export.open_io(node, true)?;
        file.write_all_at(data, offset)?;
        match stable {
            0 => {}
            1 => file.sync_data()?,
            _ => file.sync_all()?,
        }
        w.u32(data.len() as u32)
            .u32(stable)
            .opaque_fixed(&self.write_verf());
        Ok(Flow::Next)
    }

    /// RFC 8881 §18.3: the whole file is synced whatever range is asked.
    pub(super) fn commit(
        &self,
        c: &mut Compound<'_, '_>,
        r: &mut XdrReader<'_>,
        w: &mut XdrWriter,
    ) -> OpResult {
        let _offset = r.u64()?;
        let _count = r.u32()?;
        let (export, node) = self.real(c.cfh()?, Nfs4Status::ISDIR)?;
        regular_only(node)?;
        export.open_io(node, true)?.sync_all()?;
        w.opaque_fixed(&self.write_verf());
        Ok(Flow::Next)
    }

    /// RFC 8881 §18.30
    pub(super) fn setattr(
        &self,
        c: &mut Compound<'_, '_>,
        r: &mut XdrReader<'_>,
        w: &mut XdrWriter,
    ) -> OpResult {
        let sid = get_stateid(r)?;
        let sa = attr::get_setattrs(r)??;
        let (export, node) = self.real(c.cfh()?, Nfs4Status::ROFS)?;
        if sa.sattr.size.is_some() {
            self.check_io_stateid(&sid)?;
        }
        self.set_attrs(c.ctx, export, node, &sa.sattr)?;
        attr::put_bitmap(w, &sa.mask);
        Ok(Flow::Next)
    }
}
