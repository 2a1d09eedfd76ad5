//! What every RPC procedure gets besides its arguments and how it can fail,
//! below both `dispatch` and the programs so that neither imports the other.

use std::net::SocketAddr;

use super::rpc::Credential;
use super::xdr::XdrError;

/// The transport a call arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Tcp,
    Udp,
}

impl Transport {
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
