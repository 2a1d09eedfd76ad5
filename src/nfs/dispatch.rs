//! Routes one RPC record: parse the call header, pass the FaultHook, hand the
//! arguments to the served program the program table routes it to, keep
//! the duplicate-request cache, and build the reply.

use std::net::SocketAddr;
use std::sync::Arc;

use super::call::{CallContext, CallError, Transport};
use super::call_counts::{CallCounts, CallKey};
use super::drc::{self, DrcKey, Lookup, Pending, ReplyCache};
use super::export::ExportTable;
use super::hook::{CallInfo, FaultHook, HookDecision};
use super::mount::Mount;
use super::names;
use super::nfs3::Nfs3;
use super::nfs4::{self, Nfs4};
use super::nlm::Nlm;
use super::nsm::Nsm;
use super::portmap::{PortRegistry, Portmap};
use super::program::{Program, StatusReply, status_word_reply};
use super::program_table;
use super::rpc::{self, AcceptStat, AuthStat, Credential, RpcParseError};
use super::xdr::{XdrReader, XdrWriter};

/// What the connection must do with a record's outcome.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Reply(Vec<u8>),
    NoReply,
    Close,
}

#[derive(Debug)]
pub struct Dispatcher {
    exports: Arc<ExportTable>,
    /// The programs this server serves; each names its program table row.
    programs: Vec<Arc<dyn Program>>,
    /// Typed handles on programs the server also drives from outside a call
    /// (a restart's new write verifier, grace periods, reboots).
    nfs3: Arc<Nfs3>,
    nfs4: Arc<Nfs4>,
    nlm: Option<Arc<Nlm>>,
    nsm: Option<Arc<Nsm>>,
    hook: Arc<FaultHook>,
    drc: ReplyCache,
    counts: CallCounts,
}

impl Dispatcher {
    pub fn new(
        exports: Arc<ExportTable>,
        hook: Arc<FaultHook>,
        registry: Arc<PortRegistry>,
    ) -> Dispatcher {
        let nfs3 = Arc::new(Nfs3::new(exports.clone()));
        let nfs4 = Arc::new(Nfs4::new(exports.clone()));
        Dispatcher {
            programs: vec![
                nfs3.clone(),
                nfs4.clone(),
                Arc::new(Mount::new(exports.clone())),
                Arc::new(Portmap::new(registry)),
            ],
            nfs3,
            nfs4,
            nlm: None,
            nsm: None,
            exports,
            hook,
            drc: ReplyCache::new(drc::DEFAULT_CAPACITY),
            counts: CallCounts::default(),
        }
    }

    /// Serves NLM and NSM too (either may be absent: a client host's
    /// stand-in serves NSM but leaves NLM to the kernel's lockd). Called
    /// once, on a new dispatcher.
    pub fn with_locking(mut self, nlm: Option<Arc<Nlm>>, nsm: Option<Arc<Nsm>>) -> Dispatcher {
        if let Some(n) = &nlm {
            self.programs.push(n.clone());
        }
        if let Some(n) = &nsm {
            self.programs.push(n.clone());
        }
        self.nlm = nlm;
        self.nsm = nsm;
        self
    }

    pub fn nlm(&self) -> Option<&Arc<Nlm>> {
        self.nlm.as_ref()
    }

    pub fn nsm(&self) -> Option<&Arc<Nsm>> {
        self.nsm.as_ref()
    }

    pub fn nfs3(&self) -> &Nfs3 {
        &self.nfs3
    }

    pub fn nfs4(&self) -> &Nfs4 {
        &self.nfs4
    }

    /// The duplicate-request cache (cleared by a server restart).
    pub fn reply_cache(&self) -> &ReplyCache {
        &self.drc
    }

    pub fn exports(&self) -> &ExportTable {
        &self.exports
    }

    pub fn hook(&self) -> &FaultHook {
        &self.hook
    }

    /// The calls received so far, well formed or faulted alike.
    pub fn call_counts(&self) -> &CallCounts {
        &self.counts
    }

    /// Handles one record from `client`.
    pub fn handle(&self, record: &[u8], client: SocketAddr, transport: Transport) -> Outcome {
        let mut r = XdrReader::new(record);
        let mut w = XdrWriter::with_capacity(256);
        let call = match rpc::parse_call(&mut r) {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(%client, error = %e, "bad rpc call");
                match e {
                    RpcParseError::NoXid | RpcParseError::NotACall { .. } => {
                        return Outcome::NoReply;
                    }
                    RpcParseError::RpcMismatch { xid, .. } => rpc::rpc_mismatch_reply(&mut w, xid),
                    RpcParseError::BadCred { xid, .. } => {
                        rpc::auth_error_reply(&mut w, xid, AuthStat::BadCred)
                    }
                    RpcParseError::Garbage { xid, .. } => {
                        rpc::accepted_reply(&mut w, xid, AcceptStat::GarbageArgs)
                    }
                }
                return Outcome::Reply(w.into_bytes());
            }
        };
        if let Credential::Other(flavor) = call.cred {
            tracing::debug!(%client, flavor, "unsupported auth flavor");
            rpc::auth_error_reply(&mut w, call.xid, AuthStat::BadCred);
            return Outcome::Reply(w.into_bytes());
        }

