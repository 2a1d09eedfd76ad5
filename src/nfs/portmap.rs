//! The portmapper, version 2 (RFC 1833 §3): answers GETPORT and DUMP for the
//! programs this server serves on its one TCP port. SET/UNSET are refused:
//! nobody else registers with us.

use super::dispatch::CallError;
use super::xdr::{XdrReader, XdrWriter};
use super::{mount, nfs3};

/// RFC 1833 §3 program number and version.
pub const PROGRAM: u32 = 100000;
pub const VERSION: u32 = 2;
pub const IPPROTO_TCP: u32 = 6;
pub const IPPROTO_UDP: u32 = 17;

/// RFC 1833 §3 mapping
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    pub prog: u32,
    pub vers: u32,
    pub prot: u32,
    pub port: u32,
}

#[derive(Debug)]
pub struct Portmap {
    mappings: Vec<Mapping>,
}

impl Portmap {
    pub fn new(tcp_port: u16, udp_port: Option<u16>) -> Portmap {
        let mut mappings = Vec::new();
        let transports = [(IPPROTO_TCP, Some(tcp_port)), (IPPROTO_UDP, udp_port)];
        for (prot, port) in transports {
            let Some(port) = port else { continue };
            for (prog, vers) in [
                (PROGRAM, VERSION),
                (nfs3::PROGRAM, nfs3::VERSION),
                (mount::PROGRAM, mount::VERSION),
            ] {
                mappings.push(Mapping {
                    prog,
                    vers,
                    prot,
                    port: port as u32,
                });
            }
        }
        Portmap { mappings }
    }

    pub fn call(
        &self,
        proc_: u32,
        args: &mut XdrReader<'_>,
        out: &mut XdrWriter,
    ) -> Result<(), CallError> {
        match proc_ {
            0 => Ok(()),
            // PMAPPROC_SET / UNSET: registration is not offered.
            1 | 2 => {
                for _ in 0..4 {
                    args.u32().map_err(CallError::Garbage)?;
                }
                out.bool(false);
                Ok(())
            }
            3 => {
                let mut g = || args.u32().map_err(CallError::Garbage);
                let (prog, vers, prot, _port) = (g()?, g()?, g()?, g()?);
                let port = self
                    .mappings
                    .iter()
                    .find(|m| m.prog == prog && m.vers == vers && m.prot == prot)
                    .map_or(0, |m| m.port);
                out.u32(port);
                Ok(())
            }
            4 => {
                for m in &self.mappings {
                    out.bool(true)
                        .u32(m.prog)
                        .u32(m.vers)
                        .u32(m.prot)
                        .u32(m.port);
                }
                out.bool(false);
                Ok(())
            }
            _ => Err(CallError::ProcUnavail),
        }
    }
}
