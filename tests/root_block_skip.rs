//! Block faults need device-mapper, which this machine's kernel lacks: on
//! the host target a scenario with a dm-backed image is a SKIP whose reason
//! names device-mapper and the way to run it (--vm), and it creates nothing.
//! Fails loudly (instead of skipping) if this kernel *has* dm, so the test
//! is moved to where it means something rather than silently passing.

#[path = "root_world_support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_stackquake");

#[test]
fn a_block_fault_scenario_on_a_kernel_without_dm_is_a_skip_pointing_at_the_vm() {
    support::require_root_and(&["mkfs.xfs"], &["/dev/kmsg"]);
    let has_dm = std::fs::read_to_string("/proc/misc")
        .unwrap()
        .lines()
        .any(|l| l.ends_with(" device-mapper"));
    assert!(
        !has_dm,
        "this kernel has device-mapper: run the block scenarios here for real instead"
    );
    for file in [
        "volume-detach-xfs-stays-mounted.yaml",
        "volume-detach-contrast-healthy.yaml",
    ] {
        let out = tempfile::tempdir().unwrap();
        let status = Command::new(BIN)
            .args(["run", "--target", "host", "--output"])
            .arg(out.path())
            .arg(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("scenarios")
                    .join(file),
            )
            .status()
            .unwrap();
        let text = std::fs::read_to_string(out.path().join("journal.json")).unwrap();
        let j: serde_json::Value = serde_json::from_str(&text).unwrap();
        let result = &j["results"][0];
        assert_eq!(result["verdict"], "SKIP", "{file}: {result:#}");
        let reason = result["reason"].as_str().unwrap();
        assert!(reason.contains("device-mapper"), "{file}: {reason}");
        assert!(reason.contains("--vm"), "{file}: {reason}");
        // Skipped before setup: no step ran, nothing was built.
        let events = result["journal"]["events"].as_array().map_or(0, Vec::len);
        assert_eq!(events, 0, "{file}: a skip builds nothing: {result:#}");
        assert_eq!(status.code(), Some(0), "{file}: a skip is not a failure");
    }
}
