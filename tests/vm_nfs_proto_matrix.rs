//! Issue 13: a TCP/UDP matrix on Debian's kernel, which has no NFS over
//! UDP. The udp case asks for the `nfs_udp` kernel feature through
//! `cases:`, so it is a SKIP naming the kernel option and the config file
//! the guest read, and the tcp case passes. Fails loudly where QEMU or a
//! kernel is missing.

use std::path::Path;
use std::process::Command;

#[test]
fn the_udp_case_skips_on_a_kernel_without_nfs_over_udp_and_tcp_passes() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "vm tests need root on the host that boots the guest"
    );
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios/vm/nfs-proto-matrix.yaml");
    let out = tempfile::tempdir().unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_stackquake"))
        .args(["run", "--vm", "--jobs", "1", "--output"])
        .arg(out.path())
        .arg(&file)
        .output()
        .unwrap();
    let ctx = format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let text = std::fs::read_to_string(out.path().join("journal.json")).expect(&ctx);
    let j: serde_json::Value = serde_json::from_str(&text).unwrap();
    let result = |id: &str| {
        j["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("no result {id}\n{ctx}"))
            .clone()
    };
    let tcp = result("nfs-proto-matrix[proto=tcp]");
    assert_eq!(tcp["verdict"], "PASS", "{tcp:#}");
    let udp = result("nfs-proto-matrix[proto=udp]");
    assert_eq!(udp["verdict"], "SKIP", "{udp:#}");
    let reason = udp["reason"].as_str().unwrap();
    assert!(
        reason.contains("nfs_udp")
            && reason.contains("CONFIG_NFS_DISABLE_UDP_SUPPORT=y in /boot/config-6.1"),
        "{reason}"
    );
    assert_eq!(run.status.code(), Some(0), "{ctx}");
}
