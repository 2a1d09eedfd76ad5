//! The Linux 6.1 NFS client against the in-process server and against the
//! guest kernel's own nfsd (`nfs::knfsd::Knfsd`), in a TCG guest per NFS
//! version (3, 4.0, 4.1, 4.2; the four guests at once): the same operation
//! suite on both mounts must give the same observable results.
//!
//! Topology inside the guest: netns `client` with two veth links, one to
//! netns `ours` (10.77.1.2, stackquake's server on 2049) and one to netns
//! `knfsd` (10.77.2.2, nfsd + rpc.mountd + rpcbind). Mounts are made from the
//! client netns (the RPC transport keeps the netns of the mounting process),
//! the suite then runs on both mount points from the test thread. Both
//! exports are directories on the guest's /tmp tmpfs.
//!
//! Also the guest half of bench/nfs-throughput.sh (`bench_throughput`,
//! ignored: it is a measurement, not a test).
//!
//! Needs root, qemu-system-x86_64, the guest kernel, busybox and
//! nfs-kernel-server (rpc.nfsd, exportfs, rpc.mountd, rpcbind, mount.nfs):
//! a missing piece fails the test.

mod vm_world_support;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use stackquake::ledger::{Ledger, RunId};
use stackquake::net::{Netns, VethPair, add_address, command_in, set_up, tcp_listener_in};
use stackquake::nfs::export::Squash;
use stackquake::nfs::knfsd::{Knfsd, KnfsdConfig, KnfsdExport};
use stackquake::nfs::{ExportSpec, NfsServer, ServerConfig};
use stackquake::vm::GUEST_OUT_DIR;
use vm_world_support::{guest_init, require_guest, require_vm_tools, run_in_guest_at};

/// Entries in the big directory (issue 4: readdir of 5,000 entries).
const BIG_DIR_ENTRIES: usize = 5000;
const MOUNT_OPTS: &str = "proto=tcp,actimeo=0,timeo=50,retrans=3";
/// The guest suite's NFS version ("3", "4.0", "4.1", "4.2"), passed by the
/// host test that boots it.
const VERS_ENV: &str = "SQ_NFS_VERS";

fn nfs_vers() -> String {
    std::env::var(VERS_ENV).unwrap_or_else(|_| "3".into())
}

fn is_v4() -> bool {
    nfs_vers().starts_with('4')
}

fn require_tools() {
    assert!(nix::unistd::geteuid().is_root(), "this test needs root");
    require_vm_tools();
    for (tool, pkg) in [
        ("rpc.nfsd", "nfs-kernel-server"),
        ("rpc.mountd", "nfs-kernel-server"),
        ("exportfs", "nfs-kernel-server"),
        ("rpcbind", "rpcbind"),
        ("mount.nfs", "nfs-common"),
        ("nsenter", "util-linux"),
    ] {
        assert!(
            stackquake::tools::which(tool).is_some(),
            "{tool} missing: apt-get install {pkg}"
        );
    }
}

#[test]
#[ignore = "PID 1 of the guest; the host tests boot it"]
fn guest_entry() {
    guest_init();
}

// ---------------------------------------------------------------- world

/// Two servers, each in its own netns behind a veth link from `client`.
struct World {
    mounts: Vec<PathBuf>,
    ours: Option<NfsServer>,
    knfsd: Option<Knfsd>,
    extra: Vec<std::process::Child>,
    _veths: Vec<VethPair>,
    client: Netns,
    ours_ns: Netns,
    knfsd_ns: Netns,
    extra_ns: Vec<Netns>,
    ledger: Ledger,
}

const OURS_DIR: &str = "/tmp/export-ours";
const KNFSD_DIR: &str = "/tmp/export-knfsd";
/// The root_squash exports, one per server, for the permission cases.
const OURS_SQUASH_DIR: &str = "/tmp/squash-ours";
const KNFSD_SQUASH_DIR: &str = "/tmp/squash-knfsd";

fn link(ledger: &Ledger, client: &Netns, server: &Netns, n: u8) -> VethPair {
    let (c, s) = (format!("sqc{n}"), format!("sqs{n}"));
    let pair = VethPair::create((client, &c), (server, &s), None, ledger).unwrap();
    add_address(client, &c, &format!("10.77.{n}.1/24")).unwrap();
    add_address(server, &s, &format!("10.77.{n}.2/24")).unwrap();
    set_up(client, &c).unwrap();
    set_up(server, &s).unwrap();
    server.set_loopback_up().unwrap();
    pair
}

/// A knfsd export as a client names it: by path for NFSv3, below the
/// fsid=0 root (/tmp) for NFSv4.
fn knfsd_source(dir: &str) -> String {
    match dir.strip_prefix("/tmp").filter(|_| is_v4()) {
        Some(rest) => format!("10.77.2.2:{rest}"),
        None => format!("10.77.2.2:{dir}"),
    }
}

