//! The seed scenarios on Debian's 6.12 kernel too (issue 17's kernel
//! matrix, `linux-image-6.12-amd64` from ci/setup), as the README's main
//! job runs them: every case PASSes, or is XFAIL because its file says
//! this kernel has a known failure. The XFAILs are named here, so a case
//! that starts failing, or a known failure that passes (XPASS), fails the
//! test. Fails loudly where QEMU or the kernel is missing.

use std::collections::BTreeSet;
use std::path::Path;
mod vm_run_support;
use vm_run_support::VmRun;

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
fn every_seed_scenario_passes_on_6_12_or_is_a_known_failure_there() {
    let run = VmRun::new(&["--kernel", "6.12"], "scenarios");
    let (j, ctx) = (&run.journal, &run.ctx);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let kernel = j["kernel"].as_str().unwrap();
    assert!(kernel.starts_with("6.12."), "{kernel}\n{ctx}");
    let results = j["results"].as_array().unwrap();
    let files: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let ran: BTreeSet<String> = results
        .iter()
        .filter_map(|r| Path::new(r["file"].as_str()?).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    assert_eq!(ran, files, "every scenario file ran\n{ctx}");
    let mut xfail = BTreeSet::new();
    for r in results {
        let id = r["id"].as_str().unwrap();
        match r["verdict"].as_str().unwrap() {
            "PASS" => {}
            "XFAIL" => {
                xfail.insert(id);
            }
            other => panic!("{id}: {other}: {}\n{ctx}", r["reason"]),
        }
    }
    let known: BTreeSet<&str> = KNOWN_ON_6_12.iter().copied().collect();
    assert_eq!(xfail, known, "{ctx}");
    assert_eq!(run.code, Some(0), "{ctx}");
}
