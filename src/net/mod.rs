//! Network namespaces, veth links, addresses and MTUs.
//!
//! Links and addresses go through iproute2 (`ip -n <netns> …`) behind this
//! API; dependencies.md plans rtnetlink, and only `ip.rs` would change.

mod ip;
mod netns;
mod spawn;
mod veth;

use std::path::PathBuf;

pub use ip::{add_address, set_mtu, set_up};
pub use netns::Netns;
pub use spawn::{command_in, tcp_listener_in};
pub use veth::{IFNAMSIZ_MAX, VethPair, link_ifname};

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("cannot record {what} in the ledger")]
    Ledger {
        what: String,
        source: crate::ledger::LedgerError,
    },
    #[error("cannot create netns {name}")]
    CreateNetns {
        name: String,
        source: std::io::Error,
    },
    #[error("cannot delete netns {name}")]
    DeleteNetns {
        name: String,
        source: std::io::Error,
    },
    #[error("cannot open netns {path}")]
    OpenNetns {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot enter netns {name}")]
    EnterNetns {
        name: String,
        source: std::io::Error,
    },
    #[error("thread inside netns {name} panicked")]
    ThreadPanicked { name: String },
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("cannot run `{command}`")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("interface name {name:?} is not 1..=15 bytes of [A-Za-z0-9_.-]")]
    BadIfname { name: String },
    #[error("cannot bind {addr} in netns {netns}")]
    Bind {
        addr: std::net::SocketAddr,
        netns: String,
        source: std::io::Error,
    },
}
