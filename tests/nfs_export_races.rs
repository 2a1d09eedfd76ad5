//! A client allowed to mount a read-write export races its own calls to
//! reach outside it (issue 11's four races, each won every time against the
//! path-based backend): every race runs for a bounded time on two
//! connections, and nothing outside the export may change. The attacks
//! are counted, so a race that never ran fails too.

mod nfs_support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nfs_support::{Client, OK, serve};
use stackquake::nfs::NfsServer;
use stackquake::nfs::export::Squash;
use stackquake::nfs::handle::{FileHandle, HandleKey};
use stackquake::sys::fhandle::handle_of;

/// Long enough for hundreds of rounds of each race on a loaded machine.
const RACE_FOR: Duration = Duration::from_secs(4);

struct World {
    _base: tempfile::TempDir,
    export: PathBuf,
    outside: PathBuf,
    secret: PathBuf,
    server: NfsServer,
}

fn world() -> World {
    let base = tempfile::tempdir().unwrap();
    let export = base.path().join("export");
    let outside = base.path().join("outside");
    std::fs::create_dir(&export).unwrap();
    std::fs::create_dir(&outside).unwrap();
    let secret = outside.join("secret");
    std::fs::write(&secret, b"secret").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    // The most dangerous client: root, not squashed.
    let server = serve(&export, Squash::NoRootSquash);
    World {
        export,
        outside,
        secret,
        server,
        _base: base,
    }
}

impl World {
    fn assert_outside_untouched(&self) {
        let meta = std::fs::symlink_metadata(&self.secret).unwrap();
        assert_eq!(
            meta.mode() & 0o7777,
            0o600,
            "the outside file's mode changed"
        );
        assert_eq!(
            std::fs::read(&self.secret).unwrap(),
            b"secret",
            "the outside file was written"
        );
        let names: Vec<_> = std::fs::read_dir(&self.outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("secret")],
            "a file appeared outside"
        );
    }
}

/// One side of a race: a call sequence made again and again.
type Loop = Box<dyn FnMut(&mut Client, &[u8]) + Send>;

/// Victim connections racing one attacker: more threads than cores, so the
/// server is preempted between any check and use it might make.
const VICTIMS: usize = 3;

