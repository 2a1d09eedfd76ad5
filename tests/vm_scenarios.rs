//! Every scenario under scenarios/ passes (or is a known failure named
//! below, which its file declares) in QEMU guests booted from Debian's 6.1
//! and 6.12 kernels (issue 17's kernel matrix; ci/setup installs both), as
//! the README's main job runs them: one run over both kernels at the
//! default `--jobs`, each case in a guest of its own, several at once
//! (guests/<n>-<case>-<kernel>/console.log holds each console). The XFAILs
//! are named here, so a case that starts failing, or a known failure that
//! passes (XPASS), fails the test. Fails loudly where QEMU or a kernel is
//! missing.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
mod vm_run_support;
use vm_run_support::VmRun;

/// Cases whose files declare a known failure on 6.1 (`xfail:`), each
/// with the kernel behaviour written up there: they must be XFAIL, no
/// more and no fewer (an XPASS means the kernel changed).
const KNOWN_ON_6_1: &[&str] = &["nfs41-sequence-status-flags[flag=expired_some_state_revoked]"];

/// 6.12's lockd answers a blocked NLM lock "blocked" and drops it
/// (scenarios/nlm-blocked-lock-granted.yaml says how we know), and its
/// nfsd queues no blocked NFSv4 LOCK, so 4.1+ waiters are never notified
/// (scenarios/nfs4-flock-contention.yaml).
const KNOWN_ON_6_12: &[&str] = &[
    "client-crash-lock-freed-by-notify[kind=knfsd]",
    "nlm-blocked-lock-granted",
    "nfs4-flock-contention[kind=knfsd,vers=4.1]",
    "nfs4-flock-contention[kind=knfsd,vers=4.2]",
    "nfs41-sequence-status-flags[flag=expired_some_state_revoked]",
];

#[test]
fn every_seed_scenario_passes_on_6_1_and_6_12_or_is_a_known_failure_there() {
    let run = VmRun::new(&["--kernel", "6.1", "--kernel", "6.12"], "scenarios");
    let (j, ctx) = (&run.journal, &run.ctx);
    let out = run.out.path();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    assert!(j["target"].as_str().unwrap().starts_with("vm"), "{ctx}");
    let files: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let results = run.results();
    for (kernel, known) in [("6.1", KNOWN_ON_6_1), ("6.12", KNOWN_ON_6_12)] {
        let on: Vec<&serde_json::Value> = results.iter().filter(|r| ran_on(r, kernel)).collect();
        // A file with `matrix:` gives one result per case.
        let ran: BTreeSet<String> = on
            .iter()
            .filter_map(|r| Path::new(r["file"].as_str()?).file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .collect();
        assert_eq!(ran, files, "every scenario file ran on {kernel}\n{ctx}");
        let mut xfail = BTreeSet::new();
        for r in &on {
            let id = r["id"].as_str().unwrap();
            match r["verdict"].as_str().unwrap() {
                "PASS" => {
                    for o in r["outcomes"].as_array().unwrap() {
                        assert_eq!(o["passed"], true, "{id} on {kernel}: {o}");
                    }
                }
                "XFAIL" => {
                    xfail.insert(id);
                }
                other => panic!("{id} on {kernel}: {other}: {}\n{ctx}", r["reason"]),
            }
        }
        let known: BTreeSet<&str> = known.iter().copied().collect();
        assert_eq!(xfail, known, "the known failures on {kernel}\n{ctx}");
    }
    assert_eq!(results.len() % 2, 0, "as many cases on each kernel\n{ctx}");

    // The packets beside the timeline: an in-process server's calls are
    // counted per step (the writer's WRITEs reach it while it is healthy
    // and while it fails them), and its capture decodes in tshark. Each
    // kernel's case keeps its files in that kernel's directory, where the
    // timeline page links them.
    let page = std::fs::read_to_string(out.join("report.html")).unwrap();
    for kernel in ["6.1", "6.12"] {
        let eio = results
            .iter()
            .find(|r| r["id"] == "nfs-write-error-eio" && ran_on(r, kernel))
            .unwrap_or_else(|| panic!("nfs-write-error-eio ran on {kernel}\n{ctx}"));
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
        let files_dir = format!("kernel-{kernel}/nfs-write-error-eio");
        assert_eq!(eio["files_dir"], files_dir.as_str(), "{ctx}");
        let pcap = format!("{files_dir}/nfs-fs1.pcap");
        // The client's port is a random reserved one (665-1023), and
        // tshark tries the lower port's dissector first: a port such as 873
        // (rsync) or 862 (TWAMP) hides every NFS packet unless RPC's own
        // heuristic goes first.
        let decoded = Command::new("tshark")
            .args(["-n", "-o", "tcp.try_heuristic_first:TRUE", "-r"])
            .arg(out.join(&pcap))
            .args(["-Y", "nfs.procedure_v3 == 7"])
            .output()
            .expect("tshark runs (ci/setup installs it)");
        let text = String::from_utf8_lossy(&decoded.stdout);
        assert!(
            decoded.status.success(),
            "{pcap}: {}",
            String::from_utf8_lossy(&decoded.stderr)
        );
        if !text.contains("WRITE Call") || text.contains("Malformed") {
            // Only on failure: what the file holds at all.
            let frames = Command::new("tshark")
                .args(["-n", "-o", "tcp.try_heuristic_first:TRUE", "-r"])
                .arg(out.join(&pcap))
                .output()
                .expect("tshark runs");
            panic!(
                "{pcap} ({} bytes) decodes no clean WRITE call:\n{text}\nits first frames:\n{}\n{}",
                std::fs::metadata(out.join(&pcap)).map_or(0, |m| m.len()),
                String::from_utf8_lossy(&frames.stdout)
                    .lines()
                    .take(40)
                    .collect::<Vec<_>>()
                    .join("\n"),
                String::from_utf8_lossy(&frames.stderr)
            );
        }
        let link = format!(r#"data-kind="pcap" data-server="fs1" href="{pcap}""#);
        assert!(page.contains(&link), "{link} in report.html");
    }

    // A storm's mounts each have their own time. While `stalled` holds
    // every new client, none of the 8 mounts of `good` has returned when the
    // op is sampled; each returns after the heal.
    let storm = results
        .iter()
        .find(|r| r["id"] == "nfs4-slow-server-holds-mounts[vers=4.1]" && ran_on(r, "6.1"))
        .expect("the slow-server storm ran on 6.1");
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

    // The guests ran Debian's kernels (each result named its own above),
    // not this machine's.
    let host = stackquake::engine::kernel_release();
    assert!(
        results.iter().all(|r| r["kernel"] != host.as_str()),
        "{ctx}"
    );
    assert_eq!(run.code, Some(0), "{ctx}");
}

/// Whether result `r` ran on a kernel of `series` ("6.1" is 6.1.x, not 6.12).
fn ran_on(r: &serde_json::Value, series: &str) -> bool {
    r["kernel"]
        .as_str()
        .is_some_and(|k| k.starts_with(&format!("{series}.")))
}