impl World {
    fn build() -> World {
        let status = Command::new("modprobe")
            .args(["-a", "nfsd", "nfsv3", "nfsv4", "veth"])
            .status()
            .unwrap();
        assert!(status.success(), "modprobe nfsd nfsv3 veth failed");
        let run = RunId::generate();
        let ledger = Ledger::create(
            Path::new("/run/stackquake"),
            &run,
            Path::new("vm_nfs_peers"),
        )
        .unwrap();
        let client = Netns::create("client", &ledger).unwrap();
        client.set_loopback_up().unwrap();
        let ours_ns = Netns::create("ours", &ledger).unwrap();
        let knfsd_ns = Netns::create("knfsd", &ledger).unwrap();
        let veths = vec![
            link(&ledger, &client, &ours_ns, 1),
            link(&ledger, &client, &knfsd_ns, 2),
        ];
        for d in [OURS_DIR, KNFSD_DIR, OURS_SQUASH_DIR, KNFSD_SQUASH_DIR] {
            fs::create_dir_all(d).unwrap();
        }
        let listener = tcp_listener_in(&ours_ns, "10.77.1.2:2049".parse().unwrap()).unwrap();
        let ours = NfsServer::start(
            ServerConfig {
                exports: vec![
                    ExportSpec {
                        name: "/export".into(),
                        dir: OURS_DIR.into(),
                        clients: vec!["10.77.1.0/24".into()],
                        read_only: false,
                        squash: Squash::NoRootSquash,
                    },
                    ExportSpec {
                        name: "/squash".into(),
                        dir: OURS_SQUASH_DIR.into(),
                        clients: vec!["10.77.1.0/24".into()],
                        read_only: false,
                        squash: Squash::Root,
                    },
                ],
                ..ServerConfig::default()
            },
            listener,
        )
        .unwrap();
        if is_v4() {
            // knfsd's NFSv4 clients start at its root: /tmp (fsid=0, read
            // only), and `crossmnt` takes a LOOKUP into each export only at
            // a mount point, so each export is bound onto itself.
            for d in [KNFSD_DIR, KNFSD_SQUASH_DIR] {
                let status = Command::new("mount")
                    .args(["--bind", d, d])
                    .status()
                    .unwrap();
                assert!(status.success(), "mount --bind {d}");
            }
        }
        let knfsd_config = KnfsdConfig {
            nfsv4: is_v4(),
            ..KnfsdConfig::default()
        };
        let mut knfsd = Knfsd::start(&knfsd_ns, &knfsd_config, Some(&ledger)).unwrap();
        knfsd
            .export(&KnfsdExport {
                dir: KNFSD_DIR.into(),
                clients: "10.77.2.0/24".into(),
                options: "rw,sync,no_root_squash,no_subtree_check,fsid=1".into(),
            })
            .unwrap();
        knfsd
            .export(&KnfsdExport {
                dir: KNFSD_SQUASH_DIR.into(),
                clients: "10.77.2.0/24".into(),
                options: "rw,sync,root_squash,no_subtree_check,fsid=2".into(),
            })
            .unwrap();
        if is_v4() {
            knfsd
                .export(&KnfsdExport {
                    dir: "/tmp".into(),
                    clients: "10.77.2.0/24".into(),
                    options: "ro,sync,no_root_squash,no_subtree_check,fsid=0,crossmnt".into(),
                })
                .unwrap();
        }
        World {
            mounts: vec![],
            ours: Some(ours),
            knfsd: Some(knfsd),
            extra: vec![],
            _veths: veths,
            client,
            ours_ns,
            knfsd_ns,
            extra_ns: vec![],
            ledger,
        }
    }

    fn mount(&mut self, source: &str, extra_opts: &str, target: &str) -> PathBuf {
        fs::create_dir_all(target).unwrap();
        // NFSv4 needs no MOUNT protocol, portmapper or NLM: one port.
        let opts = if is_v4() {
            let port = if extra_opts.contains("port=2049") {
                ",port=2049"
            } else {
                ""
            };
            format!("vers={},{MOUNT_OPTS}{port}", nfs_vers())
        } else {
            format!("vers=3,nolock,{MOUNT_OPTS}{extra_opts}")
        };
        let out = command_in(&self.client, "mount")
            .args(["-t", "nfs", "-o", &opts, source, target])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount {source} -o {opts}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.mounts.push(target.into());
        PathBuf::from(target)
    }

    fn mount_ours(&mut self) -> PathBuf {
        self.mount(
            "10.77.1.2:/export",
            ",port=2049,mountport=2049,mountproto=tcp",
            "/mnt/ours",
        )
    }

    fn mount_knfsd(&mut self) -> PathBuf {
        self.mount(
            &knfsd_source(KNFSD_DIR),
            ",mountport=20048,mountproto=tcp",
            "/mnt/knfsd",
        )
    }

    fn mount_ours_squash(&mut self) -> PathBuf {
        self.mount(
            "10.77.1.2:/squash",
            ",port=2049,mountport=2049,mountproto=tcp",
            "/mnt/ours-squash",
        )
    }

    fn mount_knfsd_squash(&mut self) -> PathBuf {
        self.mount(
            &knfsd_source(KNFSD_SQUASH_DIR),
            ",mountport=20048,mountproto=tcp",
            "/mnt/knfsd-squash",
        )
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for m in self.mounts.drain(..).rev() {
            let _ = Command::new("umount").arg("-f").arg(&m).status();
        }
        for mut c in self.extra.drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(k) = self.knfsd.take()
            && let Err(e) = k.stop()
        {
            eprintln!("knfsd stop: {e}");
        }
        if let Some(s) = self.ours.take() {
            s.shutdown();
        }
        let _ = (&self.ours_ns, &self.knfsd_ns, &self.extra_ns, &self.ledger);
    }
}

