//! Files an export holds from the start, made in its directory at setup,
//! before any client can mount it. Every open stays beneath the directory
//! (openat2 RESOLVE_BENEATH, no symlinks), as the server's own lookups do,
//! so a path the validator let through still cannot lead out of it.

use super::{SetupError, io};
use crate::plan::{SeedContent, SeedFile};
use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::{Mode, fchmod, mkdirat};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

/// Writes `files` into the export directory `dir`.
pub(super) fn seed(dir: &Path, files: &[SeedFile]) -> Result<(), SetupError> {
    for f in files {
        write_one(dir, f).map_err(io(format!("seed {}/{}", dir.display(), f.path)))?;
    }
    Ok(())
}

fn beneath(flags: OFlag) -> OpenHow {
    OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
        .resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_MAGICLINKS
                | ResolveFlag::RESOLVE_NO_XDEV,
        )
}

fn write_one(dir: &Path, f: &SeedFile) -> std::io::Result<()> {
    let dir_flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY;
    let mut at: OwnedFd = File::open(dir)?.into();
    let (parents, name) = match f.path.rsplit_once('/') {
        Some((p, n)) => (p.split('/').collect(), n),
        None => (Vec::new(), f.path.as_str()),
    };
    for part in parents {
        let made = match mkdirat(at.as_fd(), part, Mode::from_bits_truncate(0o700)) {
            Ok(()) => true,
            Err(Errno::EEXIST) => false,
            Err(e) => return Err(e.into()),
        };
        at = openat2(at.as_fd(), part, beneath(dir_flags))?;
        if made {
            // Made by root for clients that may be squashed to nobody.
            fchmod(at.as_fd(), Mode::from_bits_truncate(0o777))?;
        }
    }
    let fd = openat2(
        at.as_fd(),
        name,
        // A mode with O_CREAT only (openat2 refuses one without); the
        // fchmod below sets it past the umask.
        beneath(OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL)
            .mode(Mode::S_IRUSR | Mode::S_IWUSR),
    )?;
    fchmod(fd.as_fd(), Mode::from_bits_truncate(0o666))?;
    let mut file = File::from(fd);
    match &f.content {
        SeedContent::Text(text) => file.write_all(text.as_bytes())?,
        SeedContent::Zeros(n) => {
            let chunk = vec![0u8; 1 << 20];
            let mut left = *n;
            while left > 0 {
                let k = left.min(chunk.len() as u64) as usize;
                file.write_all(&chunk[..k])?;
                left -= k as u64;
            }
        }
    }
    file.sync_all()
}
