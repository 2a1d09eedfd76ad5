//! The in-process NFS server against the Linux kernel NFSv3 client, in a QEMU
//! guest (TCG) booted from the Debian 6.1 kernel in /boot with a small
//! initramfs. Inside the guest this same test binary runs the server on the
//! guest's loopback (no network device at all), and a shell script mounts it,
//! creates a 512 MiB sparse image, runs mkfs.xfs on it, attaches it to a loop
//! device, writes with fsync, then unexports the export (calls must fail with
//! ESTALE) and re-exports it (the same mount works again).
//!
//! Needs root, qemu-system-x86_64, cpio, mkfs.xfs, busybox and the guest
//! kernel with modules: a missing piece fails the test.

#[path = "nfs_guest_support/mod.rs"]
mod support;

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use stackquake::nfs::{ExportSpec, NfsServer, ServerConfig};

const GUEST_ENV: &str = "SQ_GUEST_NFS_EXPORT";
/// What the XFS-on-loop-on-NFS steps need beside the NFS client, in
/// insmod order.
const XFS_LOOP_MODULES: &[&str] = &[
    "crypto/crc32c_generic.ko",
    "lib/libcrc32c.ko",
    "fs/xfs/xfs.ko",
    "drivers/block/loop.ko",
];

/// The guest side of the scenario. Each step prints a marker the host checks.
const GUEST_SCRIPT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /tmp /export /mnt/nfs /mnt/xfs
mount -t tmpfs tmpfs /tmp
mount -t tmpfs -o size=800m tmpfs /export
ip link set lo up
for m in $(cat /modules.list); do insmod /modules/$m || echo "SQ-FAIL insmod $m"; done
SQ_GUEST_NFS_EXPORT=/export /bin/sqtest kernel_client --exact --nocapture --test-threads=1 >/tmp/server.log 2>&1 &
i=0; while [ ! -s /tmp/port ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
PORT=$(cat /tmp/port)
step() { name=$1; shift; if "$@"; then echo "SQ-OK $name"; else echo "SQ-FAIL $name rc=$?"; fi; }
step mount mount -t nfs -o vers=3,proto=tcp,port=$PORT,mountport=$PORT,mountproto=tcp,nolock,addr=127.0.0.1 127.0.0.1:/export /mnt/nfs
step truncate truncate -s 512M /mnt/nfs/disk.img
step mkfs mkfs.xfs -q /mnt/nfs/disk.img
step losetup losetup /dev/loop0 /mnt/nfs/disk.img
step mount-xfs mount -t xfs /dev/loop0 /mnt/xfs
step write-fsync dd if=/dev/urandom of=/mnt/xfs/data bs=1M count=16 conv=fsync
step sync sync
ls -ls /mnt/nfs
echo unexport > /tmp/control; sleep 1
if touch /mnt/nfs/while-unexported 2>/tmp/err; then echo "SQ-FAIL stale-create succeeded"; else echo "SQ-OK stale-create $(cat /tmp/err)"; fi
if mkdir /mnt/nfs/dir-while-unexported 2>/tmp/err; then echo "SQ-FAIL stale-mkdir succeeded"; else echo "SQ-OK stale-mkdir $(cat /tmp/err)"; fi
echo export > /tmp/control; sleep 1
step after-create touch /mnt/nfs/after
step after-write-fsync dd if=/dev/urandom of=/mnt/xfs/data2 bs=1M count=4 conv=fsync
step umount-xfs umount /mnt/xfs
step losetup-d losetup -d /dev/loop0
step xfs-repair-check xfs_repair -n /mnt/nfs/disk.img
step umount-nfs umount /mnt/nfs
echo stop > /tmp/control; sleep 0.5
echo "--- server log"; tail -n 20 /tmp/server.log
echo SQ-DONE
poweroff -f
"#;

fn guest_server(dir: &str) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = NfsServer::start(
        ServerConfig {
            exports: vec![ExportSpec {
                name: "/export".into(),
                dir: PathBuf::from(dir),
                clients: vec!["127.0.0.1/32".into()],
                read_only: false,
            }],
        },
        listener,
    )
    .unwrap();
    std::fs::write("/tmp/port", server.local_addr().port().to_string()).unwrap();
    let mut exported = true;
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let cmd = std::fs::read_to_string("/tmp/control").unwrap_or_default();
        match cmd.trim() {
            "unexport" if exported => {
                server.set_exported("/export", false).unwrap();
                exported = false;
                eprintln!("unexported");
            }
            "export" if !exported => {
                server.set_exported("/export", true).unwrap();
                exported = true;
                eprintln!("re-exported");
            }
            "stop" => break,
            _ => {}
        }
    }
    server.shutdown();
}

#[test]
fn kernel_client() {
    if let Ok(dir) = std::env::var(GUEST_ENV) {
        guest_server(&dir);
        return;
    }
    support::require_root_and_tools(
        &[
            "qemu-system-x86_64",
            "cpio",
            "mkfs.xfs",
            "xfs_repair",
            "busybox",
            "ldd",
        ],
        "qemu-system-x86, cpio, xfsprogs, busybox-static, libc-bin",
    );
    let work = tempfile::tempdir().unwrap();
    let kver = support::guest_kernel_version();
    let initrd = support::build_initramfs(
        work.path(),
        &kver,
        &[support::NFS_CLIENT_MODULES, XFS_LOOP_MODULES].concat(),
        &[
            ("mkfs.xfs", "bin/mkfs.xfs"),
            ("xfs_repair", "bin/xfs_repair"),
        ],
        GUEST_SCRIPT,
    );
    let console = support::boot(&support::Boot {
        kver: &kver,
        initrd: &initrd,
        memory_mb: 1536,
        loglevel: 4,
        timeout: Duration::from_secs(420),
    });
    support::assert_steps_ok(
        &console,
        &[
            "mount",
            "mkfs",
            "mount-xfs",
            "write-fsync",
            "stale-create",
            "stale-mkdir",
            "after-create",
            "after-write-fsync",
            "xfs-repair-check",
            "umount-nfs",
        ],
    );
    let stale = console
        .lines()
        .find(|l| l.starts_with("SQ-OK stale-create"))
        .unwrap();
    assert!(
        stale.contains("Stale file handle"),
        "unexport did not give ESTALE: {stale}"
    );
}
