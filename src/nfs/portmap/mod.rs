//! The portmapper / rpcbind program (RFC 1833): version 2 (PMAPPROC SET,
//! UNSET, GETPORT, DUMP) and versions 3 and 4 (RPCBPROC SET, UNSET, GETADDR,
//! DUMP, GETTIME, and v4's GETVERSADDR and GETADDRLIST) over one registry,
//! so other programs (our NLM/NSM, or a real rpc.statd in the namespace) can
//! register next to NFS and MOUNT.

mod registry;

use std::time::{SystemTime, UNIX_EPOCH};

pub use registry::{
    MAX_REGISTRATIONS, PortRegistry, Registration, ipproto, netid, parse_uaddr, uaddr,
};

use super::call::{CallContext, CallError};
use super::program::{Program, ProgramInfo, status_word_reply};
use super::xdr::{XdrError, XdrReader, XdrWriter};

/// RFC 1833 program number and the versions served.
pub const PROGRAM: u32 = 100000;
pub const VERSION: u32 = 2;
pub const MIN_VERSION: u32 = 2;
pub const MAX_VERSION: u32 = 4;
pub const IPPROTO_TCP: u32 = 6;
pub const IPPROTO_UDP: u32 = 17;
/// Bounds on rpcb strings; RFC 1833 sets none, real ones are short.
const MAX_NETID: u32 = 64;
const MAX_ADDR: u32 = 256;
const MAX_OWNER: u32 = 256;
/// RFC 1833 §2.1 / TLI semantics for rpcb_entry (GETADDRLIST).
const NC_TPI_CLTS: u32 = 1;
const NC_TPI_COTS_ORD: u32 = 3;

/// The portmapper's row in the program table. Procedures are named as
/// version 2 names them (RFC 1833 §3.2) for all three versions: rpcbind
/// keeps the numbers for the same roles (GETADDR is GETPORT's 3).
pub static INFO: ProgramInfo = ProgramInfo {
    number: PROGRAM,
    names: &["portmap", "rpcbind"],
    versions: &[MIN_VERSION, 3, MAX_VERSION],
    procedures: &["NULL", "SET", "UNSET", "GETPORT", "DUMP", "CALLIT"],
    procedure_prefixes: &["PMAPPROC_"],
    status_reply: status_word_reply,
};

/// RFC 1833 §3 mapping (version 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    pub prog: u32,
    pub vers: u32,
    pub prot: u32,
    pub port: u32,
}

fn garbage(e: XdrError) -> CallError {
    CallError::Garbage(e)
}

fn get_mapping(r: &mut XdrReader<'_>) -> Result<Mapping, CallError> {
    let mut g = || r.u32().map_err(garbage);
    Ok(Mapping {
        prog: g()?,
        vers: g()?,
        prot: g()?,
        port: g()?,
    })
}

fn get_rpcb(r: &mut XdrReader<'_>) -> Result<Registration, CallError> {
    let prog = r.u32().map_err(garbage)?;
    let vers = r.u32().map_err(garbage)?;
    let mut s = |max| {
        r.string(max)
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .map_err(garbage)
    };
    Ok(Registration {
        prog,
        vers,
        netid: s(MAX_NETID)?,
        addr: s(MAX_ADDR)?,
        owner: s(MAX_OWNER)?,
    })
}

fn put_rpcb(w: &mut XdrWriter, r: &Registration) {
    w.u32(r.prog)
        .u32(r.vers)
        .string(r.netid.as_bytes())
        .string(r.addr.as_bytes())
        .string(r.owner.as_bytes());
}