// ---------------------------------------------------------------- suite

/// What the client observed, step by step, with what legitimately differs
/// between servers (inode numbers, timestamps, the .nfsXXXX suffix, the
/// order READDIR returns names in) normalized away.
type Observations = Vec<(String, String)>;

fn errno_name(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => format!("{:?}", nix::errno::Errno::from_raw(n)),
        None => format!("{:?}", e.kind()),
    }
}

fn stat_line(path: &Path) -> String {
    match fs::symlink_metadata(path) {
        Ok(m) => {
            let kind = if m.is_dir() {
                "dir"
            } else if m.file_type().is_symlink() {
                "symlink"
            } else {
                "file"
            };
            // A directory's size is the server file system's business
            // (tmpfs counts entries, XFS bytes): not compared for dirs.
            let size = if m.is_dir() {
                "-".to_string()
            } else {
                m.len().to_string()
            };
            format!(
                "{kind} mode={:o} nlink={} size={size} uid={} gid={}",
                m.mode() & 0o7777,
                m.nlink(),
                m.uid(),
                m.gid()
            )
        }
        Err(e) => format!("err {}", errno_name(&e)),
    }
}

fn result<T>(r: std::io::Result<T>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => format!("err {}", errno_name(&e)),
    }
}

/// Names in `dir`, sorted, `.nfs<hex>` collapsed to `.nfs*`.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .map(|n| {
            if n.starts_with(".nfs") {
                ".nfs*".into()
            } else {
                n
            }
        })
        .collect();
    names.sort();
    names
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn suite(root: &Path) -> Observations {
    let mut obs: Observations = Vec::new();
    // A step that takes seconds is named on stderr: what a slow server
    // spends its time on, visible in the guest's output.
    let mut last = Instant::now();
    let mut note = |step: &str, what: String| {
        if last.elapsed() > Duration::from_secs(2) {
            eprintln!(
                "slow step on {}: {step} took {:?}",
                root.display(),
                last.elapsed()
            );
        }
        last = Instant::now();
        obs.push((step.to_string(), what))
    };
    let p = |n: &str| root.join(n);

    // create (O_EXCL) and write
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(p("f"));
    note(
        "create f",
        result(
            f.as_ref()
                .map(drop)
                .map_err(|e| std::io::Error::from_raw_os_error(e.raw_os_error().unwrap_or(0))),
        ),
    );
    note("stat after create", stat_line(&p("f")));
    let data = pattern(100_000, 7);
    let mut f = f.unwrap();
    note(
        "write 100000",
        result(f.write_all(&data).and_then(|()| f.sync_all())),
    );
    drop(f);
    note("stat after write", stat_line(&p("f")));
    note(
        "create f again O_EXCL",
        result(OpenOptions::new().write(true).create_new(true).open(p("f"))),
    );

    // read back
    let back = fs::read(p("f")).unwrap();
    note(
        "read back equal",
        format!("{} len={}", back == data, back.len()),
    );

    // append
    let mut a = OpenOptions::new().append(true).open(p("f")).unwrap();
    note(
        "append 5000",
        result(a.write_all(&pattern(5000, 9)).and_then(|()| a.sync_all())),
    );
    drop(a);
    note("stat after append", stat_line(&p("f")));
    let back = fs::read(p("f")).unwrap();
    note(
        "append landed at end",
        format!(
            "{}",
            back.len() == 105_000 && back[100_000..] == pattern(5000, 9)[..]
        ),
    );

    // truncate down, then extend (the hole must read as zeroes)
    let t = OpenOptions::new().write(true).open(p("f")).unwrap();
    note("truncate 1234", result(t.set_len(1234)));
    note("stat after truncate", stat_line(&p("f")));
    note("extend 1 MiB", result(t.set_len(1 << 20)));
    drop(t);
    note("stat after extend", stat_line(&p("f")));
    let mut r = File::open(p("f")).unwrap();
    let mut tail = vec![1u8; 4096];
    r.seek(SeekFrom::Start(500_000)).unwrap();
    r.read_exact(&mut tail).unwrap();
    note(
        "hole reads zero",
        format!("{}", tail.iter().all(|&b| b == 0)),
    );
    let mut head = vec![0u8; 1234];
    r.seek(SeekFrom::Start(0)).unwrap();
    r.read_exact(&mut head).unwrap();
    note("head kept", format!("{}", head == data[..1234]));
    drop(r);

    // rename, link, symlink
    note("rename f g", result(fs::rename(p("f"), p("g"))));
    note("stat f after rename", stat_line(&p("f")));
    note("stat g after rename", stat_line(&p("g")));
    note("rename missing", result(fs::rename(p("nope"), p("x"))));
    note("link g h", result(fs::hard_link(p("g"), p("h"))));
    note("stat g after link", stat_line(&p("g")));
    note("stat h after link", stat_line(&p("h")));
    note("link onto existing", result(fs::hard_link(p("g"), p("h"))));
    note("symlink s -> g", result(symlink("g", p("s"))));
    note("lstat s", stat_line(&p("s")));
    note(
        "readlink s",
        match fs::read_link(p("s")) {
            Ok(t) => t.display().to_string(),
            Err(e) => format!("err {}", errno_name(&e)),
        },
    );
    note(
        "read through symlink",
        format!("{:?}", fs::metadata(p("s")).map(|m| m.len()).ok()),
    );

    // chmod / chown
    note(
        "chmod g 600",
        result(fs::set_permissions(
            p("g"),
            fs::Permissions::from_mode(0o600),
        )),
    );
    note("stat g after chmod", stat_line(&p("g")));
    note(
        "chmod g 4755",
        result(fs::set_permissions(
            p("g"),
            fs::Permissions::from_mode(0o4755),
        )),
    );
    note("stat g after chmod 4755", stat_line(&p("g")));
    note(
        "chown g 1234:5678",
        result(std::os::unix::fs::chown(p("g"), Some(1234), Some(5678))),
    );
    note("stat g after chown", stat_line(&p("g")));
    note("stat h after chown", stat_line(&p("h")));
    note(
        "lchown s 42:43",
        result(std::os::unix::fs::lchown(p("s"), Some(42), Some(43))),
    );
    note("lstat s after lchown", stat_line(&p("s")));

    // directories and their errors
    note("mkdir d", result(fs::create_dir(p("d"))));
    note("stat d", stat_line(&p("d")));
    note("mkdir d again", result(fs::create_dir(p("d"))));
    note("mkdir d/sub", result(fs::create_dir(p("d/sub"))));
    note("stat d after subdir", stat_line(&p("d")));
    note("rmdir non-empty d", result(fs::remove_dir(p("d"))));
    note("unlink a dir", result(fs::remove_file(p("d"))));
    note("rmdir a file", result(fs::remove_dir(p("g"))));
    note("link to a dir", result(fs::hard_link(p("d"), p("dlink"))));
    note("create under a file", result(File::create(p("g/x"))));
    note(
        "name of 256 bytes",
        result(File::create(p(&"n".repeat(256)))),
    );
    note(
        "name of 255 bytes",
        result(File::create(p(&"n".repeat(255)))),
    );
    note("remove 255", result(fs::remove_file(p(&"n".repeat(255)))));
    note("rename dir over non-empty dir", {
        fs::create_dir(p("e")).unwrap();
        fs::write(p("d/sub/x"), b"x").unwrap();
        fs::create_dir(p("e/sub")).unwrap();
        result(fs::rename(p("e"), p("d")))
    });
    note("rename file over dir", result(fs::rename(p("g"), p("e"))));
    note("rename dir over file", result(fs::rename(p("e"), p("h"))));

    // readdir of a big directory
    let big = p("big");
    fs::create_dir(&big).unwrap();
    let mut failed = 0;
    for i in 0..BIG_DIR_ENTRIES {
        if File::create(big.join(format!("entry-{i:05}"))).is_err() {
            failed += 1;
        }
    }
    note("create 5000 entries failures", failed.to_string());
    let names = listing(&big);
    let expected: Vec<String> = (0..BIG_DIR_ENTRIES)
        .map(|i| format!("entry-{i:05}"))
        .collect();
    note(
        "readdir 5000",
        format!("count={} exact={}", names.len(), names == expected),
    );
    note("stat big", stat_line(&big));
    let mut failed = 0;
    for i in (0..BIG_DIR_ENTRIES).step_by(2) {
        if fs::remove_file(big.join(format!("entry-{i:05}"))).is_err() {
            failed += 1;
        }
    }
    note("remove every other failures", failed.to_string());
    let names = listing(&big);
    note(
        "readdir after removing half",
        format!(
            "count={} all odd={}",
            names.len(),
            names
                .iter()
                .all(|n| n[6..].parse::<usize>().unwrap() % 2 == 1)
        ),
    );

    // remove while open: the client renames to .nfsXXXX (silly rename) and
    // removes it at last close; reads through the open fd keep working.
    fs::write(p("busy"), pattern(3000, 3)).unwrap();
    let mut open = File::open(p("busy")).unwrap();
    note("unlink open file", result(fs::remove_file(p("busy"))));
    note("stat busy after unlink", stat_line(&p("busy")));
    note(
        "listing with open unlinked file",
        format!(
            "{:?}",
            listing(root)
                .into_iter()
                .filter(|n| n.starts_with(".nfs") || n == "busy")
                .collect::<Vec<_>>()
        ),
    );
    let mut got = Vec::new();
    note(
        "read open unlinked file",
        result(open.read_to_end(&mut got)),
    );
    note("its content", format!("{}", got == pattern(3000, 3)));
    note("fstat open unlinked file", {
        let m = open.metadata().unwrap();
        format!("nlink={} size={}", m.nlink(), m.len())
    });
    drop(open);
    // The silly-renamed file goes away asynchronously after close.
    let start = Instant::now();
    while listing(root).iter().any(|n| n.starts_with(".nfs"))
        && start.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    note(
        "listing after close",
        format!(
            "{:?}",
            listing(root)
                .into_iter()
                .filter(|n| n.starts_with(".nfs"))
                .collect::<Vec<_>>()
        ),
    );

    // a file with two names removed while open: no silly rename needed
    // for the first name
    note(
        "unlink h (g still names it)",
        result(fs::remove_file(p("h"))),
    );
    note("stat g after unlink h", stat_line(&p("g")));

    // cleanup: everything must go
    note("remove big", result(fs::remove_dir_all(&big)));
    note("remove d", result(fs::remove_dir_all(p("d"))));
    note("remove e", result(fs::remove_dir_all(p("e"))));
    for n in ["g", "s"] {
        note(&format!("remove {n}"), result(fs::remove_file(p(n))));
    }
    note("final listing", format!("{:?}", listing(root)));
    obs
}

