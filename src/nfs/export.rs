//! The export table: which host directory each export name maps to, who may
//! mount it, whether it is writable and whether it is currently exported, plus
//! the per-export inode index that turns file handles back into paths.

use std::collections::HashMap;
use std::fs::Metadata;
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::UNIX_EPOCH;

use super::NfsError;
use super::handle::FileHandle;
use super::open_files::OpenFiles;

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
}

/// An address prefix such as 10.1.0.0/16.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, NfsError> {
        let bad = || NfsError::BadCidr(s.to_string());
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.parse::<u8>().map_err(|_| bad())?,
            None => max,
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - self.prefix as u32).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - self.prefix as u32).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// Where an inode lives inside an export, relative to its directory.
#[derive(Debug, Clone)]
pub struct Located {
    /// Relative path; empty for the export root.
    pub rel: PathBuf,
    pub meta: Metadata,
}

/// Why a handle did not resolve (mapped to NFS3 statuses by the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolveError {
    Stale,
    Denied,
}

/// A bound on the tree walk that rebuilds the index after a miss, so a stale
/// handle against a huge tree cannot stall a connection for long.
const MAX_SCAN_ENTRIES: usize = 200_000;

/// One export.
#[derive(Debug)]
pub struct Export {
    pub id: u32,
    pub name: String,
    pub dir: PathBuf,
    pub read_only: bool,
    clients: Vec<Cidr>,
    client_names: Vec<String>,
    exported: AtomicBool,
    generation: AtomicU32,
    root_ino: u64,
    /// inode number → a path (relative) at which it was last seen.
    index: Mutex<HashMap<u64, PathBuf>>,
    /// Descriptors kept open for READ, WRITE and COMMIT.
    pub open_files: OpenFiles,
}

/// Folds a birth time into the 32-bit inode generation; 0 where the file
/// system reports none.
pub fn ino_generation(meta: &Metadata) -> u32 {
    match meta.created() {
        Ok(t) => match t.duration_since(UNIX_EPOCH) {
            Ok(d) => (d.as_secs() as u32) ^ d.subsec_nanos().rotate_left(16),
            Err(_) => 0,
        },
        Err(_) => 0,
    }
}

impl Export {
    pub fn new(id: u32, spec: &ExportSpec) -> Result<Export, NfsError> {
        let meta = std::fs::metadata(&spec.dir).map_err(|source| NfsError::ExportDir {
            dir: spec.dir.clone(),
            source,
        })?;
        if !meta.is_dir() {
            return Err(NfsError::ExportDir {
                dir: spec.dir.clone(),
                source: std::io::Error::from_raw_os_error(libc::ENOTDIR),
            });
        }
        let clients = spec
            .clients
            .iter()
            .map(|c| Cidr::parse(c))
            .collect::<Result<_, _>>()?;
        let mut index = HashMap::new();
        index.insert(meta.ino(), PathBuf::new());
        Ok(Export {
            id,
            name: normalize_name(&spec.name),
            dir: spec.dir.clone(),
            read_only: spec.read_only,
            clients,
            client_names: spec.clients.clone(),
            exported: AtomicBool::new(true),
            generation: AtomicU32::new(1),
            root_ino: meta.ino(),
            index: Mutex::new(index),
            open_files: OpenFiles::new(),
        })
    }

    pub fn is_exported(&self) -> bool {
        self.exported.load(Ordering::SeqCst)
    }

    /// Unexporting also closes the export's cached descriptors, so the file
    /// system under it can be unmounted.
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

    /// The fsid reported in fattr3: constant per export so the client never
    /// thinks it crossed into another file system.
    pub fn fsid(&self) -> u64 {
        0x5351_0000_0000_0000 | self.id as u64
    }

    pub fn abs(&self, rel: &Path) -> PathBuf {
        if rel.as_os_str().is_empty() {
            self.dir.clone()
        } else {
            self.dir.join(rel)
        }
    }

    pub fn is_root(&self, rel: &Path) -> bool {
        rel.as_os_str().is_empty()
    }

    /// Issues the handle for an inode seen at `rel`, remembering where it is.
    pub fn handle_for(&self, rel: &Path, meta: &Metadata) -> FileHandle {
        self.remember(rel, meta);
        FileHandle {
            export_id: self.id,
            export_generation: self.generation(),
            ino: meta.ino(),
            ino_generation: ino_generation(meta),
        }
    }

    pub fn remember(&self, rel: &Path, meta: &Metadata) {
        let mut index = self.index.lock().unwrap_or_else(|e| e.into_inner());
        index.insert(meta.ino(), rel.to_path_buf());
    }

    pub fn root_handle(&self) -> Result<FileHandle, std::io::Error> {
        let meta = std::fs::symlink_metadata(&self.dir)?;
        Ok(self.handle_for(Path::new(""), &meta))
    }

