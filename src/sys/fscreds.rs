//! Per-thread file system credentials (setfsuid(2), setfsgid(2) and the raw
//! setgroups syscall): the NFS server acts as its caller for each call, as
//! knfsd's nfsd_setuser does, so the kernel itself enforces permissions.
//!
//! glibc's setgroups() changes every thread of the process (its setxid
//! broadcast); the raw syscall changes only the calling thread, which is
//! what a pool of server threads serving different users needs. Moving the
//! fsuid away from 0 also drops CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_CHOWN,
//! CAP_MKNOD and the other file system capabilities from this thread's
//! effective set; moving it back restores them (capabilities(7)).

use std::io;
use std::sync::OnceLock;

/// Who the kernel should take this thread for in file system checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsCreds {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

/// The process's own supplementary groups, read once, put back after each
/// call served as someone else.
fn own_groups() -> &'static [libc::gid_t] {
    static GROUPS: OnceLock<Vec<libc::gid_t>> = OnceLock::new();
    GROUPS.get_or_init(|| {
        nix::unistd::getgroups()
            .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
            .unwrap_or_default()
    })
}

fn set_thread_groups(groups: &[libc::gid_t]) -> io::Result<()> {
    // SAFETY: the pointer and length describe `groups`, which outlives the
    // call; the kernel only reads it.
    let rc = unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn set_fs_ids(uid: u32, gid: u32) -> io::Result<()> {
    // setfsuid/setfsgid return the previous id and never fail visibly; the
    // second call tells whether the first took (setfsuid(2) NOTES).
    // SAFETY: plain syscalls on integer arguments.
    unsafe {
        libc::setfsgid(gid);
        libc::setfsuid(uid);
        let (now_uid, now_gid) = (
            libc::setfsuid(u32::MAX) as u32,
            libc::setfsgid(u32::MAX) as u32,
        );
        if now_uid != uid || now_gid != gid {
            return Err(io::Error::from_raw_os_error(libc::EPERM));
        }
    }
    Ok(())
}

/// While alive, this thread's file system checks are made as `creds`;
/// dropping it makes the thread root again. Not `Send`: it belongs to the
/// thread that made it.
#[derive(Debug)]
pub struct ActingAs {
    _not_send: std::marker::PhantomData<*const ()>,
}

impl ActingAs {
    /// Switches this thread to `creds`. Fails if the process may not (it is
    /// not root), leaving the thread as it was.
    pub fn enter(creds: &FsCreds) -> io::Result<ActingAs> {
        let guard = ActingAs {
            _not_send: std::marker::PhantomData,
        };
        // Groups first: once the fsuid is not 0 the thread lacks the
        // capability to change them.
        set_thread_groups(&creds.groups)?;
        set_fs_ids(creds.uid, creds.gid)?;
        Ok(guard)
    }
}

impl Drop for ActingAs {
    fn drop(&mut self) {
        let restored = set_fs_ids(0, 0).and_then(|()| set_thread_groups(own_groups()));
        if let Err(e) = restored {
            // A server thread that cannot become root again would serve the
            // next caller with the previous one's identity: stop here.
            panic!("cannot restore the thread's file system credentials: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn as_root_the_kernel_checks_as_the_caller_and_root_comes_back() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, b"s").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::thread::spawn(move || {
            {
                let _as = ActingAs::enter(&FsCreds {
                    uid: 4242,
                    gid: 4242,
                    groups: vec![4242],
                })
                .unwrap();
                let err = std::fs::read(&secret).unwrap_err();
                assert_eq!(err.raw_os_error(), Some(libc::EACCES));
            }
            assert_eq!(std::fs::read(&secret).unwrap(), b"s");
        })
        .join()
        .unwrap();
    }
}