// ---------------------------------------------------------------- permissions

/// The unprivileged client user of the permission cases.
const USER: u32 = 1000;

/// Runs `f` on a new thread whose credentials are all `uid`/`gid` with no
/// supplementary groups, as a login of that user would be. The raw
/// syscalls change only that thread (glibc's wrappers would change the
/// whole process, the in-process server included); the NFS client takes
/// the AUTH_SYS identity from the calling task's credentials, and with no
/// root uid left the thread has no capabilities either.
fn as_user<T: Send + 'static>(uid: u32, gid: u32, f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        // SAFETY: plain syscalls on integer arguments (a null list of
        // length 0 for setgroups); they change this thread only.
        unsafe {
            assert_eq!(
                libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()),
                0
            );
            assert_eq!(libc::syscall(libc::SYS_setresgid, gid, gid, gid), 0);
            assert_eq!(libc::syscall(libc::SYS_setresuid, uid, uid, uid), 0);
        }
        assert_eq!(nix::unistd::geteuid().as_raw(), uid);
        assert!(nix::unistd::getgroups().unwrap().is_empty());
        f()
    })
    .join()
    .unwrap()
}

fn access(path: &Path, mode: nix::unistd::AccessFlags) -> String {
    result(nix::unistd::access(path, mode).map_err(std::io::Error::from))
}

