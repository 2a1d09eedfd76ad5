//! The contract an RPC program implements: a row of facts in the program
//! table (`ProgramInfo`, readable without a running server) and a `Program`
//! that serves calls. Dispatch routes by the row's number and versions; the
//! fault hook answers "reply with a status" through the row; scenario
//! validation, the CLI and logs name procedures from it. A new program
//! (NFSv4's COMPOUND) is one more row and one more `Program`.

use std::fmt::Debug;

use super::call::{CallContext, CallError};
use super::xdr::{XdrReader, XdrWriter};

/// Writes the result body of a call the fault hook answers with `status`
/// instead of serving it (the accepted-reply header is already written).
pub type StatusReply = fn(vers: u32, proc_: u32, args: &[u8], status: u32, out: &mut XdrWriter);

/// One program's row in `program_table::PROGRAMS`.
#[derive(Debug)]
pub struct ProgramInfo {
    /// The ONC RPC program number (RFC 5531 §9).
    pub number: u32,
    /// What people call it, lowercase, the usual name first ("mount",
    /// "mountd"); scenarios and `nfs serve` flags accept any of them.
    pub names: &'static [&'static str],
    /// The versions served; a call for another gets PROG_MISMATCH with the
    /// lowest and highest of these.
    pub versions: &'static [u32],
    /// Procedure names indexed by procedure number, spelled as the protocol
    /// document does without its prefix ("WRITE", "MNT").
    pub procedures: &'static [&'static str],
    /// Prefixes a procedure name may carry ("NFSPROC3_").
    pub procedure_prefixes: &'static [&'static str],
    /// The fault hook's "reply with a status" for this program's calls.
    pub status_reply: StatusReply,
}

impl ProgramInfo {
    /// The PROG_MISMATCH range (RFC 5531 §9: lowest and highest supported).
    pub fn version_range(&self) -> (u32, u32) {
        let low = self.versions.iter().copied().min().unwrap_or(0);
        let high = self.versions.iter().copied().max().unwrap_or(0);
        (low, high)
    }
}

/// The reply of most programs' failures: the status word alone (mountstat3,
/// and what the hook has always sent for programs without their own).
pub fn status_word_reply(_vers: u32, _proc_: u32, _args: &[u8], status: u32, out: &mut XdrWriter) {
    out.u32(status);
}

/// A program a server serves.
pub trait Program: Debug + Send + Sync {
    /// This program's row in the program table.
    fn info(&self) -> &'static ProgramInfo;

    /// Serves procedure `proc_` of version `vers` (one of `info().versions`):
    /// decodes `args`, writes the result body to `out`.
    fn call(
        &self,
        ctx: &CallContext<'_>,
        vers: u32,
        proc_: u32,
        args: &mut XdrReader<'_>,
        out: &mut XdrWriter,
    ) -> Result<(), CallError>;

    /// The export a call names (by file handle or mount path), for the fault
    /// hook to match on; `None` for calls that name none.
    fn export_of(&self, _proc: u32, _args: &[u8]) -> Option<String> {
        None
    }
}
