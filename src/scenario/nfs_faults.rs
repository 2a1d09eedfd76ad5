//! The `nfs.*` call faults as a scenario writes them: one shared `match:`
//! (which calls of the in-process server) and per fault what happens to
//! them. The engine turns them into `nfs::FaultRule`s (src/fault/nfs_call.rs).

use super::model::Ref;
use super::steps::Fault;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

/// Which calls a rule applies to; every field left out matches anything.
/// `procedure` alone names NFSv3 procedures first, then MOUNT's (`MNT`);
/// other programs' procedures need `program`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NfsCallMatch {
    /// `nfs`, `mount`, `portmap`, `nlm`, `nsm`, or an RPC program number.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub program: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub version: Option<Spanned<u32>>,
    /// A procedure name (`WRITE`, `GETATTR`, `MNT`, any case).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub procedure: Option<Spanned<String>>,
    /// An export of the server; calls whose handle or mount path names it.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub export: Option<Ref>,
    /// The client address or network (`10.77.0.2`, `10.77.0.0/24`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub client: Option<Spanned<String>>,
    /// Act only on the N-th matching call (1-based); every one if absent.
    #[serde(default)]
    #[schemars(with = "Option<u64>")]
    pub nth: Option<Spanned<u64>>,
}

impl Fault {
    /// The server and `match:` of a call fault (`nfs.delay`, `nfs.stall`,
    /// `nfs.drop`, `nfs.close`, `nfs.error`).
    pub fn nfs_call(&self) -> Option<(&Ref, &NfsCallMatch)> {
        match self {
            Fault::NfsDelay { server, match_, .. }
            | Fault::NfsStall { server, match_ }
            | Fault::NfsDrop { server, match_ }
            | Fault::NfsClose { server, match_ }
            | Fault::NfsError { server, match_, .. } => Some((server, match_)),
            _ => None,
        }
    }
}
