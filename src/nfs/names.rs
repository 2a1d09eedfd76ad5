//! Program, procedure and status names for people ("nfs", "WRITE", "MNT",
//! "NFS3ERR_IO") to and from their numbers. Programs and procedures come
//! from the program table, so scenarios, `nfs serve` flags, the control
//! socket and logs name them alike; statuses are nfsstat3 (RFC 1813 §2.5),
//! what the fault hook's "reply with a status" sends.

use super::program_table::{self, PROGRAMS};
use super::{mount, nfs3, nfs4};

/// Programs whose procedures a scenario may name without the program, in
/// the order tried: NFSv3 first, so `NULL` is NFS's.
const UNQUALIFIED: [u32; 2] = [nfs3::PROGRAM, mount::PROGRAM];

const NFS3_STATUSES: [(&str, u32); 28] = [
    ("NFS3_OK", 0),
    ("NFS3ERR_PERM", 1),
    ("NFS3ERR_NOENT", 2),
    ("NFS3ERR_IO", 5),
    ("NFS3ERR_NXIO", 6),
    ("NFS3ERR_ACCES", 13),
    ("NFS3ERR_EXIST", 17),
    ("NFS3ERR_XDEV", 18),
    ("NFS3ERR_NODEV", 19),
    ("NFS3ERR_NOTDIR", 20),
    ("NFS3ERR_ISDIR", 21),
    ("NFS3ERR_INVAL", 22),
    ("NFS3ERR_FBIG", 27),
    ("NFS3ERR_NOSPC", 28),
    ("NFS3ERR_ROFS", 30),
    ("NFS3ERR_MLINK", 31),
    ("NFS3ERR_NAMETOOLONG", 63),
    ("NFS3ERR_NOTEMPTY", 66),
    ("NFS3ERR_DQUOT", 69),
    ("NFS3ERR_STALE", 70),
    ("NFS3ERR_REMOTE", 71),
    ("NFS3ERR_BADHANDLE", 10001),
    ("NFS3ERR_NOT_SYNC", 10002),
    ("NFS3ERR_BAD_COOKIE", 10003),
    ("NFS3ERR_NOTSUPP", 10004),
    ("NFS3ERR_TOOSMALL", 10005),
    ("NFS3ERR_SERVERFAULT", 10006),
    ("NFS3ERR_JUKEBOX", 10008),
];

/// A program by name ("nfs", "mount", "portmap"/"rpcbind") or number.
pub fn program(name: &str) -> Option<u32> {
    program_table::by_name(name)
        .map(|p| p.number)
        .or_else(|| name.parse().ok())
}

fn procs(prog: u32) -> &'static [&'static str] {
    program_table::by_number(prog).map_or(&[], |p| p.procedures)
}

/// A procedure of `prog` by name (any case, with or without a known
/// program's prefix such as "NFSPROC3_" or "MOUNTPROC3_") or number.
pub fn procedure(prog: u32, name: &str) -> Option<u32> {
    if let Ok(n) = name.parse() {
        return Some(n);
    }
    let upper = name.to_ascii_uppercase();
    let bare = PROGRAMS
        .iter()
        .flat_map(|p| p.procedure_prefixes)
        .find_map(|prefix| upper.strip_prefix(prefix))
        .unwrap_or(&upper);
    procs(prog)
        .iter()
        .position(|p| *p == bare)
        .map(|i| i as u32)
}

/// The procedure names of `prog` (empty for a program this server does not
/// know), for validation hints.
pub fn procedure_names(prog: u32) -> &'static [&'static str] {
    procs(prog)
}

/// A procedure named without its program, as a scenario's `match:` may:
/// NFSv3 first, then MOUNT (so `NULL` is NFS's; MOUNT's NULL needs
/// `program: mount`). Numbers are not accepted here: they are ambiguous.
pub fn procedure_any(name: &str) -> Option<(u32, u32)> {
    if name.parse::<u32>().is_ok() {
        return None;
    }
    UNQUALIFIED
        .into_iter()
        .find_map(|prog| procedure(prog, name).map(|p| (prog, p)))
}

/// What a call match names; `None` fields match anything. `op` is an
/// NFSv4 operation the COMPOUND must contain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallTarget {
    pub prog: Option<u32>,
    pub vers: Option<u32>,
    pub proc_: Option<u32>,
    pub op: Option<u32>,
}

