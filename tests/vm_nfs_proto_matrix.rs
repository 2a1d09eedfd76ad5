//! Issue 13: a TCP/UDP matrix on Debian's kernel, which has no NFS over
//! UDP. The udp case asks for the `nfs_udp` kernel feature through
//! `cases:`, so it is a SKIP naming the kernel option and the config file
//! the guest read, and the tcp case passes. Fails loudly where QEMU or a
//! kernel is missing.

mod vm_run_support;
use vm_run_support::VmRun;

#[test]
fn the_udp_case_skips_on_a_kernel_without_nfs_over_udp_and_tcp_passes() {
    let run = VmRun::new(&["--jobs", "1"], "tests/scenarios/vm/nfs-proto-matrix.yaml");
    let result = |id: &str| run.result(id).clone();
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
    assert_eq!(run.code, Some(0), "{}", run.ctx);
}
