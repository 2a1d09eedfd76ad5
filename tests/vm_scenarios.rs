//! Every scenario under scenarios/ passes (or is a known failure named
//! below, which its file declares) in QEMU guests booted from the
//! host's default kernel (6.1), as the README's main job runs them: at the
//! default `--jobs`, each case in a guest of its own, several at once
//! (guests/<n>-<case>/console.log holds each console). Fails loudly where
//! QEMU or a kernel is missing.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// Cases whose files declare a known failure on 6.1 (`xfail:`), each
/// with the kernel behaviour written up there: they must be XFAIL, no
/// more and no fewer (an XPASS means the kernel changed).
const KNOWN_ON_6_1: &[&str] = &["nfs41-sequence-status-flags[flag=expired_some_state_revoked]"];

#[test]
fn every_seed_scenario_passes_in_the_vm() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "vm scenario tests need root inside the guest's host"
    );
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let out = tempfile::tempdir().unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_stackquake"))
        .args(["run", "--vm", "--output"])
        .arg(out.path())
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    // With --jobs 1 (one core, little memory) one guest runs them all.
    let console = std::fs::read_to_string(out.path().join("console.log")).unwrap_or_default();
    let tail: String = console
        .lines()
        .rev()
        .take(40)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    let ctx = format!("stdout:\n{stdout}\nstderr:\n{stderr}\nconsole tail:\n{tail}");
    let text = std::fs::read_to_string(out.path().join("journal.json")).expect(&ctx);
    let j: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(j["target"].as_str().unwrap().starts_with("vm"), "{ctx}");
    let files: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let results = j["results"].as_array().unwrap();
    // A file with `matrix:` gives one result per case.
    let ran: BTreeSet<String> = results
        .iter()
        .map(|r| {
            let f = r["file"].as_str().unwrap_or_default();
            Path::new(f)
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        })
        .collect();
    assert_eq!(ran, files, "every scenario file ran\n{ctx}");
    assert!(results.len() >= files.len(), "{ctx}");
    let mut xfail = BTreeSet::new();
    for r in results {
        let id = r["id"].as_str().unwrap();
        if r["verdict"] == "XFAIL" {
            xfail.insert(id);
            continue;
        }
        assert_eq!(r["verdict"], "PASS", "{id}: {}\n{ctx}", r["reason"]);
        for o in r["outcomes"].as_array().unwrap() {
            assert_eq!(o["passed"], true, "{id}: {o}");
        }
    }
    let known: BTreeSet<&str> = KNOWN_ON_6_1.iter().copied().collect();
    assert_eq!(xfail, known, "the known failures on 6.1\n{ctx}");
    // The packets beside the timeline: an in-process server's calls are
    // counted per step (the writer's WRITEs reach it while it is healthy
    // and while it fails them), and its capture decodes in tshark.
    let eio = results
        .iter()
        .find(|r| r["id"] == "nfs-write-error-eio")
        .expect("nfs-write-error-eio ran");
    let writes_in = |step: &str| {
        eio["journal"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["event"] == "rpc_calls" && e["step"] == step && e["server"] == "fs1")
            .unwrap_or_else(|| panic!("no rpc_calls for {step}\n{ctx}"))["calls"]["nfsv3 WRITE"]
            .as_u64()
            .unwrap_or(0)
    };
    assert!(
        writes_in("steady") > 0 && writes_in("broken") > 0,
        "{eio:#}"
    );
    let pcap = out.path().join("nfs-write-error-eio/nfs-fs1.pcap");
    let decoded = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(&pcap)
        .args(["-Y", "nfs.procedure_v3 == 7"])
        .output()
        .expect("tshark runs (ci/setup installs it)");
    let text = String::from_utf8_lossy(&decoded.stdout);
    assert!(
        decoded.status.success(),
        "{}",
        String::from_utf8_lossy(&decoded.stderr)
    );
    assert!(
        text.contains("WRITE Call") && !text.contains("Malformed"),
        "{text}"
    );
    let page = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    assert!(
        page.contains(
            r#"data-kind="pcap" data-server="fs1" href="nfs-write-error-eio/nfs-fs1.pcap""#
        )
    );

    // A storm's mounts each have their own time. While `stalled` holds
    // every new client, none of the 8 mounts of `good` has returned when the
    // op is sampled; each returns after the heal.
    let storm = results
        .iter()
        .find(|r| r["id"] == "nfs4-slow-server-holds-mounts[vers=4.1]")
        .expect("the slow-server storm ran");
    let events = storm["journal"]["events"].as_array().unwrap();
    let of_fastmounts = |kind: &str| {
        events
            .iter()
            .find(|e| e["event"] == kind && e["workload"] == "fastmounts")
            .unwrap_or_else(|| panic!("no {kind} of fastmounts\n{storm:#}"))["mounts"]
            .as_array()
            .unwrap()
            .clone()
    };
    let sampled = of_fastmounts("indeterminate");
    assert_eq!(sampled.len(), 8, "{sampled:?}");
    assert!(sampled.iter().all(|m| m["end_ns"].is_null()), "{sampled:?}");
    let healed = events
        .iter()
        .find(|e| e["event"] == "fault_healed" && e["step"] == "blackhole")
        .unwrap()["t_ns"]
        .as_u64()
        .unwrap();
    let done = of_fastmounts("op");
    let indexes: Vec<u64> = done.iter().map(|m| m["index"].as_u64().unwrap()).collect();
    assert_eq!(indexes, (0..8).collect::<Vec<_>>(), "{done:?}");
    assert!(
        done.iter()
            .all(|m| m["end_ns"].as_u64().unwrap() > healed && m["errno"].is_null()),
        "healed at {healed}: {done:?}"
    );

    // The guest ran the real 6.1 kernel, not this machine's.
    assert_ne!(
        j["kernel"].as_str().unwrap(),
        stackquake::engine::kernel_release(),
        "{ctx}"
    );
    assert_eq!(run.status.code(), Some(0), "{ctx}");
}
