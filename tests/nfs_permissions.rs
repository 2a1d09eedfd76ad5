//! AUTH_SYS is enforced as knfsd enforces it: each call is checked by the
//! kernel as the caller's uid, gid and groups, after squashing as the
//! export says; a file's owner keeps read and write through its open file.

mod nfs_support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use nfs_support::{ACCES, Client, OK, serve};
use stackquake::nfs::export::Squash;

const PERM: u32 = 1;
/// RFC 1813 §3.3.4 ACCESS3_READ | LOOKUP | MODIFY | EXTEND | DELETE | EXECUTE
const ALL_ACCESS: u32 = 0x3f;

fn write_file(path: &Path, data: &[u8], mode: u32) {
    std::fs::write(path, data).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// An export owned by root (0755) with a root-only file, a public file and
/// a directory anyone may write in.
fn export() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    write_file(&dir.path().join("secret"), b"root only", 0o600);
    write_file(&dir.path().join("public"), b"anyone reads", 0o644);
    std::fs::create_dir(dir.path().join("shared")).unwrap();
    std::fs::set_permissions(
        dir.path().join("shared"),
        std::fs::Permissions::from_mode(0o777),
    )
    .unwrap();
    dir
}

#[test]
fn an_ordinary_user_gets_what_the_modes_allow() {
    let dir = export();
    let server = serve(dir.path(), Squash::Root);
    let mut c = Client::connect(&server, 1000, 1000);
    let root = c.mnt();

    let (st, secret) = c.lookup(&root, "secret");
    assert_eq!(st, OK, "the directory is searchable by anyone");
    assert_eq!(c.read(&secret, 64).0, ACCES);
    assert_eq!(c.write(&secret, b"x"), ACCES);
    assert_eq!(c.access(&secret, ALL_ACCESS), (OK, 0));
    assert_eq!(
        std::fs::read(dir.path().join("secret")).unwrap(),
        b"root only"
    );

    let (_, public) = c.lookup(&root, "public");
    assert_eq!(c.read(&public, 64), (OK, b"anyone reads".to_vec()));
    assert_eq!(c.write(&public, b"x"), ACCES);
    assert_eq!(c.access(&public, ALL_ACCESS), (OK, 0x01));
    assert_eq!(
        c.setattr_mode(&public, 0o666),
        PERM,
        "only the owner may chmod"
    );

    // The export root is root's 0755: no new names for others.
    assert_eq!(c.create(&root, "mine", 0o644).0, ACCES);
    assert!(!dir.path().join("mine").exists());

    // In a 0777 directory the new file is the caller's.
    let (_, shared) = c.lookup(&root, "shared");
    let (st, _) = c.create(&shared, "mine", 0o644);
    assert_eq!(st, OK);
    let meta = std::fs::metadata(dir.path().join("shared/mine")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (1000, 1000));
}

#[test]
fn root_is_squashed_unless_the_export_says_no_root_squash() {
    let dir = export();
    let squashed = serve(dir.path(), Squash::Root);
    let mut c = Client::connect(&squashed, 0, 0);
    let root = c.mnt();
    let (_, secret) = c.lookup(&root, "secret");
    assert_eq!(
        c.read(&secret, 64).0,
        ACCES,
        "root_squash: root reads as nobody"
    );
    assert_eq!(c.create(&root, "by-root", 0o644).0, ACCES);
    let (_, shared) = c.lookup(&root, "shared");
    assert_eq!(c.create(&shared, "by-root", 0o644).0, OK);
    let meta = std::fs::metadata(dir.path().join("shared/by-root")).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (65534, 65534),
        "a squashed root's file is nobody's"
    );
    drop(squashed);

    let trusted = serve(dir.path(), Squash::NoRootSquash);
    let mut c = Client::connect(&trusted, 0, 0);
    let root = c.mnt();
    let (_, secret) = c.lookup(&root, "secret");
    assert_eq!(c.read(&secret, 64), (OK, b"root only".to_vec()));
    assert_eq!(c.create(&root, "by-root", 0o644).0, OK);
    assert_eq!(
        std::fs::metadata(dir.path().join("by-root")).unwrap().uid(),
        0
    );
}

#[test]
fn all_squash_maps_everyone_to_nobody() {
    let dir = export();
    let server = serve(dir.path(), Squash::All);
    let mut c = Client::connect(&server, 1000, 1000);
    let root = c.mnt();
    let (_, shared) = c.lookup(&root, "shared");
    assert_eq!(c.create(&shared, "anon", 0o644).0, OK);
    let meta = std::fs::metadata(dir.path().join("shared/anon")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
}

#[test]
fn the_owner_writes_through_a_read_only_mode_others_do_not() {
    let dir = export();
    let server = serve(dir.path(), Squash::Root);
    let mut owner = Client::connect(&server, 1000, 1000);
    let root = owner.mnt();
    let (_, shared) = owner.lookup(&root, "shared");
    let (st, f) = owner.create(&shared, "log", 0o644);
    assert_eq!(st, OK);
    // A client that opened the file and then made it read-only keeps
    // writing through its open file (knfsd's NFSD_MAY_OWNER_OVERRIDE).
    assert_eq!(owner.setattr_mode(&f, 0o444), OK);
    assert_eq!(owner.write(&f, b"still"), OK);
    assert_eq!(
        std::fs::read(dir.path().join("shared/log")).unwrap(),
        b"still"
    );

    let mut other = Client::connect(&server, 2000, 2000);
    other.mnt();
    assert_eq!(other.write(&f, b"other"), ACCES);
    assert_eq!(other.read(&f, 64), (OK, b"still".to_vec()));
}

/// The Linux client truncates with SETATTR size + mtime SET_TO_SERVER_TIME:
/// knfsd lets anyone who may write do that, owner or not (found by
/// vm_nfs_peers: root squashed to nobody opening root's 0666 file with
/// O_TRUNC got EPERM from us, success from knfsd).
#[test]
fn a_writer_who_is_not_the_owner_may_truncate() {
    let dir = export();
    write_file(&dir.path().join("open"), b"anyone writes", 0o666);
    let server = serve(dir.path(), Squash::Root);
    let mut c = Client::connect(&server, 1000, 1000);
    let root = c.mnt();
    let (_, open) = c.lookup(&root, "open");
    assert_eq!(c.setattr_truncate(&open, 3), OK);
    assert_eq!(std::fs::read(dir.path().join("open")).unwrap(), b"any");
    let (_, public) = c.lookup(&root, "public");
    assert_eq!(c.setattr_truncate(&public, 0), ACCES, "0644: no write");
    assert_eq!(
        std::fs::read(dir.path().join("public")).unwrap(),
        b"anyone reads"
    );
}