        self.counts.record(CallKey {
            prog: call.prog,
            vers: call.vers,
            proc_: call.proc_,
        });
        let export_name = self.call_export(call.prog, call.proc_, r.rest());
        let ops = if (call.prog, call.vers, call.proc_) == (nfs4::PROGRAM, nfs4::VERSION, 1) {
            nfs4::peek_ops(r.rest())
        } else {
            Vec::new()
        };
        let info = CallInfo {
            prog: call.prog,
            vers: call.vers,
            proc_: call.proc_,
            export: export_name.as_deref(),
            client,
            ops: &ops,
        };
        let decision = self.hook.check(&info);
        if decision == HookDecision::CloseConnection {
            return Outcome::Close;
        }
        if let HookDecision::ReplyStatus(status) = decision {
            rpc::accepted_reply(&mut w, call.xid, AcceptStat::Success);
            // The table's row, served or not: a rule may answer for a
            // program this server does not run.
            let reply: StatusReply = program_table::by_number_version(call.prog, call.vers)
                .map_or(status_word_reply, |p| p.status_reply);
            reply(call.vers, call.proc_, r.rest(), status, &mut w);
            return Outcome::Reply(w.into_bytes());
        }

        // A retransmission of a changing call gets the first reply (or is
        // dropped while the first is still executing). The hook has already
        // acted on this copy, so a DropReply rule still drops the replay.
        let pending = if drc::is_non_idempotent(call.prog, call.vers, call.proc_) {
            let key = DrcKey::new(call.xid, client, call.prog, call.vers, call.proc_, r.rest());
            match self.drc.begin(key) {
                Lookup::New => Some(Pending::new(&self.drc, key)),
                Lookup::InProgress => {
                    tracing::debug!(%client, xid = call.xid, "retransmission of a call in progress dropped");
                    return Outcome::NoReply;
                }
                Lookup::Replay(reply) => {
                    tracing::debug!(%client, xid = call.xid, "retransmission answered from the reply cache");
                    if decision == HookDecision::DropReply {
                        return Outcome::NoReply;
                    }
                    return Outcome::Reply(reply.to_vec());
                }
            }
        } else {
            None
        };

        let ctx = CallContext {
            client,
            transport,
            cred: &call.cred,
        };
        rpc::accepted_reply(&mut w, call.xid, AcceptStat::Success);
        let result = self
            .route(call.prog, call.vers)
            .and_then(|p| p.call(&ctx, call.vers, call.proc_, &mut r, &mut w).map_err(Mismatch::from))
        .map_err(|e| match e {
            Mismatch::Call(CallError::ProcUnavail) => AcceptStat::ProcUnavail,
            Mismatch::Call(CallError::Garbage(err)) => {
                let procedure = names::procedure_name(call.prog, Some(call.vers), call.proc_);
                tracing::debug!(%client, prog = call.prog, %procedure, error = %err, "garbage args");
                AcceptStat::GarbageArgs
            }
            Mismatch::Version(low, high) => AcceptStat::ProgMismatch { low, high },
            Mismatch::ProgUnavail => AcceptStat::ProgUnavail,
        });
        if let Err(stat) = result {
            w.truncate(0);
            rpc::accepted_reply(&mut w, call.xid, stat);
        }
        if let Some(p) = pending {
            p.finish(w.as_bytes());
        }
        if decision == HookDecision::DropReply {
            return Outcome::NoReply;
        }
        Outcome::Reply(w.into_bytes())
    }

    /// The served program for `prog` at version `vers`; PROG_MISMATCH
    /// names the range the server's rows for `prog` cover.
    fn route(&self, prog: u32, vers: u32) -> Result<&dyn Program, Mismatch> {
        let mut range: Option<(u32, u32)> = None;
        for p in &self.programs {
            let info = p.info();
            if info.number != prog {
                continue;
            }
            if info.versions.contains(&vers) {
                return Ok(p.as_ref());
            }
            let (low, high) = info.version_range();
            range = Some(range.map_or((low, high), |(l, h)| (l.min(low), h.max(high))));
        }
        Err(range.map_or(Mismatch::ProgUnavail, |(low, high)| {
            Mismatch::Version(low, high)
        }))
    }

    /// The export a call names, for fault matching: asked of the first
    /// served program with that number, whatever the call's version.
    fn call_export(&self, prog: u32, proc_: u32, args: &[u8]) -> Option<String> {
        let program = self.programs.iter().find(|p| p.info().number == prog)?;
        program.export_of(proc_, args)
    }
}

/// Why a call was not routed to a procedure.
enum Mismatch {
    Call(CallError),
    Version(u32, u32),
    ProgUnavail,
}

