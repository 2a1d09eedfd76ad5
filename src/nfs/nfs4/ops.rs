//! NFSv4 operation numbers and names (RFC 7530 §16, RFC 8881 §18,
//! RFC 7862 §15): how COMPOUND dispatches, how the fault hook and
//! scenarios name an operation, and which minor version brought each.

/// Operation names indexed by number; numbers 0–2 are unused.
pub const NAMES: [&str; 76] = [
    "",
    "",
    "",
    "ACCESS",
    "CLOSE",
    "COMMIT",
    "CREATE",
    "DELEGPURGE",
    "DELEGRETURN",
    "GETATTR",
    "GETFH",
    "LINK",
    "LOCK",
    "LOCKT",
    "LOCKU",
    "LOOKUP",
    "LOOKUPP",
    "NVERIFY",
    "OPEN",
    "OPENATTR",
    "OPEN_CONFIRM",
    "OPEN_DOWNGRADE",
    "PUTFH",
    "PUTPUBFH",
    "PUTROOTFH",
    "READ",
    "READDIR",
    "READLINK",
    "REMOVE",
    "RENAME",
    "RENEW",
    "RESTOREFH",
    "SAVEFH",
    "SECINFO",
    "SETATTR",
    "SETCLIENTID",
    "SETCLIENTID_CONFIRM",
    "VERIFY",
    "WRITE",
    "RELEASE_LOCKOWNER",
    "BACKCHANNEL_CTL",
    "BIND_CONN_TO_SESSION",
    "EXCHANGE_ID",
    "CREATE_SESSION",
    "DESTROY_SESSION",
    "FREE_STATEID",
    "GET_DIR_DELEGATION",
    "GETDEVICEINFO",
    "GETDEVICELIST",
    "LAYOUTCOMMIT",
    "LAYOUTGET",
    "LAYOUTRETURN",
    "SECINFO_NO_NAME",
    "SEQUENCE",
    "SET_SSV",
    "TEST_STATEID",
    "WANT_DELEGATION",
    "DESTROY_CLIENTID",
    "RECLAIM_COMPLETE",
    "ALLOCATE",
    "COPY",
    "COPY_NOTIFY",
    "DEALLOCATE",
    "IO_ADVISE",
    "LAYOUTERROR",
    "LAYOUTSTATS",
    "OFFLOAD_CANCEL",
    "OFFLOAD_STATUS",
    "READ_PLUS",
    "SEEK",
    "WRITE_SAME",
    "CLONE",
    "GETXATTR",
    "SETXATTR",
    "LISTXATTRS",
    "REMOVEXATTR",
];

pub const ACCESS: u32 = 3;
pub const CLOSE: u32 = 4;
pub const COMMIT: u32 = 5;
pub const CREATE: u32 = 6;
pub const GETATTR: u32 = 9;
pub const GETFH: u32 = 10;
pub const LINK: u32 = 11;
pub const LOCK: u32 = 12;
pub const LOCKT: u32 = 13;
pub const LOCKU: u32 = 14;
pub const LOOKUP: u32 = 15;
pub const LOOKUPP: u32 = 16;
pub const OPEN: u32 = 18;
pub const OPEN_CONFIRM: u32 = 20;
pub const OPEN_DOWNGRADE: u32 = 21;
pub const PUTFH: u32 = 22;
pub const PUTPUBFH: u32 = 23;
pub const PUTROOTFH: u32 = 24;
pub const READ: u32 = 25;
pub const READDIR: u32 = 26;
pub const READLINK: u32 = 27;
pub const REMOVE: u32 = 28;
pub const RENAME: u32 = 29;
pub const RENEW: u32 = 30;
pub const RESTOREFH: u32 = 31;
pub const SAVEFH: u32 = 32;
pub const SECINFO: u32 = 33;
pub const SETATTR: u32 = 34;
pub const SETCLIENTID: u32 = 35;
pub const SETCLIENTID_CONFIRM: u32 = 36;
pub const WRITE: u32 = 38;
pub const RELEASE_LOCKOWNER: u32 = 39;
pub const BIND_CONN_TO_SESSION: u32 = 41;
pub const EXCHANGE_ID: u32 = 42;
pub const CREATE_SESSION: u32 = 43;
pub const DESTROY_SESSION: u32 = 44;
pub const FREE_STATEID: u32 = 45;
pub const SECINFO_NO_NAME: u32 = 52;
pub const SEQUENCE: u32 = 53;
pub const TEST_STATEID: u32 = 55;
pub const DESTROY_CLIENTID: u32 = 57;
pub const RECLAIM_COMPLETE: u32 = 58;
/// RFC 8881 §18.62: the result of an operation number nobody defined.
pub const ILLEGAL: u32 = 10044;

/// The name of operation `op`, or None for a number no minor version defines.
pub fn name(op: u32) -> Option<&'static str> {
    NAMES.get(op as usize).copied().filter(|n| !n.is_empty())
}

/// The operation a person names ("WRITE", "op_write", "OP_EXCHANGE_ID"; any case).
pub fn by_name(name: &str) -> Option<u32> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("OP_").unwrap_or(&upper);
    NAMES
        .iter()
        .position(|n| !n.is_empty() && *n == bare)
        .map(|i| i as u32)
}

/// Operations that may appear only in minor version 0 (RFC 8881 §18.1:
/// a 4.1 server answers them NFS4ERR_NOTSUPP).
pub fn only_minor0(op: u32) -> bool {
    matches!(
        op,
        OPEN_CONFIRM | RENEW | SETCLIENTID | SETCLIENTID_CONFIRM | RELEASE_LOCKOWNER
    )
}

/// The highest operation number of each minor version.
pub fn last_op(minor: u32) -> u32 {
    match minor {
        0 => 39,
        1 => 58,
        _ => 75,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_names_agree() {
        assert_eq!(name(WRITE), Some("WRITE"));
        assert_eq!(name(RECLAIM_COMPLETE), Some("RECLAIM_COMPLETE"));
        assert_eq!(name(75), Some("REMOVEXATTR"));
        assert_eq!(name(0), None);
        assert_eq!(by_name("exchange_id"), Some(EXCHANGE_ID));
        assert_eq!(by_name("OP_SEQUENCE"), Some(SEQUENCE));
        assert_eq!(by_name("WRTIE"), None);
        for (i, n) in NAMES.iter().enumerate().filter(|(_, n)| !n.is_empty()) {
            assert_eq!(by_name(n), Some(i as u32));
        }
    }
}
