//! The NFS version 4 program (RFC 7530 for 4.0, RFC 8881 for 4.1, RFC 7862
//! for 4.2): one COMPOUND procedure whose operations live in the
//! submodules, over the same exports, handles and confinement as NFSv3.

mod attr;
mod compound;
mod fh_ops;
mod file_ops;
mod lock_ops;
pub mod locks;
mod name_ops;
pub mod ops;
pub mod owners;
mod pseudo;
mod session_ops;
pub mod slots;
pub mod state;
pub mod status;

pub use compound::peek_ops;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::call::{CallContext, CallError};
use super::export::{Export, ExportTable, Node, ResolveError};
use super::handle::FileHandle;
use super::program::{Program, ProgramInfo};
use super::xdr::{XdrReader, XdrWriter};
use crate::sys::fscreds::ActingAs;
use pseudo::PseudoFs;
use state::State;
use status::Nfs4Status;

pub const PROGRAM: u32 = 100003;
pub const VERSION: u32 = 4;
/// RFC 8881 §3.2 NFS4_FHSIZE
pub const NFS4_FHSIZE: u32 = 128;

/// NFSv4's row in the program table: NULL and COMPOUND (RFC 8881 §16).
pub static INFO: ProgramInfo = ProgramInfo {
    number: PROGRAM,
    names: &["nfs"],
    versions: &[VERSION],
    procedures: &["NULL", "COMPOUND"],
    procedure_prefixes: &["NFSPROC4_"],
    status_reply,
};

/// The fault hook's "reply with a status" for a COMPOUND: the first
/// operation fails with `status` (in 4.1 that is SEQUENCE, whose errors
/// drive the client's session recovery), as a server that refused it would.
fn status_reply(_vers: u32, proc_: u32, args: &[u8], status: u32, out: &mut XdrWriter) {
    if proc_ != 1 {
        return;
    }
    let mut r = XdrReader::new(args);
    let tag = r.opaque(compound::TAG_MAX).unwrap_or(&[]);
    let first = r.u32().and_then(|_minor| r.u32()).ok().filter(|&n| n > 0);
    out.u32(status).opaque(tag);
    match first.and_then(|_| r.u32().ok()) {
        Some(op) => {
            let op = if ops::name(op).is_some() {
                op
            } else {
                ops::ILLEGAL
            };
            out.u32(1).u32(op).u32(status);
            // SETATTR's result carries its attrsset bitmap even on failure.
            if op == ops::SETATTR {
                out.u32(0);
            }
        }
        None => {
            out.u32(0);
        }
    }
}

/// The current (or saved) filehandle of a COMPOUND.
#[derive(Debug, Clone)]
pub enum Fh {
    /// A directory of the pseudo file system, by index.
    Pseudo(usize),
    Real {
        export: u32,
        node: Arc<Node>,
    },
}

/// Handles of pseudo directories: this prefix and the index. They name
/// nothing on disk, so they need no seal.
const PSEUDO_MAGIC: &[u8; 4] = b"SQ4P";

