//! The in-process server's NLM and NSM alone against the Linux 6.1 kernel's
//! NFSv3 client and lockd, in a TCG guest, without the scenario engine.
//! The server listens on 127.0.0.2 with its portmapper on 127.0.0.2:111
//! (the kernel asks there for NLM: no mount option names the NLM port); a
//! client-host stand-in (`LockConfig::client_host`) is the guest's rpcbind
//! and statd on 127.0.0.1:111, where the kernel's lockd registers and asks
//! to monitor. Shared and exclusive flock; a second process blocks and is
//! granted by the GRANTED callback once the holder exits; with `nlm.down`
//! an exclusive flock hangs and the kernel logs "lockd: server 127.0.0.2
//! not responding", after heal it is granted and "OK" is logged. Then a
//! scenario's `kernel.nlm_timeout`: refused while the mount keeps lockd up,
//! set and put back once it is gone.
//!
//! Needs root, qemu-system-x86_64, the guest kernel, busybox-static,
//! util-linux (flock) and nfs-common: a missing piece fails the test.

mod vm_world_support;

use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use stackquake::engine::{RunOptions, run_scenario};
use stackquake::nfs::control::{self, DownMode, Request};
use stackquake::nfs::{Listeners, LockConfig, NfsServer, ServerConfig};
use stackquake::plan::Target;
use stackquake::report::Verdict;
use vm_world_support::{guest_init, require_guest, require_vm_tools, run_in_guest};

#[test]
#[ignore = "entry point for the guest's PID 1"]
fn guest_entry() {
    guest_init();
}

fn flock(mode: &str, file: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new("flock");
    cmd.arg(mode).args(extra).arg(file);
    cmd
}

/// Waits for `child` up to `limit`; its exit success, or None if still running.
fn wait_up_to(child: &mut Child, limit: Duration) -> Option<bool> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status.success());
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn run(cmd: &mut Command) {
    let status = cmd.status().unwrap();
    assert!(status.success(), "{cmd:?}: {status}");
}