fn server_file(path: &Path, mode: u32) {
    fs::write(path, b"root's").unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn server_dir(path: &Path, mode: u32) {
    fs::create_dir(path).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Root-owned fixtures made on the server side, straight in the exported
/// directory `export` (the guest's tmpfs): `perm/` for the uid 1000 cases
/// and, in the root_squash export `squash`, files for root squashed.
fn permission_fixtures(export: &Path, squash: &Path) {
    let perm = export.join("perm");
    server_dir(&perm, 0o755);
    server_file(&perm.join("secret"), 0o600);
    server_file(&perm.join("ro"), 0o644);
    server_file(&perm.join("notmine"), 0o644);
    server_dir(&perm.join("closed"), 0o755);
    server_dir(&perm.join("open"), 0o777);
    server_dir(&perm.join("sticky"), 0o1777);
    server_file(&perm.join("sticky/roots"), 0o666);
    server_dir(&squash.join("open"), 0o777);
    server_file(&squash.join("secret"), 0o600);
    server_file(&squash.join("roots"), 0o666);
}

/// The permission cases through the client: as uid 1000 on the
/// no_root_squash mount `root`, then as root on the root_squash mount
/// `squash`. Each step names who does what to what.
fn permission_suite(root: &Path, squash: &Path) -> Observations {
    use nix::unistd::AccessFlags;
    let perm = root.join("perm");
    let mut obs = as_user(USER, USER, move || {
        let mut obs: Observations = Vec::new();
        let mut note = |step: &str, what: String| obs.push((format!("u1000 {step}"), what));
        let p = |n: &str| perm.join(n);
        note("read root 0600", result(fs::read(p("secret"))));
        note("read root 0644", result(fs::read(p("ro"))));
        note(
            "open root 0644 for write",
            result(OpenOptions::new().write(true).open(p("ro"))),
        );
        note(
            "access R_OK root 0600",
            access(&p("secret"), AccessFlags::R_OK),
        );
        note("access W_OK root 0644", access(&p("ro"), AccessFlags::W_OK));
        note("access R_OK root 0644", access(&p("ro"), AccessFlags::R_OK));
        note(
            "create in root 0755 dir",
            result(File::create(p("closed/x"))),
        );
        note(
            "mkdir in root 0755 dir",
            result(fs::create_dir(p("closed/d"))),
        );
        note(
            "create in 0777 dir",
            result(
                OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o644)
                    .open(p("open/new")),
            ),
        );
        note("stat own new file", stat_line(&p("open/new")));
        note("mkdir in 0777 dir", result(fs::create_dir(p("open/dir"))));
        note("stat own new dir", stat_line(&p("open/dir")));
        note(
            "chmod root's file",
            result(fs::set_permissions(
                p("notmine"),
                fs::Permissions::from_mode(0o666),
            )),
        );
        note("stat root's file after chmod", stat_line(&p("notmine")));
        note(
            "chown root's file to self",
            result(std::os::unix::fs::chown(p("notmine"), Some(USER), None)),
        );
        note(
            "chown own file to root",
            result(std::os::unix::fs::chown(p("open/new"), Some(0), None)),
        );
        note(
            "chmod own file 600",
            result(fs::set_permissions(
                p("open/new"),
                fs::Permissions::from_mode(0o600),
            )),
        );
        note(
            "access W_OK own file",
            access(&p("open/new"), AccessFlags::W_OK),
        );
        note(
            "unlink root's file in 1777 dir",
            result(fs::remove_file(p("sticky/roots"))),
        );
        note(
            "unlink root's file in 0755 dir",
            result(fs::remove_file(p("notmine"))),
        );

        // knfsd's owner override: the owner keeps writing through a
        // descriptor opened before the file became read-only to everyone.
        let mine = p("open/mine");
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&mine);
        note(
            "create own file",
            result(
                f.as_ref()
                    .map(drop)
                    .map_err(|e| std::io::Error::from_raw_os_error(e.raw_os_error().unwrap_or(0))),
            ),
        );
        let mut f = f.unwrap();
        note(
            "write own file",
            result(f.write_all(b"aaaa").and_then(|()| f.sync_all())),
        );
        note(
            "fchmod own open file 444",
            result(f.set_permissions(fs::Permissions::from_mode(0o444))),
        );
        note(
            "write on after 444",
            result(f.write_all(b"bbbb").and_then(|()| f.sync_all())),
        );
        drop(f);
        note("stat own 444 file", stat_line(&mine));
        note(
            "own 444 file content",
            match fs::read(&mine) {
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(e) => format!("err {}", errno_name(&e)),
            },
        );
        note(
            "reopen own 444 file for write",
            result(OpenOptions::new().write(true).open(&mine)),
        );
        note("access W_OK own 444 file", access(&mine, AccessFlags::W_OK));
        obs
    });

    let mut note = |step: &str, what: String| obs.push((format!("squashed root {step}"), what));
    let p = |n: &str| squash.join(n);
    note(
        "create in 0777 dir",
        result(
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(p("open/new")),
        ),
    );
    note("stat new file", stat_line(&p("open/new")));
    note("mkdir in 0777 dir", result(fs::create_dir(p("open/dir"))));
    note("stat new dir", stat_line(&p("open/dir")));
    note(
        "create in root 0755 export root",
        result(File::create(p("x"))),
    );
    note("read root 0600", result(fs::read(p("secret"))));
    note(
        "access R_OK root 0600",
        access(&p("secret"), AccessFlags::R_OK),
    );
    note(
        "write root 0666",
        result(fs::write(p("roots"), b"squashed")),
    );
    note(
        "chown root's 0666 file",
        result(std::os::unix::fs::chown(p("roots"), Some(1234), None)),
    );
    note(
        "chmod root's 0666 file",
        result(fs::set_permissions(
            p("roots"),
            fs::Permissions::from_mode(0o600),
        )),
    );
    note("stat root's 0666 file", stat_line(&p("roots")));
    obs
}

