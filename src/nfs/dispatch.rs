//! Routes one RPC record: parse the call header, pass the FaultHook, hand the
//! arguments to the program (portmap, MOUNT, NFSv3, NLM, NSM) and build the
//! reply.

use std::net::SocketAddr;
use std::sync::Arc;

use super::drc::{self, DrcKey, Lookup, Pending, ReplyCache};
use super::export::ExportTable;
use super::hook::{CallInfo, FaultHook, HookDecision};
use super::mount::{self, Mount};
use super::nfs3::{self, Nfs3, Nfs3Status};
use super::nlm::{self, Nlm};
use super::nsm::{self, Nsm};
use super::portmap::{self, PortRegistry, Portmap};
use super::rpc::{self, AcceptStat, AuthStat, Credential, RpcParseError};
use super::xdr::{XdrError, XdrReader, XdrWriter};

/// The transport a call arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Tcp,
    Udp,
}

impl Transport {
    /// The largest READ/WRITE payload that fits this transport's replies: a
    /// UDP datagram carries at most 65507 bytes, so UDP gets 32 KiB as
    /// knfsd gives it; TCP gets the full `nfs3::MAX_IO`.
    pub fn max_io(self) -> u32 {
        match self {
            Transport::Tcp => nfs3::MAX_IO,
            Transport::Udp => 32 * 1024,
        }
    }

    /// IANA protocol number, as the portmapper names transports.
    pub fn ipproto(self) -> u32 {
        match self {
            Transport::Tcp => 6,
            Transport::Udp => 17,
        }
    }
}

/// What every procedure gets besides its arguments.
#[derive(Debug, Clone, Copy)]
pub struct CallContext<'a> {
    pub client: SocketAddr,
    pub transport: Transport,
    pub cred: &'a Credential,
}

/// A call that cannot be answered with a procedure result.
#[derive(Debug)]
pub enum CallError {
    ProcUnavail,
    Garbage(XdrError),
}

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
    nfs3: Nfs3,
    mount: Mount,
    portmap: Portmap,
    hook: Arc<FaultHook>,
    drc: ReplyCache,
    nlm: Option<Arc<Nlm>>,
    nsm: Option<Arc<Nsm>>,
}

impl Dispatcher {
    pub fn new(
        exports: Arc<ExportTable>,
        hook: Arc<FaultHook>,
        registry: Arc<PortRegistry>,
    ) -> Dispatcher {
        Dispatcher {
            nfs3: Nfs3::new(exports.clone()),
            mount: Mount::new(exports.clone()),
            portmap: Portmap::new(registry),
            exports,
            hook,
            drc: ReplyCache::new(drc::DEFAULT_CAPACITY),
            nlm: None,
            nsm: None,
        }
    }

    /// Serves NLM and NSM too (either may be absent: a client host's
    /// stand-in serves NSM but leaves NLM to the kernel's lockd).
    pub fn with_locking(mut self, nlm: Option<Arc<Nlm>>, nsm: Option<Arc<Nsm>>) -> Dispatcher {
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

        let export_name = self.call_export(call.prog, call.proc_, r.rest());
        let info = CallInfo {
            prog: call.prog,
            vers: call.vers,
            proc_: call.proc_,
            export: export_name.as_deref(),
            client,
        };
        let decision = self.hook.check(&info);
        if decision == HookDecision::CloseConnection {
            return Outcome::Close;
        }
        if let HookDecision::ReplyStatus(status) = decision {
            rpc::accepted_reply(&mut w, call.xid, AcceptStat::Success);
            if call.prog == nfs3::PROGRAM {
                nfs3::encode_failure(call.proc_, Nfs3Status(status), &mut w);
            } else if call.prog == nlm::PROGRAM {
                nlm::encode_failure(call.vers, r.rest(), status, &mut w);
            } else {
                mount::encode_failure(status, &mut w);
            }
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
        let result = match (call.prog, call.vers) {
            (nfs3::PROGRAM, nfs3::VERSION) => self.nfs3.call(&ctx, call.proc_, &mut r, &mut w).map_err(Mismatch::from),
            (mount::PROGRAM, mount::VERSION) => self.mount.call(&ctx, call.proc_, &mut r, &mut w).map_err(Mismatch::from),
            (portmap::PROGRAM, portmap::MIN_VERSION..=portmap::MAX_VERSION) => self.portmap.call(&ctx, call.vers, call.proc_, &mut r, &mut w).map_err(Mismatch::from),
            (nlm::PROGRAM, 1 | 3 | 4) if self.nlm.is_some() => self.nlm.as_ref().map_or(Ok(()), |n| n.call(&ctx, call.vers, call.proc_, &mut r, &mut w)).map_err(Mismatch::from),
            (nsm::PROGRAM, nsm::VERSION) if self.nsm.is_some() => self.nsm.as_ref().map_or(Ok(()), |n| n.call(&ctx, call.proc_, &mut r, &mut w)).map_err(Mismatch::from),
            (nlm::PROGRAM, _) if self.nlm.is_some() => Err(Mismatch::Version(1, 4)),
            (nsm::PROGRAM, _) if self.nsm.is_some() => Err(mismatch(nsm::VERSION)),
            (nfs3::PROGRAM, _) => Err(mismatch(nfs3::VERSION)),
            (mount::PROGRAM, _) => Err(mismatch(mount::VERSION)),
            (portmap::PROGRAM, _) => Err(Mismatch::Version(portmap::MIN_VERSION, portmap::MAX_VERSION)),
            _ => Err(Mismatch::ProgUnavail),
        }
        .map_err(|e| match e {
            Mismatch::Call(CallError::ProcUnavail) => AcceptStat::ProcUnavail,
            Mismatch::Call(CallError::Garbage(err)) => {
                tracing::debug!(%client, prog = call.prog, proc_ = call.proc_, error = %err, "garbage args");
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

    /// The export a call names, for fault matching.
    fn call_export(&self, prog: u32, proc_: u32, args: &[u8]) -> Option<String> {
        match prog {
            nfs3::PROGRAM => {
                let id = nfs3::peek_export_id(proc_, args)?;
                self.exports.by_id(id).map(|e| e.name.clone())
            }
            mount::PROGRAM => Mount::peek_dirpath(proc_, args),
            _ => None,
        }
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

fn mismatch(v: u32) -> Mismatch {
    Mismatch::Version(v, v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nfs::export::{ExportSpec, Squash};
    use crate::nfs::rpc::AuthSys;

    /// xorshift64: a fixed, dependency-free source of mutations.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn mutated_records_never_panic_and_calls_still_work() {
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