#[test]
#[ignore = "runs inside the guest; flock_through_nlm_and_nsm boots it"]
fn guest_flock() {
    require_guest();
    let (export, mnt) = (Path::new("/tmp/export"), Path::new("/tmp/mnt-nfs"));
    std::fs::create_dir_all(export).unwrap();
    std::fs::create_dir_all(mnt).unwrap();
    run(Command::new("ip").args(["addr", "add", "127.0.0.2/8", "dev", "lo"]));
    let server = NfsServer::start_with_locking(
        ServerConfig::single("/export", export.to_path_buf()),
        Listeners::new(TcpListener::bind("127.0.0.2:0").unwrap()).with_portmap(
            TcpListener::bind("127.0.0.2:111").unwrap(),
            Some(UdpSocket::bind("127.0.0.2:111").unwrap()),
        ),
        LockConfig::default(),
    )
    .unwrap();
    let host = NfsServer::start_with_locking(
        ServerConfig::default(),
        Listeners::new(TcpListener::bind("127.0.0.1:111").unwrap())
            .with_udp(UdpSocket::bind("127.0.0.1:111").unwrap()),
        LockConfig::client_host(),
    )
    .unwrap();
    // A 3 s NLM timeout: "not responding" at the major timeout, 6 × 3 s,
    // instead of a minute. Loaded before the mount pulls lockd in.
    run(Command::new("modprobe").args(["lockd", "nlm_timeout=3"]));
    let port = server.local_addr().port();
    let opts =
        format!("vers=3,proto=tcp,port={port},mountport={port},mountproto=tcp,addr=127.0.0.2");
    run(Command::new("mount")
        .args(["-t", "nfs", "-o", &opts, "127.0.0.2:/export"])
        .arg(mnt));
    let file = mnt.join("f");
    std::fs::File::create(&file).unwrap();

    run(flock("-s", &file, &["-w", "30"]).arg("true"));
    run(flock("-x", &file, &["-w", "30"]).arg("true"));

    // Contended: granted through the GRANTED callback when the holder exits.
    let mut holder = flock("-x", &file, &[])
        .args(["sleep", "3"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let start = Instant::now();
    run(flock("-x", &file, &["-w", "40"]).arg("true"));
    println!("FACT contended flock waited {:?}", start.elapsed());
    assert_eq!(wait_up_to(&mut holder, Duration::from_secs(10)), Some(true));
    run(flock("-s", &file, &["-w", "30"]).arg("true"));

    // NLM stalled: LOCK_EX hangs; healed: granted.
    let stop = AtomicBool::new(false);
    let down = Request::NlmDown {
        mode: DownMode::Stall,
    };
    assert!(control::execute(&server, &down, &stop).ok);
    let mut waiter = flock("-x", &file, &[]).arg("true").spawn().unwrap();
    assert_eq!(
        wait_up_to(&mut waiter, Duration::from_secs(30)),
        None,
        "flock returned while NLM was down"
    );
    assert!(control::execute(&server, &Request::HealAll, &stop).ok);
    let start = Instant::now();
    assert_eq!(wait_up_to(&mut waiter, Duration::from_secs(60)), Some(true));
    println!("FACT granted {:?} after heal", start.elapsed());
    let dmesg = String::from_utf8(Command::new("dmesg").output().unwrap().stdout).unwrap();
    for line in dmesg.lines().filter(|l| l.contains("lockd")) {
        println!("KMSG {line}");
    }
    assert!(dmesg.contains("lockd: server 127.0.0.2 not responding"));
    assert!(dmesg.contains("lockd: server 127.0.0.2 OK"));

    // A scenario's kernel.nlm_timeout while this mount keeps lockd up: lockd
    // would keep its 3 s, so the run refuses and changes nothing.
    let (journal, ok) = run_nlm_timeout_scenario();
    assert!(!ok, "{journal}");
    assert!(journal.contains("lockd is already running"), "{journal}");
    assert_eq!(nlm_timeout(), "3");

    run(Command::new("umount").arg(mnt));

    // With lockd gone, the run sets it and puts the old value back.
    let (journal, ok) = run_nlm_timeout_scenario();
    assert!(ok, "{journal}");
    assert!(
        journal.contains("kernel nlm_timeout 5s (was 3s)"),
        "{journal}"
    );
    assert!(
        journal.contains("restore kernel nlm_timeout 3"),
        "{journal}"
    );
    assert_eq!(nlm_timeout(), "3");
    server.shutdown();
    host.shutdown();
}

fn nlm_timeout() -> String {
    let v = std::fs::read_to_string("/proc/sys/fs/nfs/nlm_timeout").unwrap();
    v.trim().to_string()
}

/// Runs a one-step scenario that sets kernel.nlm_timeout to 5s on this
/// machine (the guest) through the engine (the guest's /tmp hides the
/// stackquake binary of a clone there); its result as JSON and whether it
/// passed.
fn run_nlm_timeout_scenario() -> (String, bool) {
    let text = "schema_version: 1\nid: nlm-timeout\ntitle: kernel.nlm_timeout set and put back\n\
                kernel: { nlm_timeout: 5s }\nhosts: { node: {} }\n\
                steps:\n  - { id: steady, wait: 1s }\n";
    let scenario = stackquake::scenario::load_str(text, "nlm-timeout.yaml").unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let opts = RunOptions {
        target: Target::Host,
        scratch: scratch.path().to_path_buf(),
        artifacts: None,
        observer: None,
    };
    let result = run_scenario(Path::new("nlm-timeout.yaml"), &scenario, opts);
    let json = serde_json::to_string_pretty(&result).unwrap();
    (json, result.verdict == Verdict::Pass)
}

#[test]
fn flock_through_nlm_and_nsm() {
    require_vm_tools();
    let out = run_in_guest("guest_flock", Duration::from_secs(420), 1024);
    assert!(out.contains("FACT granted"), "{out}");
}
