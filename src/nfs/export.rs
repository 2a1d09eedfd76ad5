//! The export table: which host directory each export name maps to, who may
//! mount it, how callers are squashed, whether it is writable and whether it
//! is currently exported; and the confinement of every file system access
//! to the export.
//!
//! Confinement holds by construction, never by a check before use (clients
//! race: a check on a path is undone by a rename before the path is used).
//! Each export keeps a descriptor of its directory. A handle is opened with
//! open_by_handle_at(2) on that descriptor's file system; a name is looked
//! up with openat2(2) relative to its directory's descriptor under
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
//! RESOLVE_NO_XDEV`; every operation then works on the resulting
//! descriptors (`*at` calls, `AT_EMPTY_PATH`, /proc/self/fd). Handles are
//! issued only for what such a lookup reached and are sealed with a MAC
//! (`handle.rs`), so a client can name nothing it did not find inside.

use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::Mode;

use super::NfsError;
use super::handle::{FileHandle, HandleKey};
use super::open_files::OpenFiles;
use super::rpc::Credential;
use crate::sys::fhandle;
use crate::sys::fscreds::FsCreds;

pub use crate::addr::Cidr;

/// exports(5) root_squash / no_root_squash / all_squash. knfsd's default
/// (and ours) is `Root`: a client's uid 0 acts as the anonymous user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Squash {
    #[default]
    Root,
    NoRootSquash,
    All,
}

/// knfsd's default anonuid/anongid (nobody/nogroup).
pub const ANON_ID: u32 = 65534;

/// An export as the engine describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSpec {
    /// The path clients mount, e.g. "/export".
    pub name: String,
    /// The host directory behind it.
    pub dir: PathBuf,
    /// Allowed client networks as CIDRs ("10.0.0.0/24", "::1"); empty = anyone.
    pub clients: Vec<String>,
    pub read_only: bool,
    pub squash: Squash,
}

/// An inode of an export, reached through the export's confinement: the
/// descriptor every operation on it uses, its attributes when it was
/// reached, and the handle that names it.
#[derive(Debug)]
pub struct Node {
    /// Usually an `O_PATH` descriptor: it names the inode, it cannot read.
    pub file: File,
    pub meta: Metadata,
    pub fh: FileHandle,
}

impl Node {
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// The attributes now (an fstat of the same descriptor).
    pub fn meta_now(&self) -> io::Result<Metadata> {
        self.file.metadata()
    }

    /// Whether this thread, as whoever it acts as, may access the inode
    /// with `mode`: the kernel's own check (faccessat with the effective,
    /// that is file system, ids), ACLs included.
    pub fn may(&self, mode: nix::unistd::AccessFlags) -> nix::Result<()> {
        use nix::fcntl::AtFlags;
        nix::unistd::faccessat(
            self.fd(),
            "",
            mode,
            AtFlags::AT_EMPTY_PATH | AtFlags::AT_EACCESS,
        )
    }
}

/// Why a handle did not resolve (mapped to protocol statuses by the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolveError {
    Stale,
    Denied,
}

/// One export.
#[derive(Debug)]
pub struct Export {
    pub id: u32,
    pub name: String,
    pub dir: PathBuf,
    pub read_only: bool,
    pub squash: Squash,
    clients: Vec<Cidr>,
    client_names: Vec<String>,
    exported: AtomicBool,
    generation: AtomicU32,
    /// The export's directory, opened for reading (open_by_handle_at(2)
    /// refuses an `O_PATH` mount descriptor). Held for the export's life.
    root: File,
    root_dev: u64,
    root_ino: u64,
    /// The mount the directory is on; a handle is issued only for inodes on
    /// it (no crossing into file systems mounted below the export).
    mount_id: i32,
    /// Descriptors kept open for READ, WRITE and COMMIT.
    pub open_files: OpenFiles,
}

/// The resolve flags of every client-named lookup: stay beneath the
/// directory, follow no symlink (a final one is opened as itself), no
/// /proc magic links, no crossing into another mount.
fn confined() -> ResolveFlag {
    ResolveFlag::RESOLVE_BENEATH
        | ResolveFlag::RESOLVE_NO_SYMLINKS
        | ResolveFlag::RESOLVE_NO_MAGICLINKS
        | ResolveFlag::RESOLVE_NO_XDEV
}

fn path_how() -> OpenHow {
    OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
        .resolve(confined())
}

/// The /proc path of a descriptor: how an operation that has no
/// `AT_EMPTY_PATH` form (chmod, utimes, link) reaches exactly the inode a
/// descriptor holds, whatever happens to its names meanwhile.
pub fn proc_fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    use std::os::fd::AsRawFd;
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

