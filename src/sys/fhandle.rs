//! Kernel file handles (name_to_handle_at(2), open_by_handle_at(2)): the way
//! knfsd names inodes, so that the NFS server turns a client's handle into a
//! descriptor without ever walking a path the client could have changed.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Largest kernel handle we keep. XFS (inode64) needs 12–16 bytes, ext4 8,
/// tmpfs 12, btrfs 20; the NFS handle around it must fit NFS3_FHSIZE (64).
pub const MAX_KERNEL_HANDLE: usize = 32;

/// What name_to_handle_at(2) returned for one inode.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KernelHandle {
    pub handle_type: i32,
    pub bytes: Vec<u8>,
}

/// `struct file_handle` with room for `MAX_KERNEL_HANDLE` bytes.
#[repr(C)]
struct RawHandle {
    handle_bytes: libc::c_uint,
    handle_type: libc::c_int,
    f_handle: [u8; MAX_KERNEL_HANDLE],
}

/// The handle and mount id of the inode `dirfd` refers to (`AT_EMPTY_PATH`,
/// so an `O_PATH` descriptor works and no path is resolved). Needs no
/// privilege.
pub fn handle_of(fd: BorrowedFd<'_>) -> io::Result<(KernelHandle, i32)> {
    let mut raw = RawHandle {
        handle_bytes: MAX_KERNEL_HANDLE as libc::c_uint,
        handle_type: 0,
        f_handle: [0; MAX_KERNEL_HANDLE],
    };
    let mut mount_id: libc::c_int = 0;
    let empty: &CStr = c"";
    // SAFETY: `raw` is a file_handle header followed by MAX_KERNEL_HANDLE
    // writable bytes, as handle_bytes tells the kernel; `empty` is a valid
    // NUL-terminated string and `mount_id` a valid int, both outliving the
    // call; the kernel writes nothing past handle_bytes.
    let rc = unsafe {
        libc::name_to_handle_at(
            fd.as_raw_fd(),
            empty.as_ptr(),
            (&mut raw as *mut RawHandle).cast(),
            &mut mount_id,
            libc::AT_EMPTY_PATH,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let len = (raw.handle_bytes as usize).min(MAX_KERNEL_HANDLE);
    Ok((
        KernelHandle {
            handle_type: raw.handle_type,
            bytes: raw.f_handle[..len].to_vec(),
        },
        mount_id,
    ))
}

/// Opens the inode `handle` names on the file system of `mount_fd` (which
/// must not be an `O_PATH` descriptor). Needs CAP_DAC_READ_SEARCH: only
/// this process's own, MAC-checked handles ever reach it.
pub fn open_handle(
    mount_fd: BorrowedFd<'_>,
    handle: &KernelHandle,
    flags: i32,
) -> io::Result<OwnedFd> {
    if handle.bytes.len() > MAX_KERNEL_HANDLE {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let mut raw = RawHandle {
        handle_bytes: handle.bytes.len() as libc::c_uint,
        handle_type: handle.handle_type,
        f_handle: [0; MAX_KERNEL_HANDLE],
    };
    raw.f_handle[..handle.bytes.len()].copy_from_slice(&handle.bytes);
    // SAFETY: `raw` is a complete file_handle whose handle_bytes does not
    // exceed the bytes that follow it; the kernel only reads it.
    let fd = unsafe {
        libc::open_by_handle_at(
            mount_fd.as_raw_fd(),
            (&mut raw as *mut RawHandle).cast(),
            flags | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: open_by_handle_at returned a new descriptor that nothing else
    // owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn as_root_a_handle_names_the_inode_not_the_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), b"x").unwrap();
        let root = std::fs::File::open(dir.path()).unwrap();
        let a = std::fs::File::open(dir.path().join("a")).unwrap();
        let (h, _) = handle_of(a.as_fd()).unwrap();
        assert!(!h.bytes.is_empty());
        std::fs::rename(dir.path().join("a"), dir.path().join("b")).unwrap();
        // open_by_handle_at needs CAP_DAC_READ_SEARCH: the suite runs as root.
        let fd = open_handle(root.as_fd(), &h, libc::O_PATH).unwrap();
        let reopened = std::fs::File::from(fd).metadata().unwrap();
        assert_eq!(reopened.ino(), a.metadata().unwrap().ino());
    }
}
