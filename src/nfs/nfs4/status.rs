//! RFC 8881 §15 nfsstat4: the status of a COMPOUND and of each operation.

use std::io;

/// RFC 8881 §15.1 nfsstat4
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nfs4Status(pub u32);

impl Nfs4Status {
    pub const OK: Self = Self(0);
    pub const PERM: Self = Self(1);
    pub const NOENT: Self = Self(2);
    pub const IO: Self = Self(5);
    pub const NXIO: Self = Self(6);
    pub const ACCESS: Self = Self(13);
    pub const EXIST: Self = Self(17);
    pub const XDEV: Self = Self(18);
    pub const NOTDIR: Self = Self(20);
    pub const ISDIR: Self = Self(21);
    pub const INVAL: Self = Self(22);
    pub const FBIG: Self = Self(27);
    pub const NOSPC: Self = Self(28);
    pub const ROFS: Self = Self(30);
    pub const MLINK: Self = Self(31);
    pub const NAMETOOLONG: Self = Self(63);
    pub const NOTEMPTY: Self = Self(66);
    pub const DQUOT: Self = Self(69);
    pub const STALE: Self = Self(70);
    pub const BADHANDLE: Self = Self(10001);
    pub const BAD_COOKIE: Self = Self(10003);
    pub const NOTSUPP: Self = Self(10004);
    pub const TOOSMALL: Self = Self(10005);
    pub const SERVERFAULT: Self = Self(10006);
    pub const BADTYPE: Self = Self(10007);
    pub const DELAY: Self = Self(10008);
    pub const SAME: Self = Self(10009);
    pub const DENIED: Self = Self(10010);
    pub const EXPIRED: Self = Self(10011);
    pub const GRACE: Self = Self(10013);
    pub const SHARE_DENIED: Self = Self(10015);
    pub const CLID_INUSE: Self = Self(10017);
    pub const RESOURCE: Self = Self(10018);
    pub const NOFILEHANDLE: Self = Self(10020);
    pub const MINOR_VERS_MISMATCH: Self = Self(10021);
    pub const STALE_CLIENTID: Self = Self(10022);
    pub const STALE_STATEID: Self = Self(10023);
    pub const OLD_STATEID: Self = Self(10024);
    pub const BAD_STATEID: Self = Self(10025);
    pub const BAD_SEQID: Self = Self(10026);
    pub const NOT_SAME: Self = Self(10027);
    pub const SYMLINK: Self = Self(10029);
    pub const RESTOREFH: Self = Self(10030);
    pub const ATTRNOTSUPP: Self = Self(10032);
    pub const NO_GRACE: Self = Self(10033);
    pub const RECLAIM_BAD: Self = Self(10034);
    pub const BADXDR: Self = Self(10036);
    pub const LOCKS_HELD: Self = Self(10037);
    pub const OPENMODE: Self = Self(10038);
    pub const BADNAME: Self = Self(10041);
    pub const OP_ILLEGAL: Self = Self(10044);
    pub const BADSESSION: Self = Self(10052);
    pub const BADSLOT: Self = Self(10053);
    pub const COMPLETE_ALREADY: Self = Self(10054);
    pub const SEQ_MISORDERED: Self = Self(10063);
    pub const SEQUENCE_POS: Self = Self(10064);
    pub const REQ_TOO_BIG: Self = Self(10065);
    pub const RETRY_UNCACHED_REP: Self = Self(10068);
    pub const TOO_MANY_OPS: Self = Self(10070);
    pub const OP_NOT_IN_SESSION: Self = Self(10071);
    pub const CLIENTID_BUSY: Self = Self(10074);
    pub const NOT_ONLY_OP: Self = Self(10081);
    pub const WRONG_TYPE: Self = Self(10083);

    /// Maps a host errno to the closest nfsstat4, as knfsd's nfserrno does.
    pub fn from_errno(errno: i32) -> Nfs4Status {
        match errno {
            libc::EPERM => Self::PERM,
            libc::ENOENT => Self::NOENT,
            libc::EIO => Self::IO,
            libc::ENXIO => Self::NXIO,
            libc::EACCES => Self::ACCESS,
            libc::EEXIST => Self::EXIST,
            libc::EXDEV => Self::XDEV,
            libc::ENOTDIR => Self::NOTDIR,
            libc::EISDIR => Self::ISDIR,
            libc::EINVAL => Self::INVAL,
            libc::EFBIG => Self::FBIG,
            libc::ENOSPC => Self::NOSPC,
            libc::EROFS => Self::ROFS,
            libc::EMLINK => Self::MLINK,
            libc::ENAMETOOLONG => Self::NAMETOOLONG,
            libc::ENOTEMPTY => Self::NOTEMPTY,
            libc::EDQUOT => Self::DQUOT,
            libc::ESTALE => Self::STALE,
            libc::EOPNOTSUPP => Self::NOTSUPP,
            // RESOLVE_NO_SYMLINKS met a symlink: not what was asked for.
            libc::ELOOP => Self::SYMLINK,
            _ => Self::IO,
        }
    }
}

