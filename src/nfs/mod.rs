//! The in-process NFS server: XDR, ONC RPC, MOUNT v3, NFSv3, a portmapper
//! and the fault hook in front of dispatch.
//!
//! One module per RPC program (`mount`, `nfs3`, `nfs4`, `portmap`, `nlm`, `nsm`),
//! each a `program::Program` with a row in `program_table`; `call` is what
//! a procedure gets and returns; `rpc` and `xdr` are the wire layers;
//! `dispatch` routes a record through the `hook` to a program; `names`
//! reads the table for people; `server` owns the listener and connection
//! threads; `peer` makes the callbacks NLM and NSM send to other hosts.

pub mod call;
pub mod call_counts;
pub mod client;
pub mod control;
pub mod daemon_ns;
pub mod dispatch;
pub mod drc;
pub mod export;
pub mod fnv;
pub mod fuzz;
pub mod handle;
pub mod hook;
pub mod knfsd;
pub mod mount;
pub mod names;
pub mod nfs3;
pub mod nfs4;
pub mod nlm;
pub mod nsm;
pub mod open_files;
pub mod pcap;
pub mod peer;
pub mod portmap;
pub mod program;
pub mod program_table;
pub mod rpc;
pub mod server;
pub mod workers;
pub mod xdr;

use std::path::PathBuf;

pub use call::Transport;
pub use export::ExportSpec;
pub use hook::{CallMatch, FaultAction, FaultHook, FaultRule, RuleCounts, RuleId};
pub use nlm::LockConfig;
pub use server::{ConnectionLimits, Listeners, NfsServer, RestartOptions, ServerConfig};

/// Errors of the NFS server's control plane (never of a client's call: those
/// are answered on the wire).
#[derive(Debug, thiserror::Error)]
pub enum NfsError {
    #[error("export directory {dir}: {source}")]
    ExportDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot export {dir}: {what}: {source}")]
    ExportUnsupported {
        dir: PathBuf,
        what: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    BadCidr(#[from] crate::addr::CidrError),
    #[error("export {0} listed twice")]
    DuplicateExport(String),
    #[error("no export named {0}")]
    UnknownExport(String),
    #[error("nfs listener {what}: {source}")]
    Listener {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("pcap {path}: {source}")]
    Pcap {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("control socket {path}: {source}")]
    Control {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("this server does not serve {0}")]
    NotServed(&'static str),
    #[error("spawning nfs thread: {0}")]
    Spawn(std::io::Error),
}