/// Runs `victim` loops (on `VICTIMS` connections) and an `attacker` loop
/// for `RACE_FOR`; returns how many rounds each side made.
fn race(
    w: &World,
    victim: impl FnMut(&mut Client, &[u8]) + Send + Clone + 'static,
    attacker: impl FnMut(&mut Client, &[u8]) + Send + 'static,
) -> (usize, usize) {
    let stop = Arc::new(AtomicBool::new(false));
    let spawn = |mut body: Loop, rounds: Arc<AtomicUsize>| {
        let stop = stop.clone();
        let mut c = Client::connect(&w.server, 0, 0);
        let root = c.mnt();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                body(&mut c, &root);
                rounds.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let (vrounds, arounds) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut threads: Vec<_> = (0..VICTIMS)
        .map(|_| spawn(Box::new(victim.clone()), vrounds.clone()))
        .collect();
    threads.push(spawn(Box::new(attacker), arounds.clone()));
    let start = Instant::now();
    while start.elapsed() < RACE_FOR {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let rounds = (
        vrounds.load(Ordering::Relaxed),
        arounds.load(Ordering::Relaxed),
    );
    assert!(
        rounds.0 >= 50 && rounds.1 >= 50,
        "the race barely ran: {rounds:?}"
    );
    rounds
}

/// Makes `name` a regular file, then renames a symlink to `target` over
/// it, over and over: the one-call swap a check-then-use server loses to.
fn symlink_over(name: &'static str, target: PathBuf) -> impl FnMut(&mut Client, &[u8]) + Send {
    move |c, root| {
        c.remove(root, name);
        c.create(root, name, 0o600);
        c.symlink(root, "planted", &target);
        c.rename(root, "planted", root, name);
    }
}

/// Renames a symlink to `target` over `name` when the victim has just
/// created it (the victim's CREATE is the window).
fn symlink_over_created(
    name: &'static str,
    target: PathBuf,
) -> impl FnMut(&mut Client, &[u8]) + Send {
    move |c, root| {
        c.symlink(root, "planted", &target);
        c.rename(root, "planted", root, name);
        c.remove(root, name);
    }
}

/// Swaps directory "d" with a symlink to `target` and back, over and over,
/// by renames only (a symlink "s" is made once).
fn swap_dir(target: PathBuf) -> impl FnMut(&mut Client, &[u8]) + Send {
    let mut made = false;
    move |c, root| {
        if !made {
            c.symlink(root, "s", &target);
            made = true;
        }
        c.rename(root, "d", root, "d-away");
        c.rename(root, "s", root, "d");
        c.rename(root, "d", root, "s");
        c.rename(root, "d-away", root, "d");
    }
}

#[test]
fn setattr_on_a_name_renamed_to_a_symlink_never_chmods_outside() {
    let w = world();
    let rounds = race(
        &w,
        |c, root| {
            let (st, fh) = c.lookup(root, "f");
            if st == OK {
                c.setattr_mode(&fh, 0o777);
            }
        },
        symlink_over("f", w.secret.clone()),
    );
    eprintln!("rounds (victim, attacker): {rounds:?}");
    w.assert_outside_untouched();
}

#[test]
fn create_racing_a_symlink_renamed_over_its_name_never_chmods_outside() {
    let w = world();
    race(
        &w,
        |c, root| {
            c.create(root, "f", 0o777);
        },
        symlink_over_created("f", w.secret.clone()),
    );
    w.assert_outside_untouched();
}

#[test]
fn create_in_a_directory_swapped_with_a_symlink_stays_inside() {
    let w = world();
    let mut c = Client::connect(&w.server, 0, 0);
    let root = c.mnt();
    let (st, dir) = c.mkdir(&root, "d");
    assert_eq!(st, OK);
    let n = Arc::new(AtomicUsize::new(0));
    race(
        &w,
        move |c, _root| {
            let i = n.fetch_add(1, Ordering::Relaxed);
            c.create(&dir, &format!("pwn-{i}"), 0o644);
        },
        swap_dir(w.outside.clone()),
    );
    w.assert_outside_untouched();
    // Every file went into the directory the handle names, wherever it was.
    let real = ["d", "d-away"]
        .iter()
        .map(|n| w.export.join(n))
        .find(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()))
        .unwrap();
    let inside = std::fs::read_dir(real).unwrap().count();
    assert!(
        inside > 0,
        "no CREATE succeeded: the race did not exercise CREATE"
    );
}

#[test]
fn lookup_in_a_swapped_directory_never_names_an_outside_file() {
    let w = world();
    let mut c = Client::connect(&w.server, 0, 0);
    let root = c.mnt();
    let (st, dir) = c.mkdir(&root, "d");
    assert_eq!(st, OK);
    let found = Arc::new(AtomicUsize::new(0));
    let seen = found.clone();
    race(
        &w,
        move |c, _root| {
            let (st, fh) = c.lookup(&dir, "secret");
            if st == OK {
                seen.fetch_add(1, Ordering::Relaxed);
                c.write(&fh, b"pwned!");
                let (_, data) = c.read(&fh, 64);
                assert_ne!(data, b"secret", "read an outside file's contents");
            }
        },
        swap_dir(w.outside.clone()),
    );
    assert_eq!(
        found.load(Ordering::Relaxed),
        0,
        "LOOKUP found a name outside the export"
    );
    w.assert_outside_untouched();
}

#[test]
fn handles_this_server_did_not_issue_are_refused() {
    let w = world();
    let mut c = Client::connect(&w.server, 0, 0);
    let root = c.mnt();
    let (st, f) = c.create(&root, "f", 0o644);
    assert_eq!(st, OK);
    assert_eq!(c.getattr(&f), OK);

    // Any changed byte: NFS3ERR_BADHANDLE, before any file system access.
    for i in 0..f.len() {
        let mut forged = f.clone();
        forged[i] ^= 0x20;
        assert_eq!(c.getattr(&forged), 10001, "byte {i} flipped was accepted");
    }

    // A well-formed handle for the outside file, sealed with another key.
    let outside = std::fs::File::open(&w.secret).unwrap();
    let (kernel, _) = handle_of(std::os::fd::AsFd::as_fd(&outside)).unwrap();
    let minted = FileHandle {
        export_id: 1,
        export_generation: 1,
        kernel,
    }
    .encode(&HandleKey::random().unwrap());
    assert_eq!(c.getattr(&minted), 10001);
    assert_eq!(c.write(&minted, b"pwned!"), 10001);
    w.assert_outside_untouched();
}

#[test]
fn dot_dot_at_the_root_stays_at_the_root() {
    let w = world();
    let mut c = Client::connect(&w.server, 0, 0);
    let root = c.mnt();
    let (st, up) = c.lookup(&root, "..");
    assert_eq!(st, OK);
    assert_eq!(up, root, "'..' of the export root must be the root itself");
    let (st, _) = c.lookup(&up, "outside");
    assert_eq!(st, 2, "a sibling of the export was found through '..'");
    assert!(Path::new(&w.outside).exists());
}