impl From<io::Error> for Nfs4Status {
    fn from(e: io::Error) -> Self {
        e.raw_os_error()
            .map_or(Nfs4Status::IO, Nfs4Status::from_errno)
    }
}

impl From<nix::Error> for Nfs4Status {
    fn from(e: nix::Error) -> Self {
        Nfs4Status::from_errno(e as i32)
    }
}

/// Status names for people, as RFC 8881 spells them; what a fault rule's
/// "reply with a status" and the v4 answers accept.
pub const NAMES: [(&str, u32); 40] = [
    ("NFS4_OK", 0),
    ("NFS4ERR_PERM", 1),
    ("NFS4ERR_NOENT", 2),
    ("NFS4ERR_IO", 5),
    ("NFS4ERR_NXIO", 6),
    ("NFS4ERR_ACCESS", 13),
    ("NFS4ERR_EXIST", 17),
    ("NFS4ERR_NOTDIR", 20),
    ("NFS4ERR_ISDIR", 21),
    ("NFS4ERR_INVAL", 22),
    ("NFS4ERR_FBIG", 27),
    ("NFS4ERR_NOSPC", 28),
    ("NFS4ERR_ROFS", 30),
    ("NFS4ERR_DQUOT", 69),
    ("NFS4ERR_STALE", 70),
    ("NFS4ERR_BADHANDLE", 10001),
    ("NFS4ERR_NOTSUPP", 10004),
    ("NFS4ERR_SERVERFAULT", 10006),
    ("NFS4ERR_DELAY", 10008),
    ("NFS4ERR_DENIED", 10010),
    ("NFS4ERR_EXPIRED", 10011),
    ("NFS4ERR_LOCKED", 10012),
    ("NFS4ERR_GRACE", 10013),
    ("NFS4ERR_FHEXPIRED", 10014),
    ("NFS4ERR_SHARE_DENIED", 10015),
    ("NFS4ERR_WRONGSEC", 10016),
    ("NFS4ERR_RESOURCE", 10018),
    ("NFS4ERR_MOVED", 10019),
    ("NFS4ERR_STALE_CLIENTID", 10022),
    ("NFS4ERR_STALE_STATEID", 10023),
    ("NFS4ERR_OLD_STATEID", 10024),
    ("NFS4ERR_BAD_STATEID", 10025),
    ("NFS4ERR_BAD_SEQID", 10026),
    ("NFS4ERR_NO_GRACE", 10033),
    ("NFS4ERR_RECLAIM_BAD", 10034),
    ("NFS4ERR_ADMIN_REVOKED", 10047),
    ("NFS4ERR_BADSESSION", 10052),
    ("NFS4ERR_BADSLOT", 10053),
    ("NFS4ERR_SEQ_MISORDERED", 10063),
    ("NFS4ERR_DEADSESSION", 10078),
];

/// RFC 8881 §18.46.3 sr_status_flags a server may raise in SEQUENCE
/// replies, by the names `nfs.sequence_flags` takes. Each starts a
/// recovery in the client: BIND_CONN_TO_SESSION for a callback path down,
/// TEST_STATEID for revoked state, a reboot reclaim for
/// RESTART_RECLAIM_NEEDED, a new session for a backchannel fault.
pub const SEQUENCE_FLAGS: [(&str, u32); 11] = [
    ("cb_path_down", 0x1),
    ("cb_gss_contexts_expiring", 0x2),
    ("cb_gss_contexts_expired", 0x4),
    ("expired_all_state_revoked", 0x8),
    ("expired_some_state_revoked", 0x10),
    ("admin_state_revoked", 0x20),
    ("recallable_state_revoked", 0x40),
    ("lease_moved", 0x80),
    ("restart_reclaim_needed", 0x100),
    ("cb_path_down_session", 0x200),
    ("backchannel_fault", 0x400),
];

/// The bits of a set of flag names; the first unknown name is the error.
pub fn sequence_flags<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<u32, &'a str> {
    names.into_iter().try_fold(0, |bits, name| {
        let found = SEQUENCE_FLAGS.iter().find(|(n, _)| *n == name);
        found.map(|(_, bit)| bits | bit).ok_or(name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_flag_names_make_their_bits() {
        assert_eq!(
            sequence_flags(["cb_path_down", "restart_reclaim_needed"]),
            Ok(0x101)
        );
        assert_eq!(sequence_flags([]), Ok(0));
        assert_eq!(sequence_flags(["cb_path_down", "nope"]), Err("nope"));
    }
}