impl Export {
    pub fn new(id: u32, spec: &ExportSpec) -> Result<Export, NfsError> {
        let fail = |source: io::Error| NfsError::ExportDir {
            dir: spec.dir.clone(),
            source,
        };
        let root = File::from(
            nix::fcntl::open(
                &spec.dir,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| fail(e.into()))?,
        );
        let meta = root.metadata().map_err(fail)?;
        let clients = spec
            .clients
            .iter()
            .map(|c| Cidr::parse(c))
            .collect::<Result<_, _>>()?;
        // Handles must work on this file system, and this process must be
        // allowed to open them (CAP_DAC_READ_SEARCH): find out now, not at
        // a client's first call.
        let (probe, mount_id) =
            fhandle::handle_of(root.as_fd()).map_err(|source| NfsError::ExportUnsupported {
                dir: spec.dir.clone(),
                what: "the file system gives no file handles (name_to_handle_at)",
                source,
            })?;
        fhandle::open_handle(root.as_fd(), &probe, libc::O_PATH).map_err(|source| {
            NfsError::ExportUnsupported {
                dir: spec.dir.clone(),
                what: "cannot open file handles (open_by_handle_at needs root)",
                source,
            }
        })?;
        Ok(Export {
            id,
            name: normalize_name(&spec.name),
            dir: spec.dir.clone(),
            read_only: spec.read_only,
            squash: spec.squash,
            clients,
            client_names: spec.clients.clone(),
            exported: AtomicBool::new(true),
            generation: AtomicU32::new(1),
            root_dev: meta.dev(),
            root_ino: meta.ino(),
            root,
            mount_id,
            open_files: OpenFiles::new(),
        })
    }

    pub fn is_exported(&self) -> bool {
        self.exported.load(Ordering::SeqCst)
    }

    /// Unexporting also closes the export's cached descriptors.
    pub fn set_exported(&self, exported: bool) {
        self.exported.store(exported, Ordering::SeqCst);
        if !exported {
            self.open_files.clear();
        }
    }