#[test]
#[ignore = "runs inside the guest; kernel_client_same_results_from_both_servers boots it"]
fn guest_suite() {
    require_guest();
    let mut world = World::build();
    let ours = world.mount_ours();
    let knfsd = world.mount_knfsd();
    let ours_squash = world.mount_ours_squash();
    let knfsd_squash = world.mount_knfsd_squash();
    let mut all: BTreeMap<String, Observations> = BTreeMap::new();
    for (name, root, export, squash, squash_export) in [
        ("ours", ours, OURS_DIR, ours_squash, OURS_SQUASH_DIR),
        ("knfsd", knfsd, KNFSD_DIR, knfsd_squash, KNFSD_SQUASH_DIR),
    ] {
        let start = Instant::now();
        let mut obs = suite(&root);
        permission_fixtures(Path::new(export), Path::new(squash_export));
        obs.extend(permission_suite(&root, &squash));
        eprintln!("suite on {name}: {:?}", start.elapsed());
        all.insert(name.into(), obs);
    }
    let knfsd = world.knfsd.as_mut().unwrap();
    let listed = knfsd.list().unwrap();
    all.insert("knfsd exportfs -v".into(), vec![("list".into(), listed)]);
    // unexport takes effect now (cache flushed): the mount sees ESTALE or EACCES
    knfsd
        .unexport("10.77.2.0/24", Path::new(KNFSD_DIR))
        .unwrap();
    let after = result(fs::read_dir("/mnt/knfsd").and_then(|mut d| d.next().transpose()));
    let create = result(File::create("/mnt/knfsd/after-unexport"));
    knfsd
        .export(&KnfsdExport {
            dir: KNFSD_DIR.into(),
            clients: "10.77.2.0/24".into(),
            options: "rw,sync,no_root_squash,no_subtree_check,fsid=1".into(),
        })
        .unwrap();
    let back = result(File::create("/mnt/knfsd/after-reexport"));
    all.insert(
        "knfsd unexport".into(),
        vec![
            ("readdir after unexport".into(), after),
            ("create after unexport".into(), create),
            ("create after re-export".into(), back),
        ],
    );
    // stop: nfsd in that netns no longer answers on 2049
    world.mounts.retain(|m| {
        let _ = Command::new("umount").arg("-f").arg(m).status();
        false
    });
    world.knfsd.take().unwrap().stop().unwrap();
    let connect = world.client.run(|| {
        result(std::net::TcpStream::connect_timeout(
            &"10.77.2.2:2049".parse().unwrap(),
            Duration::from_secs(3),
        ))
    });
    all.insert(
        "knfsd stop".into(),
        vec![("connect 2049 after stop".into(), connect)],
    );
    let json = serde_json::to_vec_pretty(&all).unwrap();
    fs::write(Path::new(GUEST_OUT_DIR).join("observations.json"), json).unwrap();
    drop(world);
}

