//! The in-process server against an NFS client we did not write: the
//! `nfs-rs` crate (its own XDR, sessions and state handling), on
//! 127.0.0.1, over NFSv3, NFSv4.0 and NFSv4.1. Files are created, written,
//! read back, listed, renamed and removed, and checked on disk; on v4 two
//! clients contend for a byte-range lock; tshark decodes the v4 traffic
//! from the server's capture with nothing malformed. (The kernel client's
//! turn is in the guest: tests/vm_nfs_peers.rs and the v4 scenarios.)

mod nfs_support;

use bytes::Bytes;
use futures::TryStreamExt;
use nfs_rs::{Mount, OPEN_BOTH};
use stackquake::nfs::NfsServer;
use stackquake::nfs::export::Squash;

/// nfs_lock_type4 WRITE_LT (RFC 8881 §18.10).
const WRITE_LT: u32 = 2;

async fn mount(server: &NfsServer, vers: &str) -> Box<dyn Mount> {
    let port = server.local_addr().port();
    let url = format!("nfs://127.0.0.1/export?version={vers}&nfsport={port}&mountport={port}");
    nfs_rs::parse_url_and_mount(&url)
        .await
        .unwrap_or_else(|e| panic!("nfs-rs cannot mount {url}: {e}"))
}

async fn names(m: &dyn Mount) -> Vec<String> {
    let mut stream = m.readdir_path("/").await.unwrap();
    let mut out = Vec::new();
    while let Some(e) = stream.try_next().await.unwrap() {
        if e.file_name != "." && e.file_name != ".." {
            out.push(e.file_name);
        }
    }
    out.sort();
    out
}

async fn files_round_trip(vers: &str) {
    let dir = tempfile::tempdir().unwrap();
    let server = nfs_support::serve(dir.path(), Squash::NoRootSquash);
    files_round_trip_in(&server, dir.path(), vers).await;
}

/// The round trip against `server`, which exports `dir` (empty).
async fn files_round_trip_in(server: &NfsServer, dir: &std::path::Path, vers: &str) {
    let m = mount(server, vers).await;

    let created = m.create_path("notes.txt", Some(0o644)).await.unwrap();
    let data = Bytes::from_static(b"written through nfs-rs\n");
    nfs_rs::write_all(&*m, created.fh.clone(), 0, data.clone())
        .await
        .unwrap();
    m.close(created.fh).await.unwrap();
    assert_eq!(
        std::fs::read(dir.join("notes.txt")).unwrap(),
        &data[..],
        "v{vers}: the server's file holds what the client wrote"
    );

    let opened = m.open_path("notes.txt", OPEN_BOTH).await.unwrap();
    let back = m.read(opened.fh.clone(), 0, 1024).await.unwrap();
    m.close(opened.fh).await.unwrap();
    assert_eq!(&back[..], &data[..], "v{vers}: read back");

    std::fs::write(dir.join("other"), b"x").unwrap();
    assert_eq!(names(&*m).await, ["notes.txt", "other"], "v{vers}: readdir");
    m.rename_path("notes.txt", "renamed.txt").await.unwrap();
    assert!(dir.join("renamed.txt").exists(), "v{vers}: rename");
    m.remove_path("renamed.txt").await.unwrap();
    m.remove_path("other").await.unwrap();
    assert!(names(&*m).await.is_empty(), "v{vers}: remove");
    assert_eq!(std::fs::read_dir(dir).unwrap().count(), 0);
    m.umount().await.unwrap();
}

async fn two_clients_contend_for_a_lock(vers: &str) {
    let dir = tempfile::tempdir().unwrap();
    let server = nfs_support::serve(dir.path(), Squash::NoRootSquash);
    two_clients_contend_for_a_lock_in(&server, vers).await;
}

