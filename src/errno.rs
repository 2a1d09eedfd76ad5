//! Errno names as the kernel spells them (`EIO`), both ways: scenarios
//! name them, journals and reports show them.

/// The errnos a scenario may expect by name.
pub const NAMES: &[&str] = &[
    "EPERM",
    "ENOENT",
    "EINTR",
    "EIO",
    "ENXIO",
    "EBADF",
    "EAGAIN",
    "ENOMEM",
    "EACCES",
    "EBUSY",
    "EEXIST",
    "ENODEV",
    "ENOTDIR",
    "EISDIR",
    "EINVAL",
    "EFBIG",
    "ENOSPC",
    "EROFS",
    "EDEADLK",
    "ENOLCK",
    "ENOTEMPTY",
    "ENOTCONN",
    "ETIMEDOUT",
    "ECONNREFUSED",
    "EHOSTUNREACH",
    "ESTALE",
    "EREMOTEIO",
    "EDQUOT",
    "EOPNOTSUPP",
    "EUCLEAN",
];

/// The number of a name in [`NAMES`], e.g. `EIO` → 5.
pub fn by_name(name: &str) -> Option<i32> {
    if !NAMES.contains(&name) {
        return None;
    }
    (1..200).find(|n| self::name(*n) == name)
}

/// The kernel's name for an errno number, e.g. `EIO`.
pub fn name(n: i32) -> String {
    format!("{:?}", nix::errno::Errno::from_raw(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_names_map_to_linux_numbers() {
        assert_eq!(by_name("EIO"), Some(libc::EIO));
        assert_eq!(by_name("ESTALE"), Some(libc::ESTALE));
        assert_eq!(by_name("EFOO"), None);
        for n in NAMES {
            assert!(by_name(n).is_some(), "{n} has no number");
        }
        assert_eq!(name(libc::ENOENT), "ENOENT");
    }
}