/// Every version in a guest of its own, the four at once with one vCPU
/// each: one after another they took 18 minutes of ci/test, each guest
/// keeping only 1.2 of the two cores busy. Each version's failure is
/// reported, not only the first.
#[test]
fn kernel_client_same_results_from_both_servers() {
    require_tools();
    const VERSIONS: [&str; 4] = ["3", "4.0", "4.1", "4.2"];
    let failed: Vec<String> = std::thread::scope(|s| {
        let runs: Vec<_> = VERSIONS
            .iter()
            .map(|&vers| {
                let run =
                    s.spawn(move || same_results_from_both_servers(vers, VERSIONS.len() as u32));
                (vers, run)
            })
            .collect();
        runs.into_iter()
            .filter_map(|(vers, run)| {
                let why = run.join().err()?;
                let why = why
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| why.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                Some(format!("vers={vers}: {why}"))
            })
            .collect()
    });
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

fn same_results_from_both_servers(vers: &str, at_once: u32) {
    let out = tempfile::tempdir().unwrap();
    run_in_guest_at(
        "guest_suite",
        out.path(),
        &[(VERS_ENV, vers.into())],
        // TCG runs the v4 suites slower (ours took 381 s on vers=4.1 in a
        // guest of its own), and four guests share two cores.
        Duration::from_secs(1800),
        1024,
        at_once,
    );
    let text = fs::read_to_string(out.path().join("observations.json")).unwrap();
    let all: BTreeMap<String, Observations> = serde_json::from_str(&text).unwrap();
    let (ours, knfsd) = (&all["ours"], &all["knfsd"]);
    assert_eq!(ours.len(), knfsd.len(), "the suite ran differently");
    let mut diffs = Vec::new();
    for ((step, a), (_, b)) in ours.iter().zip(knfsd) {
        eprintln!("vers={vers} {step:32} ours: {a}");
        if a != b {
            eprintln!("vers={vers} {:32} knfsd: {b}   <-- DIFFERS", "");
            diffs.push(format!("{step}: ours {a:?} knfsd {b:?}"));
        }
    }
    // Absolute checks, so two equally broken runs cannot pass.
    let get = |step: &str| &ours.iter().find(|(s, _)| s == step).unwrap().1;
    assert_eq!(get("readdir 5000"), "count=5000 exact=true");
    assert_eq!(
        get("stat g after link"),
        "file mode=644 nlink=2 size=1048576 uid=0 gid=0"
    );
    assert_eq!(
        get("stat g after chown"),
        "file mode=755 nlink=2 size=1048576 uid=1234 gid=5678"
    );
    assert_eq!(get("listing with open unlinked file"), "[\".nfs*\"]");
    assert_eq!(get("its content"), "true");
    assert_eq!(get("listing after close"), "[]");
    assert_eq!(get("final listing"), "[]");
    // AUTH_SYS as knfsd enforces it, absolutely.
    assert_eq!(get("u1000 read root 0600"), "err EACCES");
    assert_eq!(get("u1000 read root 0644"), "ok");
    assert_eq!(get("u1000 open root 0644 for write"), "err EACCES");
    assert_eq!(get("u1000 create in root 0755 dir"), "err EACCES");
    assert_eq!(
        get("u1000 stat own new file"),
        "file mode=644 nlink=1 size=0 uid=1000 gid=1000"
    );
    assert_eq!(get("u1000 chmod root's file"), "err EPERM");
    assert_eq!(get("u1000 access W_OK root 0644"), "err EACCES");
    assert_eq!(get("u1000 write on after 444"), "ok");
    assert_eq!(get("u1000 own 444 file content"), "aaaabbbb");
    assert_eq!(
        get("squashed root stat new file"),
        "file mode=644 nlink=1 size=0 uid=65534 gid=65534"
    );
    assert_eq!(get("squashed root read root 0600"), "err EACCES");
    assert_eq!(get("squashed root write root 0666"), "ok");
    let unexport = &all["knfsd unexport"];
    assert!(
        unexport[1].1.starts_with("err"),
        "knfsd unexport had no effect: {unexport:?}"
    );
    assert_eq!(
        unexport[2].1, "ok",
        "knfsd re-export did not recover: {unexport:?}"
    );
    assert_eq!(
        all["knfsd stop"][0].1, "err ECONNREFUSED",
        "nfsd still listening after stop"
    );
    assert!(diffs.is_empty(), "servers differ:\n{}", diffs.join("\n"));
}

// ---------------------------------------------------------------- bench

const GANESHA_DIR: &str = "/tmp/export-ganesha";
const BENCH_MIB: u32 = 256;
const SMALL_FILES: usize = 2000;

/// nfs-ganesha (VFS FSAL) in netns `ganesha` at 10.77.3.2, with its own
/// rpcbind, in a private mount namespace like Knfsd's. NFSv3 only, no NLM,
/// no grace (Graceless): the same footing as the other two.
fn start_ganesha(world: &mut World) -> bool {
    if !Path::new("/usr/bin/ganesha.nfsd").is_file() {
        eprintln!("nfs-ganesha not installed on the host: skipped in the bench");
        return false;
    }
    let ns = Netns::create("ganesha", &world.ledger).unwrap();
    world
        ._veths
        .push(link(&world.ledger, &world.client, &ns, 3));
    fs::create_dir_all(GANESHA_DIR).unwrap();
    // The version the bench mounts; NFSv4 clients find the export at its
    // pseudo path, the same path as v3's.
    let protocol = if is_v4() { 4 } else { 3 };
    let conf = format!(
        "NFS_CORE_PARAM {{ Protocols = {protocol}; NFS_Port = 2049; MNT_Port = 20048; \
         Enable_NLM = false; Enable_RQUOTA = false; }}\n\
         NFSV4 {{ Graceless = true; Minor_Versions = 0, 1, 2; }}\n\
         EXPORT {{ Export_Id = 1; Path = {GANESHA_DIR}; Pseudo = {GANESHA_DIR}; \
         Protocols = {protocol}; Transports = TCP; Access_Type = RW; Squash = No_Root_Squash; \
         SecType = sys; FSAL {{ Name = VFS; }} }}\n"
    );
    fs::write("/tmp/ganesha.conf", conf).unwrap();
    let script = "mount -t tmpfs g /run; mkdir -p /run/rpcbind /run/ganesha /var/lib/nfs; \
                  mount -t tmpfs g /var/lib/nfs; mkdir -p /var/lib/nfs/ganesha; \
                  rpcbind -f -w & sleep 1; \
                  exec ganesha.nfsd -F -f /tmp/ganesha.conf -L /tmp/ganesha.log -p /run/ganesha/pid";
    let child = command_in(&ns, "unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", script])
        .spawn()
        .unwrap();
    world.extra.push(child);
    world.extra_ns.push(ns);
    let start = Instant::now();
    let up = world.client.run(|| {
        loop {
            let addr = "10.77.3.2:2049".parse().unwrap();
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
                return true;
            }
            if start.elapsed() > Duration::from_secs(60) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    if !up {
        let log = fs::read_to_string("/tmp/ganesha.log").unwrap_or_default();
        eprintln!("ganesha did not come up:\n{log}");
    }
    up
}

fn timed(what: &str, cmd: &mut Command) -> Duration {
    let start = Instant::now();
    let out = cmd.output().unwrap();
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn drop_caches() {
    nix::unistd::sync();
    fs::write("/proc/sys/vm/drop_caches", "3").unwrap();
}

/// (write MiB/s, read MiB/s, small files/s) on one mount.
fn bench_one(root: &Path) -> (f64, f64, f64) {
    let file = root.join("seq");
    let of = format!("of={}", file.display());
    let count = format!("count={BENCH_MIB}");
    drop_caches();
    let w = timed(
        "dd write",
        Command::new("dd").args(["if=/dev/zero", &of, "bs=1M", &count, "conv=fsync"]),
    );
    drop_caches();
    let iff = format!("if={}", file.display());
    let r = timed(
        "dd read",
        Command::new("dd").args([&iff, "of=/dev/null", "bs=1M"]),
    );
    fs::remove_file(&file).unwrap();
    let dir = root.join("small");
    fs::create_dir(&dir).unwrap();
    let start = Instant::now();
    for i in 0..SMALL_FILES {
        let p = dir.join(format!("f{i}"));
        fs::write(&p, b"0123456789abcdef").unwrap();
        assert_eq!(fs::metadata(&p).unwrap().len(), 16);
        fs::remove_file(&p).unwrap();
    }
    let s = start.elapsed();
    fs::remove_dir(&dir).unwrap();
    let mib = f64::from(BENCH_MIB);
    (
        mib / w.as_secs_f64(),
        mib / r.as_secs_f64(),
        SMALL_FILES as f64 / s.as_secs_f64(),
    )
}

#[test]
#[ignore = "runs inside the guest; bench/nfs-throughput.sh boots it"]
fn guest_bench() {
    require_guest();
    let rounds: usize = std::env::var("SQ_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1);
    let mut world = World::build();
    let mut servers = vec![("ours", world.mount_ours()), ("knfsd", world.mount_knfsd())];
    if start_ganesha(&mut world) {
        servers.push((
            "ganesha",
            world.mount(
                &format!("10.77.3.2:{GANESHA_DIR}"),
                ",mountport=20048,mountproto=tcp",
                "/mnt/ganesha",
            ),
        ));
    }
    let mut lines = vec![
        format!("NFS version {}", nfs_vers()),
        format!(
            "{:8} {:>5} {:>12} {:>12} {:>14}",
            "server", "round", "write MiB/s", "read MiB/s", "small files/s"
        ),
    ];
    for round in 1..=rounds {
        for (name, root) in &servers {
            let (w, r, s) = bench_one(root);
            let line = format!("{name:8} {round:>5} {w:>12.1} {r:>12.1} {s:>14.1}");
            eprintln!("{line}");
            lines.push(line);
        }
    }
    fs::write(
        Path::new(GUEST_OUT_DIR).join("bench.txt"),
        lines.join("\n") + "\n",
    )
    .unwrap();
}

#[test]
#[ignore = "a measurement, not a test: bench/nfs-throughput.sh runs it"]
fn bench_throughput() {
    require_tools();
    let out = PathBuf::from(
        std::env::var("SQ_BENCH_OUT").unwrap_or_else(|_| "target/bench/nfs-throughput".into()),
    );
    let passed: Vec<(&str, OsString)> = ["SQ_BENCH_ROUNDS", VERS_ENV]
        .into_iter()
        .filter_map(|name| Some((name, std::env::var_os(name)?)))
        .collect();
    run_in_guest_at(
        "guest_bench",
        &out,
        &passed,
        Duration::from_secs(1800),
        1536,
        1,
    );
    print!("{}", fs::read_to_string(out.join("bench.txt")).unwrap());
}