impl From<CallError> for Mismatch {
    fn from(e: CallError) -> Self {
        Mismatch::Call(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nfs::export::{ExportSpec, Squash};
    use crate::nfs::nfs3;
    use crate::nfs::rpc::AuthSys;

    /// xorshift64: a fixed, dependency-free source of mutations.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    /// PROG_UNAVAIL and PROG_MISMATCH ranges as the match on program and
    /// version that the table replaced answered them.
    #[test]
    fn routing_follows_the_served_programs_rows() {
        use crate::nfs::nlm::LockConfig;
        use crate::nfs::{mount, nlm, nsm, portmap};
        let exports = Arc::new(ExportTable::new(&[]).unwrap());
        let registry = Arc::new(PortRegistry::new());
        let d = Dispatcher::new(exports, Arc::new(FaultHook::new()), registry);
        let version = |d: &Dispatcher, prog, vers| match d.route(prog, vers) {
            Ok(p) => Ok(p.info().number),
            Err(Mismatch::Version(low, high)) => Err(Some((low, high))),
            Err(_) => Err(None),
        };
        assert_eq!(version(&d, nfs3::PROGRAM, 3), Ok(nfs3::PROGRAM));
        // NFS's two rows together cover 3 to 4.
        assert_eq!(version(&d, nfs3::PROGRAM, 2), Err(Some((3, 4))));
        assert_eq!(version(&d, nfs3::PROGRAM, 4), Ok(nfs3::PROGRAM));
        assert_eq!(version(&d, mount::PROGRAM, 1), Err(Some((3, 3))));
        assert_eq!(version(&d, portmap::PROGRAM, 3), Ok(portmap::PROGRAM));
        assert_eq!(version(&d, portmap::PROGRAM, 5), Err(Some((2, 4))));
        assert_eq!(version(&d, nlm::PROGRAM, 4), Err(None), "nlm not served");
        assert_eq!(version(&d, 123_456, 1), Err(None));

        let nlm = Arc::new(nlm::Nlm::new(
            LockConfig::default(),
            "127.0.0.1".parse().unwrap(),
        ));
        let d = d.with_locking(Some(nlm), None);
        assert_eq!(version(&d, nlm::PROGRAM, 3), Ok(nlm::PROGRAM));
        assert_eq!(version(&d, nlm::PROGRAM, 2), Err(Some((1, 4))));
        assert_eq!(version(&d, nsm::PROGRAM, 1), Err(None), "nsm not served");
    }

    #[test]
    fn as_root_mutated_records_never_panic_and_calls_still_work() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"data").unwrap();
        let exports = Arc::new(
            ExportTable::new(&[ExportSpec {
                name: "/export".into(),
                dir: dir.path().to_path_buf(),
                clients: vec![],
                read_only: false,
                squash: Squash::NoRootSquash,
            }])
            .unwrap(),
        );
        let d = Dispatcher::new(
            exports.clone(),
            Arc::new(FaultHook::new()),
            Arc::new(PortRegistry::new()),
        );
        let client: SocketAddr = "127.0.0.1:800".parse().unwrap();
        let root = exports
            .root_handle(exports.by_name("/export").unwrap())
            .unwrap();
        let cred = Credential::Sys(AuthSys {
            uid: 0,
            ..AuthSys::default()
        });
        // One valid call per NFSv3 procedure (a handle, a name, some words).
        let mut seeds = Vec::new();
        for proc_ in 0..22 {
            let mut w = XdrWriter::new();
            rpc::encode_call(&mut w, proc_, nfs3::PROGRAM, 3, proc_, &cred);
            w.opaque(&root)
                .string(b"f")
                .u32(0)
                .u64(0)
                .u32(4)
                .opaque(b"abcd");
            seeds.push(w.into_bytes());
        }
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..20_000 {
            let mut rec = seeds[i % seeds.len()].clone();
            for _ in 0..1 + next(&mut state) % 4 {
                let pos = (next(&mut state) as usize) % rec.len();
                match next(&mut state) % 3 {
                    0 => rec[pos] = next(&mut state) as u8,
                    1 => rec.truncate(pos),
                    _ => rec[pos..].iter_mut().take(4).for_each(|b| *b = 0xff),
                }
                if rec.is_empty() {
                    break;
                }
            }
            let _ = d.handle(&rec, client, Transport::Tcp);
        }
        // The server state is intact: GETATTR on the root still answers OK.
        let mut w = XdrWriter::new();
        rpc::encode_call(&mut w, 1, nfs3::PROGRAM, 3, 1, &cred);
        w.opaque(&root);
        let Outcome::Reply(reply) = d.handle(w.as_bytes(), client, Transport::Tcp) else {
            panic!("no reply");
        };
        let mut r = XdrReader::new(&reply);
        assert_eq!(
            rpc::parse_reply(&mut r).unwrap(),
            rpc::ReplyHeader::Accepted {
                xid: 1,
                stat: AcceptStat::Success
            }
        );
        assert_eq!(r.u32().unwrap(), 0);
    }
}