/// An NFSv4 procedure ("NULL", "COMPOUND") or operation ("OPEN",
/// "op_exchange_id") by name: a COMPOUND containing it.
fn nfs4_target(name: &str) -> Option<CallTarget> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("NFSPROC4_").unwrap_or(&upper);
    let (proc_, op) = match bare {
        "NULL" => (0, None),
        "COMPOUND" => (1, None),
        _ => (1, Some(nfs4::ops::by_name(bare)?)),
    };
    Some(CallTarget {
        prog: Some(nfs4::PROGRAM),
        vers: Some(nfs4::VERSION),
        proc_: Some(proc_),
        op,
    })
}

/// The call a match names, the one way a scenario's `match:` and
/// `stackquake nfs fault` resolve it: a program by name or number; a
/// procedure by name or (with its program) number; a procedure without a
/// program is NFSv3's or MOUNT's (see [`procedure_any`]), else an NFSv4
/// operation ("EXCHANGE_ID", "OP_WRITE"), which `version: 4` always
/// means. The error says which name did not resolve.
pub fn call_target(
    program: Option<&str>,
    version: Option<u32>,
    procedure: Option<&str>,
) -> Result<CallTarget, UnknownName> {
    let prog = program
        .map(|p| self::program(p).ok_or(UnknownName::Program(p.to_string())))
        .transpose()?;
    let unknown = |name: &str| UnknownName::Procedure(name.to_string());
    let Some(name) = procedure else {
        return Ok(CallTarget {
            prog,
            vers: version,
            ..CallTarget::default()
        });
    };
    let nfs = prog.is_none_or(|p| p == nfs4::PROGRAM);
    if version == Some(nfs4::VERSION) && nfs {
        return nfs4_target(name).ok_or_else(|| unknown(name));
    }
    let v3 = match prog {
        Some(prog) => self::procedure(prog, name).map(|p| (prog, p)),
        None => procedure_any(name),
    };
    if let Some((prog, p)) = v3 {
        return Ok(CallTarget {
            prog: Some(prog),
            vers: version,
            proc_: Some(p),
            op: None,
        });
    }
    if nfs && version.is_none() {
        return nfs4_target(name).ok_or_else(|| unknown(name));
    }
    Err(unknown(name))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnknownName {
    #[error("unknown RPC program `{0}`")]
    Program(String),
    #[error("unknown procedure `{0}`")]
    Procedure(String),
}

/// Every nfsstat3 and nfsstat4 name, for validation hints.
pub fn status_names() -> impl Iterator<Item = &'static str> {
    all_statuses().map(|(n, _)| *n)
}

/// nfsstat3 first: a bare name shared by both ("IO") is its NFSv3 one,
/// which has the same number anyway.
fn all_statuses() -> impl Iterator<Item = &'static (&'static str, u32)> {
    NFS3_STATUSES.iter().chain(nfs4::status::NAMES.iter())
}

/// Procedure `proc_` of `prog` as the protocol document names it, from the
/// row of version `vers` (NFSv3 and NFSv4 share a program number, not their
/// procedures); without a version, or for one no row serves, the first row.
pub fn procedure_name(prog: u32, vers: Option<u32>, proc_: u32) -> String {
    vers.and_then(|v| program_table::by_number_version(prog, v))
        .map_or_else(|| procs(prog), |row| row.procedures)
        .get(proc_ as usize)
        .map_or_else(|| proc_.to_string(), |s| s.to_string())
}

/// An nfsstat3 or nfsstat4 by name ("NFS3ERR_IO", "IO", "jukebox",
/// "NFS4ERR_BADSESSION", "grace") or number.
pub fn status(name: &str) -> Option<u32> {
    if let Ok(n) = name.parse() {
        return Some(n);
    }
    let upper = name.to_ascii_uppercase();
    all_statuses()
        .find(|(n, _)| {
            *n == upper
                || n.strip_prefix("NFS3ERR_") == Some(upper.as_str())
                || n.strip_prefix("NFS4ERR_") == Some(upper.as_str())
        })
        .map(|(_, v)| *v)
}