async fn two_clients_contend_for_a_lock_in(server: &NfsServer, vers: &str) {
    let (a, b) = (mount(server, vers).await, mount(server, vers).await);
    let fa = a
        .create_path_stateful("app.lock", Some(0o644))
        .await
        .unwrap();
    let fb = b.open_path_stateful("app.lock", OPEN_BOTH).await.unwrap();

    let held = a.lock_open_stateful(&fa, WRITE_LT, 0, 100).await.unwrap();
    let refused = b.lock_open_stateful(&fb, WRITE_LT, 50, 10).await;
    assert!(
        refused.is_err(),
        "v{vers}: a second client locked a held range"
    );
    assert!(
        b.lock_test(fb.object.fh.clone(), WRITE_LT, 0, 1)
            .await
            .is_err(),
        "v{vers}: LOCKT saw no conflict"
    );
    // Past the held range the other client may lock. (One lock-owner's
    // locks on a file share one stateid whose seqid each LOCK and LOCKU
    // advances, so only the latest token is current.)
    let beyond = b.lock_open_stateful(&fb, WRITE_LT, 100, 10).await.unwrap();
    b.unlock_stateful(beyond).await.unwrap();
    a.unlock_stateful(held).await.unwrap();
    let now = b.lock_open_stateful(&fb, WRITE_LT, 50, 10).await.unwrap();
    b.unlock_stateful(now).await.unwrap();
    a.close_stateful(fa).await.unwrap();
    b.close_stateful(fb).await.unwrap();
    a.umount().await.unwrap();
    b.umount().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nfs_rs_files_over_v3_v40_v41() {
    for vers in ["3", "4.0", "4.1"] {
        files_round_trip(vers).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nfs_rs_byte_range_locks_over_v40_v41() {
    for vers in ["4.0", "4.1"] {
        two_clients_contend_for_a_lock(vers).await;
    }
}

/// A directory far larger than one READDIR reply is listed whole: the
/// client follows the cookies page by page.
async fn big_directory_listed_whole(vers: &str) {
    let dir = tempfile::tempdir().unwrap();
    let expected: Vec<String> = (0..5000).map(|i| format!("entry-{i:05}")).collect();
    for name in &expected {
        std::fs::write(dir.path().join(name), b"").unwrap();
    }
    let server = nfs_support::serve(dir.path(), Squash::NoRootSquash);
    let m = mount(&server, vers).await;
    assert_eq!(names(&*m).await, expected, "v{vers}: readdir of 5000");
    m.umount().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nfs_rs_big_directory_over_v3_v40_v41() {
    for vers in ["3", "4.0", "4.1"] {
        big_directory_listed_whole(vers).await;
    }
}

/// tshark's fields of the packets `filter` selects in `pcap`, one line each.
fn tshark(pcap: &std::path::Path, filter: &str, field: &str) -> String {
    let out = std::process::Command::new("tshark")
        .args(["-n", "-r"])
        .arg(pcap)
        .args(["-Y", filter, "-T", "fields", "-e", field])
        .output()
        .expect("tshark not found: install Debian package tshark");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tshark_decodes_v40_and_v41_compounds_from_the_capture() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    std::fs::create_dir(&export).unwrap();
    let server = nfs_support::serve(&export, Squash::NoRootSquash);
    let pcap = dir.path().join("nfs4.pcap");
    server.start_capture(&pcap).unwrap();
    files_round_trip_in(&server, &export, "4.0").await;
    files_round_trip_in(&server, &export, "4.1").await;
    two_clients_contend_for_a_lock_in(&server, "4.0").await;
    drop(server);
    // Operation numbers of every COMPOUND call and reply, as tshark reads
    // them (RFC 8881 §18: OPEN 18, WRITE 38, CLOSE 4, LOCK 12, LOCKU 14,
    // SETCLIENTID 35, EXCHANGE_ID 42, CREATE_SESSION 43, SEQUENCE 53).
    let ops: std::collections::BTreeSet<u32> = tshark(&pcap, "nfs", "nfs.opcode")
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter_map(|n| n.parse().ok())
        .collect();
    for op in [18, 38, 4, 12, 14, 35, 42, 43, 53] {
        assert!(ops.contains(&op), "op {op} not decoded; saw {ops:?}");
    }
    let bad = tshark(
        &pcap,
        "_ws.malformed || _ws.expert.severity == error",
        "frame.number",
    );
    assert!(bad.trim().is_empty(), "malformed packets: {bad}");
}
