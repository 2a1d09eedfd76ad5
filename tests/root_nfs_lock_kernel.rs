//! The in-process server's NLM and NSM against the Linux 6.1 kernel's NFSv3
//! client and lockd, in a QEMU guest (TCG). The server listens on
//! 127.0.0.2 with its portmapper on 127.0.0.2:111 (the kernel asks there for
//! NLM: there is no mount option for the NLM port); a client-host stand-in
//! (`LockConfig::client_host`) is the guest's rpcbind and rpc.statd on
//! 127.0.0.1:111, where the kernel's lockd registers and monitors. Steps:
//! `flock -s`, `flock -x`; a second process blocks and is granted by the
//! GRANTED callback, the holder exits; with nlm.down `flock -x` hangs and
//! the kernel logs "lockd: server 127.0.0.2 not responding", after heal it
//! is granted and "OK" is logged. (What a missing statd does is
//! scenarios/statd-absent-flock-enolck.yaml.)
//!
//! The guest script waits for its own background jobs by pid: the server
//! runs in the background too, so a bare `wait` would wait for it forever
//! (the hang this test was once ignored for).
//!
//! Needs root, qemu-system-x86_64, cpio, busybox, flock (util-linux) and the
//! guest kernel with modules: a missing piece fails the test.

#[path = "nfs_guest_support/mod.rs"]
mod support;

use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use stackquake::nfs::control::{self, DownMode, Request};
use stackquake::nfs::{Listeners, LockConfig, NfsServer, ServerConfig};

const GUEST_ENV: &str = "SQ_GUEST_NLM_EXPORT";

const GUEST_SCRIPT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /tmp /export /mnt/nfs
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /export
ip link set lo up
for m in $(cat /modules.list); do
  case $m in lockd.ko) insmod /modules/$m nlm_timeout=3 ;; *) insmod /modules/$m ;; esac || echo "SQ-FAIL insmod $m"
done
SQ_GUEST_NLM_EXPORT=/export /bin/sqtest kernel_client_locks --exact --nocapture --test-threads=1 >/tmp/server.log 2>&1 &
i=0; while [ ! -s /tmp/port ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
PORT=$(cat /tmp/port)
ctl() { echo "$1" > /tmp/control; i=0; while [ "$(cat /tmp/ack 2>/dev/null)" != "$1" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; }
step() { name=$1; shift; if "$@"; then echo "SQ-OK $name"; else echo "SQ-FAIL $name rc=$?"; fi; }
step mount mount -t nfs -o vers=3,proto=tcp,port=$PORT,mountport=$PORT,mountproto=tcp,addr=127.0.0.2 127.0.0.2:/export /mnt/nfs
touch /mnt/nfs/f
step flock-s flock -s -w 30 /mnt/nfs/f true
step flock-x flock -x -w 30 /mnt/nfs/f true
flock -x /mnt/nfs/f sleep 3 &
BG=$!
sleep 1
t0=$(date +%s)
step flock-contended flock -x -w 40 /mnt/nfs/f true
echo "SQ-INFO contended waited $(( $(date +%s) - t0 ))s"
stuck() { if kill -0 $1 2>/dev/null; then echo "SQ-FAIL $2: pid $1 still running"; grep State /proc/$1/status; cat /proc/$1/stack; tail -n 30 /tmp/server.log; dmesg | tail -n 20; return 0; fi; return 1; }
i=0; while kill -0 $BG 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
stuck $BG holder-exit || echo "SQ-OK holder-exit"
flock -s -w 30 /mnt/nfs/f true & P=$!
i=0; while kill -0 $P 2>/dev/null && [ $i -lt 400 ]; do sleep 0.1; i=$((i+1)); done
stuck $P flock-s-again || { wait $P && echo "SQ-OK flock-s-again" || echo "SQ-FAIL flock-s-again rc=$?"; }
ctl nlm-down
flock -x /mnt/nfs/f true &
P=$!
sleep 35
if kill -0 $P 2>/dev/null; then echo "SQ-OK hung-while-down"; else echo "SQ-FAIL hung-while-down: flock returned"; fi
ctl heal
i=0; while kill -0 $P 2>/dev/null && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
if kill -0 $P 2>/dev/null; then echo "SQ-FAIL granted-after-heal: still blocked"; else wait $P; echo "SQ-OK granted-after-heal rc=$? after $i ticks"; fi
dmesg | grep -i -E "lockd|statd|nlm|rpcbind|svc:" | sed 's/^/SQ-KMSG /'
step umount umount /mnt/nfs
ctl stop; sleep 0.5
echo "--- server log"; tail -n 40 /tmp/server.log
echo SQ-DONE
poweroff -f
"#;

fn guest_server(dir: &str) {
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    let server = NfsServer::start_with_locking(
        ServerConfig::single("/export", PathBuf::from(dir)),
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
    std::fs::write("/tmp/port", server.local_addr().port().to_string()).unwrap();
    let stop = AtomicBool::new(false);
    let mut last = String::new();
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let cmd = std::fs::read_to_string("/tmp/control").unwrap_or_default();
        let cmd = cmd.trim().to_string();
        if cmd == last {
            continue;
        }
        match cmd.as_str() {
            "nlm-down" => {
                let r = control::execute(
                    &server,
                    &Request::NlmDown {
                        mode: DownMode::Stall,
                    },
                    &stop,
                );
                assert!(r.ok);
            }
            "heal" => assert!(control::execute(&server, &Request::HealAll, &stop).ok),
            "stop" => break,
            _ => {}
        }
        eprintln!("control: {cmd}");
        std::fs::write("/tmp/ack", &cmd).unwrap();
        last = cmd;
    }
    server.shutdown();
    host.shutdown();
}

#[test]
fn kernel_client_locks() {
    if let Ok(dir) = std::env::var(GUEST_ENV) {
        guest_server(&dir);
        return;
    }
    support::require_root_and_tools(
        &["qemu-system-x86_64", "cpio", "busybox", "ldd", "flock"],
        "qemu-system-x86, cpio, busybox-static, libc-bin, util-linux",
    );
    let work = tempfile::tempdir().unwrap();
    let kver = support::guest_kernel_version();
    let initrd = support::build_initramfs(
        work.path(),
        &kver,
        support::NFS_CLIENT_MODULES,
        &[("flock", "bin/flock")],
        GUEST_SCRIPT,
    );
    let console = support::boot(&support::Boot {
        kver: &kver,
        initrd: &initrd,
        memory_mb: 1024,
        loglevel: 5,
        timeout: Duration::from_secs(480),
    });
    support::assert_steps_ok(
        &console,
        &[
            "mount",
            "flock-s",
            "flock-x",
            "flock-contended",
            "holder-exit",
            "flock-s-again",
            "hung-while-down",
            "granted-after-heal",
            "umount",
        ],
    );
    assert!(
        console.contains("lockd: server 127.0.0.2 not responding"),
        "the kernel did not log lockd not responding"
    );
    assert!(
        console.contains("lockd: server 127.0.0.2 OK"),
        "the kernel did not log lockd OK"
    );
}