    /// Turns a handle into a path inside the export, checking that the export
    /// is exported, the client allowed and the inode still the same one.
    pub fn resolve(&self, fh: &FileHandle, client: IpAddr) -> Result<Located, ResolveError> {
        if !self.is_exported() || fh.export_generation != self.generation() {
            return Err(ResolveError::Stale);
        }
        if !self.allows(client) {
            return Err(ResolveError::Denied);
        }
        if let Some(found) = self.check_indexed(fh) {
            return Ok(found);
        }
        self.rescan();
        self.check_indexed(fh).ok_or(ResolveError::Stale)
    }

    fn check_indexed(&self, fh: &FileHandle) -> Option<Located> {
        let rel = {
            let index = self.index.lock().unwrap_or_else(|e| e.into_inner());
            index.get(&fh.ino)?.clone()
        };
        let meta = std::fs::symlink_metadata(self.abs(&rel)).ok()?;
        if meta.ino() != fh.ino || ino_generation(&meta) != fh.ino_generation {
            return None;
        }
        if fh.ino == self.root_ino && !self.is_root(&rel) {
            return None;
        }
        Some(Located { rel, meta })
    }

    /// Walks the export (never following symlinks, never leaving the export's
    /// file system) and records every inode's path.
    fn rescan(&self) {
        let root_dev = match std::fs::symlink_metadata(&self.dir) {
            Ok(m) => m.dev(),
            Err(_) => return,
        };
        let mut found = HashMap::new();
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(self.abs(&rel)) else {
                continue;
            };
            for entry in rd.flatten() {
                if found.len() >= MAX_SCAN_ENTRIES {
                    break;
                }
                let child = rel.join(entry.file_name());
                let Ok(meta) = std::fs::symlink_metadata(self.abs(&child)) else {
                    continue;
                };
                if meta.is_dir() && meta.dev() == root_dev {
                    stack.push(child.clone());
                }
                found.entry(meta.ino()).or_insert(child);
            }
        }
        found.insert(self.root_ino, PathBuf::new());
        let mut index = self.index.lock().unwrap_or_else(|e| e.into_inner());
        *index = found;
    }
}

/// "/export/" and "export" both name "/export".
pub fn normalize_name(name: &str) -> String {
    let trimmed = name.trim_matches('/');
    format!("/{trimmed}")
}

/// All exports of one server.
#[derive(Debug)]
pub struct ExportTable {
    exports: Vec<Export>,
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
        Ok(ExportTable { exports })
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
    fn handles_resolve_and_go_stale() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/f"), b"x").unwrap();
        let spec = ExportSpec {
            name: "/export".into(),
            dir: dir.path().to_path_buf(),
            clients: vec!["127.0.0.0/8".into()],
            read_only: false,
        };
        let e = Export::new(1, &spec).unwrap();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let meta = std::fs::symlink_metadata(dir.path().join("sub/f")).unwrap();
        let fh = e.handle_for(Path::new("sub/f"), &meta);
        assert_eq!(e.resolve(&fh, lo).unwrap().rel, Path::new("sub/f"));

        // A fresh index (as after a server restart) finds it by scanning.
        let e2 = Export::new(1, &spec).unwrap();
        assert_eq!(e2.resolve(&fh, lo).unwrap().rel, Path::new("sub/f"));

        // Renamed: the index entry is wrong, the rescan finds the new path.
        std::fs::rename(dir.path().join("sub/f"), dir.path().join("g")).unwrap();
        assert_eq!(e.resolve(&fh, lo).unwrap().rel, Path::new("g"));

        assert_eq!(
            e.resolve(&fh, "10.0.0.1".parse().unwrap()).unwrap_err(),
            ResolveError::Denied
        );
        e.set_exported(false);
        assert_eq!(e.resolve(&fh, lo).unwrap_err(), ResolveError::Stale);
        e.set_exported(true);
        assert!(e.resolve(&fh, lo).is_ok());

        std::fs::remove_file(dir.path().join("g")).unwrap();
        assert_eq!(e.resolve(&fh, lo).unwrap_err(), ResolveError::Stale);

        let root = e.root_handle().unwrap();
        e.bump_generation();
        assert_eq!(e.resolve(&root, lo).unwrap_err(), ResolveError::Stale);
    }

    #[test]
    fn forged_inode_outside_export_is_stale() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"s").unwrap();
        let inside = tempfile::tempdir().unwrap();
        let spec = ExportSpec {
            name: "/e".into(),
            dir: inside.path().to_path_buf(),
            clients: vec![],
            read_only: false,
        };
        let e = Export::new(1, &spec).unwrap();
        let meta = std::fs::metadata(outside.path().join("secret")).unwrap();
        let forged = FileHandle {
            export_id: 1,
            export_generation: 1,
            ino: meta.ino(),
            ino_generation: ino_generation(&meta),
        };
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(e.resolve(&forged, lo).unwrap_err(), ResolveError::Stale);
    }
}