/// Only callers on this host may change the table, as rpcbind allows SET and
/// UNSET only over loopback or its local socket.
fn may_register(ctx: &CallContext<'_>) -> bool {
    match ctx.client.ip() {
        std::net::IpAddr::V4(a) => a.is_loopback(),
        std::net::IpAddr::V6(a) => {
            a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

#[derive(Debug)]
pub struct Portmap {
    registry: std::sync::Arc<PortRegistry>,
}

impl Portmap {
    pub fn new(registry: std::sync::Arc<PortRegistry>) -> Portmap {
        Portmap { registry }
    }

    /// RFC 1833 §3.2
    fn call_v2(
        &self,
        ctx: &CallContext<'_>,
        proc_: u32,
        args: &mut XdrReader<'_>,
        out: &mut XdrWriter,
    ) -> Result<(), CallError> {
        match proc_ {
            0 => {}
            1 => {
                let m = get_mapping(args)?;
                let ok = may_register(ctx)
                    && u16::try_from(m.port).is_ok()
                    && match m.prot {
                        IPPROTO_TCP | IPPROTO_UDP => {
                            let addr = std::net::SocketAddr::new(
                                std::net::Ipv4Addr::UNSPECIFIED.into(),
                                m.port as u16,
                            );
                            self.registry.set(Registration::new(
                                m.prog,
                                m.vers,
                                netid(m.prot, &addr),
                                addr,
                                "unknown",
                            ))
                        }
                        _ => false,
                    };
                out.bool(ok);
            }
            2 => {
                // "The protocol and port number fields of the argument are
                // ignored": every IPv4 transport of (prog, vers) goes.
                let m = get_mapping(args)?;
                let ok = may_register(ctx)
                    && [
                        self.registry.unset(m.prog, m.vers, Some("tcp")),
                        self.registry.unset(m.prog, m.vers, Some("udp")),
                    ]
                    .contains(&true);
                out.bool(ok);
            }
            3 => {
                let m = get_mapping(args)?;
                let port = ipproto_netid(m.prot)
                    .and_then(|n| self.registry.lookup(m.prog, m.vers, n))
                    .and_then(|r| parse_uaddr(&r.addr))
                    .map_or(0, |a| a.port() as u32);
                out.u32(port);
            }
            4 => {
                for r in self.registry.list() {
                    let (Some(prot), Some(addr)) = (ipproto(&r.netid), parse_uaddr(&r.addr)) else {
                        continue;
                    };
                    out.bool(true)
                        .u32(r.prog)
                        .u32(r.vers)
                        .u32(prot)
                        .u32(addr.port() as u32);
                }
                out.bool(false);
            }
            _ => return Err(CallError::ProcUnavail),
        }
        Ok(())
    }

    /// RFC 1833 §2.2 (version 3) and §2.3 (version 4).
    fn call_rpcb(
        &self,
        ctx: &CallContext<'_>,
        vers: u32,
        proc_: u32,
        args: &mut XdrReader<'_>,
        out: &mut XdrWriter,
    ) -> Result<(), CallError> {
        match (proc_, vers) {
            (0, _) => {}
            (1, _) => {
                let reg = get_rpcb(args)?;
                out.bool(may_register(ctx) && self.registry.set(reg));
            }
            (2, _) => {
                let reg = get_rpcb(args)?;
                let netid = (!reg.netid.is_empty()).then_some(reg.netid.as_str());
                out.bool(may_register(ctx) && self.registry.unset(reg.prog, reg.vers, netid));
            }
            // GETADDR, and v4's GETVERSADDR: an empty netid means the
            // transport the question came on; not found is "".
            (3, _) | (10, 4) => {
                let reg = get_rpcb(args)?;
                let netid = if reg.netid.is_empty() {
                    netid(ctx.transport.ipproto(), &ctx.client).to_string()
                } else {
                    reg.netid
                };
                let addr = self
                    .registry
                    .lookup(reg.prog, reg.vers, &netid)
                    .map(|r| r.addr)
                    .unwrap_or_default();
                out.string(addr.as_bytes());
            }
            (4, _) => {
                for r in self.registry.list() {
                    out.bool(true);
                    put_rpcb(out, &r);
                }
                out.bool(false);
            }
            (6, _) => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as u32);
                out.u32(now);
            }
            // GETADDRLIST: every transport (prog, vers) is registered on.
            (12, 4) => {
                let reg = get_rpcb(args)?;
                for r in self.registry.list() {
                    if r.prog != reg.prog || r.vers != reg.vers {
                        continue;
                    }
                    let (semantics, proto) = match r.netid.as_str() {
                        "tcp" | "tcp6" => (NC_TPI_COTS_ORD, "tcp"),
                        "udp" | "udp6" => (NC_TPI_CLTS, "udp"),
                        _ => continue,
                    };
                    let family = if r.netid.ends_with('6') {
                        "inet6"
                    } else {
                        "inet"
                    };
                    out.bool(true)
                        .string(r.addr.as_bytes())
                        .string(r.netid.as_bytes())
                        .u32(semantics)
                        .string(family.as_bytes())
                        .string(proto.as_bytes());
                }
                out.bool(false);
            }
            _ => return Err(CallError::ProcUnavail),
        }
        Ok(())
    }
}

impl Program for Portmap {
    fn info(&self) -> &'static ProgramInfo {
        &INFO
    }

    fn call(
        &self,
        ctx: &CallContext<'_>,
        vers: u32,
        proc_: u32,
        args: &mut XdrReader<'_>,
        out: &mut XdrWriter,
    ) -> Result<(), CallError> {
        if vers == 2 {
            self.call_v2(ctx, proc_, args, out)
        } else {
            self.call_rpcb(ctx, vers, proc_, args, out)
        }
    }
}

fn ipproto_netid(prot: u32) -> Option<&'static str> {
    match prot {
        IPPROTO_TCP => Some("tcp"),
        IPPROTO_UDP => Some("udp"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nfs::call::Transport;
    use crate::nfs::rpc::Credential;
    use std::sync::Arc;

    #[test]
    fn remote_callers_cannot_change_the_table() {
        let registry = Arc::new(PortRegistry::new());
        let pm = Portmap::new(registry.clone());
        let cred = Credential::None;
        let mut set = XdrWriter::new();
        set.u32(100024).u32(1).u32(IPPROTO_UDP).u32(4000);
        for (client, allowed) in [("10.0.0.2:700", false), ("[::ffff:127.0.0.1]:700", true)] {
            let ctx = CallContext {
                client: client.parse().unwrap(),
                transport: Transport::Udp,
                cred: &cred,
            };
            let mut out = XdrWriter::new();
            pm.call(&ctx, 2, 1, &mut XdrReader::new(set.as_bytes()), &mut out)
                .unwrap();
            assert_eq!(out.as_bytes(), &(allowed as u32).to_be_bytes(), "{client}");
        }
        assert_eq!(registry.list().len(), 1);
    }
}