pub fn status_name(status: u32) -> String {
    NFS3_STATUSES
        .iter()
        .find(|(_, v)| *v == status)
        .map_or_else(|| status.to_string(), |(n, _)| n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_target_resolves_program_and_procedure_together() {
        let t = |prog: Option<u32>, proc_: Option<u32>| CallTarget {
            prog,
            proc_,
            ..CallTarget::default()
        };
        assert_eq!(
            call_target(None, None, Some("MNT")),
            Ok(t(Some(100005), Some(1)))
        );
        assert_eq!(
            call_target(None, None, Some("getattr")),
            Ok(t(Some(100003), Some(1)))
        );
        assert_eq!(
            call_target(Some("mount"), None, Some("NULL")),
            Ok(t(Some(100005), Some(0)))
        );
        assert_eq!(
            call_target(Some("nfs"), None, Some("7")),
            Ok(t(Some(100003), Some(7)))
        );
        assert_eq!(
            call_target(Some("nlm"), None, None),
            Ok(t(Some(100021), None))
        );
        assert_eq!(call_target(None, None, None), Ok(t(None, None)));
        // A bare number names no procedure: whose would it be?
        assert_eq!(
            call_target(None, None, Some("7")),
            Err(UnknownName::Procedure("7".into()))
        );
        assert_eq!(
            call_target(Some("nfsx"), None, Some("READ")),
            Err(UnknownName::Program("nfsx".into()))
        );
    }

    #[test]
    fn nfs4_operations_are_matched_inside_a_compound() {
        let op = |op: u32| CallTarget {
            prog: Some(100003),
            vers: Some(4),
            proc_: Some(1),
            op: Some(op),
        };
        // Only v4 has it: no version needed.
        assert_eq!(call_target(None, None, Some("exchange_id")), Ok(op(42)));
        assert_eq!(call_target(Some("nfs"), None, Some("OPEN")), Ok(op(18)));
        // Both have it: NFSv3's unless version 4 or the OP_ prefix says so.
        assert_eq!(call_target(None, None, Some("WRITE")).unwrap().vers, None);
        assert_eq!(call_target(None, Some(4), Some("WRITE")), Ok(op(38)));
        assert_eq!(call_target(None, None, Some("OP_WRITE")), Ok(op(38)));
        assert_eq!(
            call_target(None, Some(4), Some("compound")).unwrap().proc_,
            Some(1)
        );
        assert_eq!(
            call_target(None, Some(3), Some("OPEN")),
            Err(UnknownName::Procedure("OPEN".into()))
        );
        assert_eq!(
            call_target(None, None, Some("EXCHANGE_IDD")),
            Err(UnknownName::Procedure("EXCHANGE_IDD".into()))
        );
        assert_eq!(status("NFS4ERR_BADSESSION"), Some(10052));
        assert_eq!(status("grace"), Some(10013));
        assert_eq!(status("io"), Some(5));
    }

    #[test]
    fn names_and_numbers() {
        assert_eq!(procedure(100003, "WRITE"), Some(7));
        assert_eq!(procedure(100003, "nfsproc3_commit"), Some(21));
        assert_eq!(procedure(100005, "MNT"), Some(1));
        assert_eq!(procedure(100003, "12"), Some(12));
        assert_eq!(procedure(100003, "FROB"), None);
        assert_eq!(procedure_name(100003, None, 17), "READDIRPLUS");
        assert_eq!(procedure_name(100003, Some(3), 1), "GETATTR");
        assert_eq!(procedure_name(100003, Some(4), 1), "COMPOUND");
        assert_eq!(status("NFS3ERR_IO"), Some(5));
        assert_eq!(status("jukebox"), Some(10008));
        assert_eq!(status_name(70), "NFS3ERR_STALE");
        assert_eq!(program("mount"), Some(100005));
        assert_eq!(program("nlm"), Some(100021));
        assert_eq!(procedure(100021, "nlmproc4_lock"), Some(2));
        assert_eq!(procedure(100021, "FREE_ALL"), Some(23));
        assert_eq!(procedure(100024, "sm_notify"), Some(6));
        assert_eq!(procedure_name(100024, Some(1), 2), "SM_MON");
        assert_eq!(procedure_any("MNT"), Some((100005, 1)));
        assert_eq!(procedure_any("write"), Some((100003, 7)));
        assert_eq!(procedure_any("NULL"), Some((100003, 0)));
        assert_eq!(procedure_any("7"), None);
        assert!(status_names().any(|n| n == "NFS3ERR_JUKEBOX"));
    }
}
