//! The MOUNT version 3 program (RFC 1813 Appendix I): NULL, MNT, DUMP, UMNT,
//! UMNTALL and EXPORT.

use std::sync::{Arc, Mutex};

use super::call::{CallContext, CallError};
use super::export::{ExportTable, normalize_name};
use super::program::{Program, ProgramInfo, status_word_reply};
use super::rpc::AUTH_SYS;
use super::xdr::{XdrReader, XdrWriter};

/// RFC 1813 Appendix I program number and version.
pub const PROGRAM: u32 = 100005;
pub const VERSION: u32 = 3;
/// RFC 1813 Appendix I: MNTPATHLEN, MNTNAMLEN.
const MNTPATHLEN: u32 = 1024;
const MNTNAMLEN: u32 = 255;

/// MOUNT's row in the program table; procedures as RFC 1813 Appendix I
/// numbers them. A hook's status reply is the bare mountstat3.
pub static INFO: ProgramInfo = ProgramInfo {
    number: PROGRAM,
    names: &["mount", "mountd"],
    versions: &[VERSION],
    procedures: &["NULL", "MNT", "DUMP", "UMNT", "UMNTALL", "EXPORT"],
    procedure_prefixes: &["MOUNTPROC3_"],
    status_reply: status_word_reply,
};

/// RFC 1813 Appendix I mountstat3
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountStat {
    Ok = 0,
    Noent = 2,
    Acces = 13,
    ServerFault = 10006,
}

/// Who mounted what, for DUMP (advisory, as in every implementation).
#[derive(Debug, Clone, PartialEq, Eq)]
struct MountEntry {
    host: String,
    dir: String,
}

#[derive(Debug)]
pub struct Mount {
    exports: Arc<ExportTable>,
    mounts: Mutex<Vec<MountEntry>>,
}

impl Mount {
    pub fn new(exports: Arc<ExportTable>) -> Mount {
        Mount {
            exports,
            mounts: Mutex::new(Vec::new()),
        }
    }

    /// The export name a MNT/UMNT call names; used to match fault rules.
    pub fn peek_dirpath(proc_: u32, args: &[u8]) -> Option<String> {
        if proc_ != 1 && proc_ != 3 {
            return None;
        }
        let path = XdrReader::new(args).string(MNTPATHLEN).ok()?;
        Some(normalize_name(&String::from_utf8_lossy(path)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<MountEntry>> {
        self.mounts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// RFC 1813 Appendix I MOUNTPROC3_MNT. An unexported export refuses the
    /// mount with MNT3ERR_ACCES, as knfsd does when the export is gone.
    fn mnt(&self, ctx: &CallContext<'_>, path: &str, out: &mut XdrWriter) {
        let name = normalize_name(path);
        let status = match self.exports.by_name(&name) {
            None => Err(MountStat::Noent),
            Some(e) if !e.is_exported() || !e.allows(ctx.client.ip()) => Err(MountStat::Acces),
            Some(e) => self
                .exports
                .root_handle(e)
                .map_err(|_| MountStat::ServerFault),
        };
        match status {
            Ok(fh) => {
                tracing::info!(client = %ctx.client, export = %name, "mount");
                out.u32(MountStat::Ok as u32);
                out.opaque(&fh);
                out.u32(1).u32(AUTH_SYS);
                let entry = MountEntry {
                    host: ctx.client.ip().to_string(),
                    dir: name,
                };
                let mut mounts = self.lock();
                if !mounts.contains(&entry) {
                    mounts.push(entry);
                }
            }
            Err(stat) => {
                tracing::info!(client = %ctx.client, export = %name, ?stat, "mount refused");
                out.u32(stat as u32);
            }
        }
    }

    /// RFC 1813 Appendix I MOUNTPROC3_DUMP: a linked list of mountbody.
    fn dump(&self, out: &mut XdrWriter) {
        for m in self.lock().iter() {
            out.bool(true);
            out.string(truncate(m.host.as_bytes(), MNTNAMLEN));
            out.string(truncate(m.dir.as_bytes(), MNTPATHLEN));
        }
        out.bool(false);
    }

    /// RFC 1813 Appendix I MOUNTPROC3_EXPORT: only currently exported entries.
    fn export_list(&self, out: &mut XdrWriter) {
        for e in self.exports.iter().filter(|e| e.is_exported()) {
            out.bool(true);
            out.string(truncate(e.name.as_bytes(), MNTPATHLEN));
            for c in e.client_names() {
                out.bool(true).string(truncate(c.as_bytes(), MNTNAMLEN));
            }
            out.bool(false);
        }
        out.bool(false);
    }
}

impl Program for Mount {
    fn info(&self) -> &'static ProgramInfo {
        &INFO
    }

    fn call(
        &self,
        ctx: &CallContext<'_>,
        _vers: u32,
        proc_: u32,
        args: &mut XdrReader<'_>,
        out: &mut XdrWriter,
    ) -> Result<(), CallError> {
        match proc_ {
            0 => Ok(()),
            1 => {
                let path = args.string(MNTPATHLEN).map_err(CallError::Garbage)?;
                self.mnt(ctx, &String::from_utf8_lossy(path), out);
                Ok(())
            }
            2 => {
                self.dump(out);
                Ok(())
            }
            3 => {
                let path = args.string(MNTPATHLEN).map_err(CallError::Garbage)?;
                let dir = normalize_name(&String::from_utf8_lossy(path));
                let host = ctx.client.ip().to_string();
                self.lock().retain(|m| !(m.host == host && m.dir == dir));
                Ok(())
            }
            4 => {
                let host = ctx.client.ip().to_string();
                self.lock().retain(|m| m.host != host);
                Ok(())
            }
            5 => {
                self.export_list(out);
                Ok(())
            }
            _ => Err(CallError::ProcUnavail),
        }
    }

    fn export_of(&self, proc_: u32, args: &[u8]) -> Option<String> {
        Mount::peek_dirpath(proc_, args)
    }
}

fn truncate(b: &[u8], max: u32) -> &[u8] {
    &b[..b.len().min(max as usize)]
}
