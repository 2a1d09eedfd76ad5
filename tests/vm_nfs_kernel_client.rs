//! The in-process NFS server alone against the Linux 6.1 kernel's NFSv3
//! client, in a TCG guest, without the scenario engine: the server on the
//! guest's loopback, an XFS image on a loop device on the NFS mount (the
//! storage-failover incident's stack), an fsynced write, then an unexport
//! (new calls fail with ESTALE) and a re-export (the same mount works
//! again, and xfs_repair finds the image clean).
//!
//! Needs root, qemu-system-x86_64, the guest kernel, busybox-static,
//! xfsprogs and nfs-common: a missing piece fails the test.

mod vm_world_support;

use std::fs::{self, File};
use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use stackquake::nfs::export::Squash;
use stackquake::nfs::{ExportSpec, NfsServer, ServerConfig};
use vm_world_support::{guest_init, require_guest, require_vm_tools, run_in_guest};

#[test]
#[ignore = "entry point for the guest's PID 1"]
fn guest_entry() {
    guest_init();
}

/// Runs a tool in the guest; panics with its output unless it succeeds.
fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "`{program} {}` failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn write_fsync(path: &Path, mib: usize) {
    let mut f = File::create(path).unwrap();
    let chunk: Vec<u8> = (0..1 << 20).map(|i| (i * 7 + mib) as u8).collect();
    for _ in 0..mib {
        f.write_all(&chunk).unwrap();
    }
    f.sync_all().unwrap();
}

fn errno(r: std::io::Result<impl Sized>) -> Option<i32> {
    r.err().and_then(|e| e.raw_os_error())
}

#[test]
#[ignore = "runs inside the guest; xfs_on_loop_on_nfs_survives_unexport boots it"]
fn guest_xfs_on_loop_on_nfs() {
    require_guest();
    let (export, nfs, xfs) = (
        Path::new("/tmp/export"),
        Path::new("/tmp/mnt-nfs"),
        Path::new("/tmp/mnt-xfs"),
    );
    for d in [export, nfs, xfs] {
        fs::create_dir_all(d).unwrap();
    }
    let server = NfsServer::start(
        ServerConfig {
            exports: vec![ExportSpec {
                name: "/export".into(),
                dir: export.into(),
                clients: vec!["127.0.0.1/32".into()],
                read_only: false,
                squash: Squash::NoRootSquash,
            }],
            ..ServerConfig::default()
        },
        TcpListener::bind("127.0.0.1:0").unwrap(),
    )
    .unwrap();
    let port = server.local_addr().port();
    sh("modprobe", &["-a", "nfsv3", "xfs", "loop"]);
    let opts = format!(
        "vers=3,proto=tcp,port={port},mountport={port},mountproto=tcp,nolock,addr=127.0.0.1"
    );
    sh(
        "mount",
        &[
            "-t",
            "nfs",
            "-o",
            &opts,
            "127.0.0.1:/export",
            nfs.to_str().unwrap(),
        ],
    );
    let image = nfs.join("disk.img");
    File::create(&image).unwrap().set_len(512 << 20).unwrap();
    sh("mkfs.xfs", &["-q", image.to_str().unwrap()]);
    let loopdev = sh("losetup", &["-f", "--show", image.to_str().unwrap()]);
    let loopdev = loopdev.trim();
    sh("mount", &["-t", "xfs", loopdev, xfs.to_str().unwrap()]);
    write_fsync(&xfs.join("data"), 16);
    sh("sync", &[]);

    // Unexported: every new call on the mount gets ESTALE.
    server.set_exported("/export", false).unwrap();
    let create = errno(File::create(nfs.join("while-unexported")));
    let mkdir = errno(fs::create_dir(nfs.join("dir-while-unexported")));
    println!("FACT while unexported: create errno {create:?}, mkdir errno {mkdir:?}");
    assert_eq!(create, Some(libc::ESTALE));
    assert_eq!(mkdir, Some(libc::ESTALE));

    // Re-exported: the same mount and the XFS on it work again.
    server.set_exported("/export", true).unwrap();
    File::create(nfs.join("after")).unwrap();
    write_fsync(&xfs.join("data2"), 4);
    sh("umount", &[xfs.to_str().unwrap()]);
    sh("losetup", &["-d", loopdev]);
    sh("xfs_repair", &["-n", image.to_str().unwrap()]);
    sh("umount", &[nfs.to_str().unwrap()]);
    server.shutdown();
}

#[test]
fn xfs_on_loop_on_nfs_survives_unexport() {
    require_vm_tools();
    let out = run_in_guest("guest_xfs_on_loop_on_nfs", Duration::from_secs(420), 1536);
    assert!(
        out.contains("FACT while unexported: create errno Some(116)"),
        "{out}"
    );
}
