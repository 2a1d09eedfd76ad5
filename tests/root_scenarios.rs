//! The host target end to end, as root on this machine's own kernel: a seed
//! scenario passes and leaves nothing behind; a run killed with SIGKILL is
//! finished off by `stackquake cleanup`; an NFS scenario on a kernel without
//! NFS is a SKIP that points at the vm target.

#[path = "root_world_support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_stackquake");

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name)
}

fn journal(out: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(out.join("journal.json")).expect("journal.json written");
    serde_json::from_str(&text).expect("journal.json is JSON")
}

fn ledgers() -> Vec<PathBuf> {
    std::fs::read_dir("/run/stackquake/ledger")
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

#[test]
fn xfs_shutdown_scenario_passes_on_the_host_and_leaves_nothing() {
    support::require_root_and(&["mkfs.xfs"], &["/dev/loop-control", "/dev/kmsg"]);
    let out = tempfile::tempdir().unwrap();
    let run = Command::new(BIN)
        .args(["run", "--target", "host", "--output"])
        .arg(out.path())
        .arg(scenario("xfs-shutdown-under-writes.yaml"))
        .stdout(Stdio::null())
        .output()
        .unwrap();
    let j = journal(out.path());
    let result = &j["results"][0];
    assert_eq!(result["verdict"], "PASS", "{:#}", result["outcomes"]);
    assert_eq!(run.status.code(), Some(0));
    // xfs.shutdown has no heal (issue 13: progress said `heal xfs.shutdown`).
    let progress = String::from_utf8_lossy(&run.stderr);
    assert!(progress.contains("inject xfs.shutdown"), "{progress}");
    assert!(!progress.contains("heal   xfs.shutdown"), "{progress}");
    // The five expectations of the file, then the default kmsg deny-list.
    let outcomes = result["outcomes"].as_array().unwrap();
    assert_eq!(outcomes.len(), 6, "{outcomes:#?}");
    // never_resumes: no write succeeded after the shutdown.
    assert_eq!(
        outcomes[1]["expectation"], "writer never succeeds again after shutdown",
        "{outcomes:#?}"
    );
    assert!(
        outcomes[5]["expectation"]
            .as_str()
            .unwrap()
            .contains("no BUG/Oops/WARNING"),
        "{outcomes:#?}"
    );
    let run = result["journal"]["run_id"].as_str().unwrap();
    assert_eq!(support::leftovers(run), Vec::<String>::new());
    assert!(
        !ledgers().iter().any(|l| l.to_string_lossy().contains(run)),
        "a clean run removes its ledger"
    );
    let junit = std::fs::read_to_string(out.path().join("junit.xml")).unwrap();
    assert!(junit.contains("xfs-shutdown-under-writes"), "{junit}");
}

#[test]
fn a_run_killed_with_sigkill_is_cleaned_up_by_cleanup() {
    support::require_root_and(&["mkfs.xfs"], &["/dev/loop-control", "/dev/kmsg"]);
    let before = ledgers();
    let out = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["run", "--target", "host", "--output"])
        .arg(out.path())
        .arg(scenario("xfs-shutdown-under-writes.yaml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once its world stands: the ledger records the XFS mount. Its
    // ledger is the one whose header names this child (other tests may be
    // running scenarios at the same time).
    let owner = format!("\"pid\":{},", child.id());
    let until = Instant::now() + Duration::from_secs(30);
    let ledger = loop {
        let new: Vec<PathBuf> = ledgers()
            .into_iter()
            .filter(|l| !before.contains(l))
            .collect();
        if let Some(l) = new.iter().find(|l| {
            std::fs::read_to_string(l).is_ok_and(|t| {
                t.lines().next().is_some_and(|h| h.contains(&owner))
                    && (t.matches("\"mount\"").count() >= 1 || t.contains("Mount"))
            })
        }) {
            break l.clone();
        }
        assert!(Instant::now() < until, "the run never mounted its image");
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_millis(500)); // let the workload start
    child.kill().unwrap();
    child.wait().unwrap();
    let run = ledger.file_stem().unwrap().to_string_lossy().into_owned();
    assert!(
        !support::leftovers(&run).is_empty(),
        "the killed run should have left its world behind"
    );
    let cleanup = Command::new(BIN).arg("cleanup").output().unwrap();
    let text = String::from_utf8_lossy(&cleanup.stdout);
    assert_eq!(cleanup.status.code(), Some(0), "{text}");
    assert!(text.contains("removed"), "{text}");
    assert_eq!(support::leftovers(&run), Vec::<String>::new(), "{text}");
    assert!(!ledger.exists(), "cleanup removes the ledger it finished");
}

#[test]
fn nfs_scenario_on_a_kernel_without_nfs_is_a_skip_pointing_at_the_vm() {
    support::require_root_and(&["mkfs.xfs"], &["/dev/kmsg"]);
    let out = tempfile::tempdir().unwrap();
    let status = Command::new(BIN)
        .args(["run", "--target", "host", "--output"])
        .arg(out.path())
        .arg(scenario("nfs-unexport-mid-io.yaml"))
        .status()
        .unwrap();
    let j = journal(out.path());
    let result = &j["results"][0];
    let has_nfs = std::fs::read_to_string("/proc/filesystems")
        .unwrap()
        .lines()
        .any(|l| l.split_whitespace().last() == Some("nfs"));
    if has_nfs {
        // A kernel with an NFS client runs the incident for real.
        assert_eq!(result["verdict"], "PASS", "{result:#}");
    } else {
        assert_eq!(result["verdict"], "SKIP", "{result:#}");
        let reason = result["reason"].as_str().unwrap();
        assert!(reason.contains("NFS client"), "{reason}");
        assert!(reason.contains("--target vm"), "{reason}");
        assert_eq!(status.code(), Some(0), "a skip is not a failure");
    }
}