/// The NFSv4 program.
#[derive(Debug)]
pub struct Nfs4 {
    exports: Arc<ExportTable>,
    pseudo: PseudoFs,
    state: Mutex<State>,
    /// As NFSv3's: the start of this server instance; COMMIT and WRITE
    /// return it, and a restart changes it.
    write_verf: AtomicU64,
    /// How long the grace period after a restart lasts.
    grace: Duration,
    /// Names this server instance to clients (EXCHANGE_ID's server owner).
    instance: u64,
    /// SEQUENCE's sr_status_flags (RFC 8881 §18.46.3): 0 unless a fault
    /// sets flags that drive the client's recovery.
    sequence_flags: AtomicU32,
    /// SEQUENCE replies that carried flags: whether such a fault fired.
    flagged_replies: AtomicU64,
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

impl Nfs4 {
    pub fn new(exports: Arc<ExportTable>) -> Nfs4 {
        let names: Vec<(u32, String)> = exports.iter().map(|e| (e.id, e.name.clone())).collect();
        let verf = now_nanos();
        Nfs4 {
            pseudo: PseudoFs::new(&names),
            exports,
            state: Mutex::new(State::new((verf / 1_000_000_000) as u32)),
            write_verf: AtomicU64::new(verf),
            grace: state::LEASE,
            instance: verf,
            sequence_flags: AtomicU32::new(0),
            flagged_replies: AtomicU64::new(0),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn write_verf(&self) -> [u8; 8] {
        self.write_verf.load(Ordering::SeqCst).to_be_bytes()
    }

    /// A server restart: a new write verifier; unless `keep_state`, every
    /// client id, session and stateid goes stale and a grace period starts
    /// in which the clients that held state reclaim it.
    pub fn restarted(&self, keep_state: bool) {
        let old = self.write_verf.load(Ordering::SeqCst);
        let new = now_nanos().max(old.wrapping_add(1));
        self.write_verf.store(new, Ordering::SeqCst);
        if !keep_state {
            let mut st = self.state();
            // Boot numbers must differ even for two restarts in one second.
            let boot = ((new / 1_000_000_000) as u32).max(st.boot().wrapping_add(1));
            st.reboot(boot, self.grace, Instant::now());
        }
    }

    /// Expires now the leases of the clients that registered from `addr`
    /// (all with None); returns how many.
    pub fn expire_leases(&self, addr: Option<IpAddr>) -> usize {
        self.state().expire(addr)
    }

    /// Sets the status flags every SEQUENCE reply carries from now on.
    pub fn set_sequence_flags(&self, flags: u32) {
        self.sequence_flags.store(flags, Ordering::SeqCst);
    }

    /// How many SEQUENCE replies have carried status flags.
    pub fn flagged_replies(&self) -> u64 {
        self.flagged_replies.load(Ordering::SeqCst)
    }

    /// The flags for a SEQUENCE reply being written, counted if any.
    fn sequence_flags(&self) -> u32 {
        let flags = self.sequence_flags.load(Ordering::SeqCst);
        if flags != 0 {
            self.flagged_replies.fetch_add(1, Ordering::SeqCst);
        }
        flags
    }

    fn encode_fh(&self, fh: &Fh) -> Vec<u8> {
        match fh {
            Fh::Pseudo(i) => {
                let mut b = PSEUDO_MAGIC.to_vec();
                b.extend_from_slice(&(*i as u32).to_be_bytes());
                b
            }
            Fh::Real { node, .. } => node.fh.encode(self.exports.key()),
        }
    }

    /// PUTFH: a handle from the wire, checked as NFSv3 checks it.
    fn decode_fh(&self, raw: &[u8], client: IpAddr) -> Result<Fh, Nfs4Status> {
        if raw.len() == 8 && raw[..4] == PSEUDO_MAGIC[..] {
            let i = u32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]) as usize;
            return if i < self.pseudo.dirs() {
                Ok(Fh::Pseudo(i))
            } else {
                Err(Nfs4Status::BADHANDLE)
            };
        }
        let fh = FileHandle::decode(raw, self.exports.key()).map_err(|_| Nfs4Status::BADHANDLE)?;
        let export = self.exports.by_id(fh.export_id).ok_or(Nfs4Status::STALE)?;
        match export.resolve(&fh, client) {
            Ok(node) => Ok(Fh::Real {
                export: export.id,
                node: Arc::new(node),
            }),
            Err(ResolveError::Stale) => Err(Nfs4Status::STALE),
            Err(ResolveError::Denied) => Err(Nfs4Status::ACCESS),
        }
    }

    /// The root of export `id` as a filehandle, if it is exported to `client`.
    fn export_root(&self, id: u32, client: IpAddr) -> Result<Fh, Nfs4Status> {
        let export = self.exports.by_id(id).ok_or(Nfs4Status::NOENT)?;
        if !export.is_exported() {
            return Err(Nfs4Status::NOENT);
        }
        if !export.allows(client) {
            return Err(Nfs4Status::ACCESS);
        }
        Ok(Fh::Real {
            export: id,
            node: Arc::new(export.root_node()?),
        })
    }

    fn export(&self, id: u32) -> Result<&Export, Nfs4Status> {
        self.exports.by_id(id).ok_or(Nfs4Status::STALE)
    }

    /// Acts as the caller (squashed as the export says) until the guard
    /// drops; an unsquashed root needs no switch.
    fn act_as(ctx: &CallContext<'_>, export: &Export) -> Result<Option<ActingAs>, Nfs4Status> {
        let creds = export.creds(ctx.cred);
        if creds.uid == 0 {
            return Ok(None);
        }
        ActingAs::enter(&creds).map(Some).map_err(|e| {
            tracing::warn!(error = %e, "cannot act as the caller");
            Nfs4Status::SERVERFAULT
        })
    }
}

impl Program for Nfs4 {
    fn info(&self) -> &'static ProgramInfo {
        &INFO
    }

    fn call(
        &self,
        ctx: &CallContext<'_>,
        _vers: u32,
        proc_: u32,
        args: &mut XdrReader<'_>,
        out: &mut XdrWriter,
    ) -> Result<(), CallError> {
        match proc_ {
            0 => Ok(()),
            1 => self.compound(ctx, args, out),
            _ => Err(CallError::ProcUnavail),
        }
    }

    fn export_of(&self, proc_: u32, args: &[u8]) -> Option<String> {
        let id = compound::peek_export_id(proc_, args)?;
        self.exports.by_id(id).map(|e| e.name.clone())
    }
}