    pub fn generation(&self) -> u32 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Makes every handle issued so far STALE (a server "restart" that loses
    /// its handles).
    pub fn bump_generation(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.open_files.clear();
    }

    /// The client list as configured, for MOUNT EXPORT; "*" when open.
    pub fn client_names(&self) -> Vec<String> {
        if self.client_names.is_empty() {
            vec!["*".to_string()]
        } else {
            self.client_names.clone()
        }
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        self.clients.is_empty() || self.clients.iter().any(|c| c.contains(ip))
    }

    /// The fsid reported in attributes: constant per export so the client
    /// never thinks it crossed into another file system.
    pub fn fsid(&self) -> u64 {
        0x5351_0000_0000_0000 | self.id as u64
    }

    pub fn is_root(&self, meta: &Metadata) -> bool {
        meta.dev() == self.root_dev && meta.ino() == self.root_ino
    }

    /// Who a caller acts as on this export's files, after squashing
    /// (exports(5)): AUTH_NONE and squashed ids become `ANON_ID`.
    pub fn creds(&self, cred: &Credential) -> FsCreds {
        let anon = FsCreds {
            uid: ANON_ID,
            gid: ANON_ID,
            groups: Vec::new(),
        };
        let Credential::Sys(sys) = cred else {
            return anon;
        };
        let squash_root = |id: u32| {
            if id == 0 && self.squash != Squash::NoRootSquash {
                ANON_ID
            } else {
                id
            }
        };
        match self.squash {
            Squash::All => anon,
            _ => FsCreds {
                uid: squash_root(sys.uid),
                gid: squash_root(sys.gid),
                groups: sys.gids.iter().map(|&g| squash_root(g)).collect(),
            },
        }
    }

    /// Wraps a descriptor reached inside the export into a node with its
    /// handle. Refuses an inode on another mount.
    pub fn node(&self, fd: OwnedFd) -> io::Result<Node> {
        let file = File::from(fd);
        let meta = file.metadata()?;
        let (kernel, mount_id) = fhandle::handle_of(file.as_fd())?;
        if mount_id != self.mount_id {
            return Err(io::Error::from_raw_os_error(libc::EXDEV));
        }
        Ok(Node {
            file,
            meta,
            fh: FileHandle {
                export_id: self.id,
                export_generation: self.generation(),
                kernel,
            },
        })
    }

    pub fn root_node(&self) -> io::Result<Node> {
        let fd = openat2(self.root.as_fd(), ".", path_how())?;
        self.node(fd)
    }

    /// Opens the inode a (MAC-checked) handle names, checking that the
    /// export is exported, the client allowed and the handle current.
    pub fn resolve(&self, fh: &FileHandle, client: IpAddr) -> Result<Node, ResolveError> {
        if !self.is_exported() || fh.export_generation != self.generation() {
            return Err(ResolveError::Stale);
        }
        if !self.allows(client) {
            return Err(ResolveError::Denied);
        }
        let fd = fhandle::open_handle(self.root.as_fd(), &fh.kernel, libc::O_PATH)
            .map_err(|_| ResolveError::Stale)?;
        let file = File::from(fd);
        let meta = file.metadata().map_err(|_| ResolveError::Stale)?;
        // open_by_handle_at answers on the mount's file system; the handle
        // was issued for this export's, but a lost race with an unlink can
        // leave an inode with no links: that is a stale handle.
        if meta.dev() != self.root_dev || meta.nlink() == 0 {
            return Err(ResolveError::Stale);
        }
        Ok(Node {
            file,
            meta,
            fh: fh.clone(),
        })
    }

    /// Looks a name up in `dir`: "." is the directory, ".." its parent (the
    /// export root is its own parent, so ".." never leaves the export), any
    /// other name one confined step below it. A symlink is returned as
    /// itself, never followed.
    pub fn lookup(&self, dir: &Node, name: &OsStr) -> io::Result<Node> {
        let fd = match name.as_encoded_bytes() {
            b"." => openat2(dir.fd(), ".", path_how())?,
            b".." if self.is_root(&dir.meta) => openat2(dir.fd(), ".", path_how())?,
            // RESOLVE_BENEATH forbids ".." itself; the parent of a directory
            // inside the export that is not its root is inside it too.
            b".." => openat2(
                dir.fd(),
                "..",
                path_how().resolve(
                    ResolveFlag::RESOLVE_NO_SYMLINKS
                        | ResolveFlag::RESOLVE_NO_MAGICLINKS
                        | ResolveFlag::RESOLVE_NO_XDEV,
                ),
            )?,
            _ => openat2(dir.fd(), name, path_how())?,
        };
        self.node(fd)
    }

    /// An entry of a directory listing, looked up: None if it went since
    /// the listing or is a mount point (another file system, not served).
    /// Anything else is an error, so a listing is never cut short silently.
    pub fn lookup_listed(&self, dir: &Node, name: &OsStr) -> io::Result<Option<Node>> {
        match self.lookup(dir, name) {
            Ok(node) => Ok(Some(node)),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EXDEV)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Opens `name` in `dir` with `flags` (and `mode` when creating), under
    /// the same confinement as `lookup`.
    pub fn open_in(
        &self,
        dir: &Node,
        name: &OsStr,
        flags: OFlag,
        mode: u32,
    ) -> io::Result<OwnedFd> {
        let how = OpenHow::new()
            .flags(flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
            .mode(Mode::from_bits_truncate(mode))
            .resolve(confined());
        Ok(openat2(dir.fd(), name, how)?)
    }

    /// A descriptor for READ/WRITE/COMMIT, from the export's cache or opened
    /// from the node's handle. Must run as root (open_by_handle_at).
    pub fn open_io(&self, node: &Node, write: bool) -> io::Result<Arc<File>> {
        let flags = if write { libc::O_RDWR } else { libc::O_RDONLY };
        self.open_files
            .get(&node.fh.kernel, node.meta.ino(), write, || {
                Ok(File::from(fhandle::open_handle(
                    self.root.as_fd(),
                    &node.fh.kernel,
                    flags,
                )?))
            })
    }
}

/// "/export/" and "export" both name "/export".
pub fn normalize_name(name: &str) -> String {
    let trimmed = name.trim_matches('/');
    format!("/{trimmed}")
}

/// All exports of one server, and the key that seals their handles.
#[derive(Debug)]
pub struct ExportTable {
    exports: Vec<Export>,
    key: HandleKey,
}

impl ExportTable {
    pub fn new(specs: &[ExportSpec]) -> Result<ExportTable, NfsError> {
        let mut exports: Vec<Export> = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            let e = Export::new(i as u32 + 1, spec)?;
            if exports.iter().any(|x| x.name == e.name) {
                return Err(NfsError::DuplicateExport(e.name));
            }
            exports.push(e);
        }
        let key = HandleKey::random().map_err(NfsError::Spawn)?;
        Ok(ExportTable { exports, key })
    }

    pub fn key(&self) -> &HandleKey {
        &self.key
    }

    /// The sealed handle of an export's root, as MNT gives it.
    pub fn root_handle(&self, export: &Export) -> io::Result<Vec<u8>> {
        Ok(export.root_node()?.fh.encode(&self.key))
    }

    pub fn by_id(&self, id: u32) -> Option<&Export> {
        self.exports.iter().find(|e| e.id == id)
    }

    pub fn by_name(&self, name: &str) -> Option<&Export> {
        let name = normalize_name(name);
        self.exports.iter().find(|e| e.name == name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Export> {
        self.exports.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nfs::rpc::AuthSys;

    fn spec(dir: &std::path::Path) -> ExportSpec {
        ExportSpec {
            name: "/export".into(),
            dir: dir.to_path_buf(),
            clients: vec!["127.0.0.0/8".into()],
            read_only: false,
            squash: Squash::Root,
        }
    }

    #[test]
    fn cidr_matching() {
        let c = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(c.contains("10.1.200.3".parse().unwrap()));
        assert!(!c.contains("10.2.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.1.0.9".parse().unwrap()));
        let host = Cidr::parse("127.0.0.1").unwrap();
        assert!(host.contains("127.0.0.1".parse().unwrap()));
        assert!(!host.contains("127.0.0.2".parse().unwrap()));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(
            Cidr::parse("fd00::/8")
                .unwrap()
                .contains("fd12::1".parse().unwrap())
        );
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("nonsense").is_err());
    }

    #[test]
    fn names_are_normalized() {
        assert_eq!(normalize_name("export/"), "/export");
        assert_eq!(normalize_name("/a/b"), "/a/b");
    }

    #[test]
    fn as_root_handles_follow_the_inode_and_go_stale() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/f"), b"x").unwrap();
        let e = Export::new(1, &spec(dir.path())).unwrap();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let root = e.root_node().unwrap();
        let sub = e.lookup(&root, OsStr::new("sub")).unwrap();
        let f = e.lookup(&sub, OsStr::new("f")).unwrap();
        assert_eq!(e.resolve(&f.fh, lo).unwrap().meta.ino(), f.meta.ino());

        // Renamed by anyone: the handle still names the same inode.
        std::fs::rename(dir.path().join("sub/f"), dir.path().join("g")).unwrap();
        assert_eq!(e.resolve(&f.fh, lo).unwrap().meta.ino(), f.meta.ino());

        assert_eq!(
            e.resolve(&f.fh, "10.0.0.1".parse().unwrap()).unwrap_err(),
            ResolveError::Denied
        );
        e.set_exported(false);
        assert_eq!(e.resolve(&f.fh, lo).unwrap_err(), ResolveError::Stale);
        e.set_exported(true);
        assert!(e.resolve(&f.fh, lo).is_ok());

        std::fs::remove_file(dir.path().join("g")).unwrap();
        assert_eq!(e.resolve(&f.fh, lo).unwrap_err(), ResolveError::Stale);

        e.bump_generation();
        assert_eq!(e.resolve(&root.fh, lo).unwrap_err(), ResolveError::Stale);
    }

    #[test]
    fn as_root_dot_dot_of_the_root_is_the_root_and_symlinks_are_not_followed() {
        let outside = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).unwrap();
        let e = Export::new(1, &spec(dir.path())).unwrap();
        let root = e.root_node().unwrap();
        let up = e.lookup(&root, OsStr::new("..")).unwrap();
        assert!(e.is_root(&up.meta));
        let link = e.lookup(&root, OsStr::new("out")).unwrap();
        assert!(link.meta.file_type().is_symlink());
        // A name with a slash is never walked as a path.
        let err = e.lookup(&root, OsStr::new("out/x")).unwrap_err();
        assert!(
            matches!(err.raw_os_error(), Some(libc::ELOOP) | Some(libc::EXDEV)),
            "{err}"
        );
    }

    #[test]
    fn as_root_squashing_follows_exports_5() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec(dir.path());
        let root = Credential::Sys(AuthSys {
            stamp: 0,
            machine_name: b"c".to_vec(),
            uid: 0,
            gid: 0,
            gids: vec![0, 10],
        });
        let user = Credential::Sys(AuthSys {
            stamp: 0,
            machine_name: b"c".to_vec(),
            uid: 1000,
            gid: 100,
            gids: vec![100, 0],
        });
        let e = Export::new(1, &s).unwrap();
        assert_eq!(e.creds(&root).uid, ANON_ID);
        assert_eq!(e.creds(&root).groups, vec![ANON_ID, 10]);
        assert_eq!(e.creds(&user).uid, 1000);
        assert_eq!(e.creds(&Credential::None).uid, ANON_ID);
        s.squash = Squash::NoRootSquash;
        let e = Export::new(1, &s).unwrap();
        assert_eq!(e.creds(&root).uid, 0);
        s.squash = Squash::All;
        let e = Export::new(1, &s).unwrap();
        assert_eq!(e.creds(&user).uid, ANON_ID);
    }
}
