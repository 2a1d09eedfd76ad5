//! Network namespaces, veth links, bridges, VLANs, addresses, MTUs, netem
//! and the run's firewall.
//!
//! Links and addresses go through iproute2 (`ip -n <netns> …`) behind this
//! API; dependencies.md plans rtnetlink, and only `ip.rs` would change.

mod firewall;
mod ip;
mod link;
mod netem;
mod netns;
mod spawn;
mod tune;
mod veth;

use std::path::PathBuf;

pub use firewall::{
    Action, Delayer, Element, ExpiringFirewall, Firewall, FirewallBackend, Match, Protocol, Rule,
    RuleId, delete_nft_table, parse_expiring_elements, remove_iptables_chain,
};
pub use ip::{add_address, ip_output, route_via, set_mtu, set_up};
pub use link::{Bridge, Vlan, delete_link};
pub use netem::{Netem, NetemSpec, QdiscStats};
pub use netns::{Netns, delete_netns};
pub use spawn::{command_at, command_in, tcp_listener_in};
pub use tune::{LinkStats, MtuChange, SIZE_HIDING_OFFLOADS, link_stats, set_offloads};
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
    /// ip, tc, nft, iptables or ethtool failed (or could not start).
    #[error(transparent)]
    Command(#[from] crate::tools::CommandError),
    #[error("interface name {name:?} is not 1..=15 bytes of [A-Za-z0-9_.-]")]
    BadIfname { name: String },
    #[error("no rule {rule} in the firewall of netns {netns}")]
    UnknownRule { netns: String, rule: u32 },
    #[error("firewall rule {rule} is not possible: {why}")]
    BadRule { rule: String, why: String },
    #[error("cannot hold the packets of NFQUEUE queue {queue} (nfnetlink_queue): {source}")]
    Delayer { queue: u16, source: std::io::Error },
    #[error("cannot read the output of `{command}`: {why}")]
    BadOutput { command: String, why: String },
    #[error("{what} already exists in netns {netns}; a run never adopts one")]
    Exists { what: String, netns: String },
    #[error(
        "nft is not installed; staging needs nftables: its cuts are set elements \
         with timeouts that expire even if stackquake is killed, which iptables cannot do"
    )]
    NoNft,
    #[error("cannot bind {addr} in netns {netns}")]
    Bind {
        addr: std::net::SocketAddr,
        netns: String,
        source: std::io::Error,
    },
}
