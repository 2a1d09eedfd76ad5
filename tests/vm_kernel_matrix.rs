//! One `run --vm` over two kernels (`--kernel 6.1 --kernel 6.12`): Debian's
//! 6.12 ships every module as .ko.xz, so its guest boots only if the
//! initramfs gets the 9p stack decompressed, and its scenarios pass only if
//! the guest's later loads (xfs, loop, nfs, lockd from the shared root,
//! through kmod) work on compressed modules too. Each result names its
//! kernel in the journal, the JUnit file and the terminal report. With
//! `--jobs 1`: one guest per kernel runs both cases (vm_scenarios covers
//! the default, a guest per case).
//! Needs both kernels (ci/setup installs them); fails loudly without.

use std::path::Path;
use std::process::Command;

#[test]
fn the_same_scenarios_pass_on_6_1_and_on_6_12_with_compressed_modules() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "vm scenario tests need root inside the guest's host"
    );
    let scenarios = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let out = tempfile::tempdir().unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_stackquake"))
        .args([
            "run", "--vm", "--jobs", "1", "--kernel", "6.1", "--kernel", "6.12", "--output",
        ])
        .arg(out.path())
        // XFS on a loop image (xfs, loop) and an NFS mount with a server
        // fault (nfs, nfsv3, sunrpc): modules the guest loads after boot.
        .arg(scenarios.join("xfs-shutdown-under-writes.yaml"))
        .arg(scenarios.join("nfs-write-error-eio.yaml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    let ctx = format!("stdout:\n{stdout}\nstderr:\n{stderr}");
    let text = std::fs::read_to_string(out.path().join("journal.json")).expect(&ctx);
    let j: serde_json::Value = serde_json::from_str(&text).unwrap();
    let results = j["results"].as_array().unwrap();
    assert_eq!(results.len(), 4, "two scenarios on each kernel\n{ctx}");
    let kernels: Vec<&str> = results
        .iter()
        .map(|r| r["kernel"].as_str().unwrap_or_default())
        .collect();
    // In the order given: every case on 6.1, then every case on 6.12.
    assert!(
        kernels[..2].iter().all(|k| k.starts_with("6.1.")),
        "{kernels:?}\n{ctx}"
    );
    assert!(
        kernels[2..].iter().all(|k| k.starts_with("6.12.")),
        "{kernels:?}\n{ctx}"
    );
    for r in results {
        assert_eq!(
            r["verdict"], "PASS",
            "{} on {}: {}\n{ctx}",
            r["id"], r["kernel"], r["reason"]
        );
    }
    assert_eq!(
        j["kernel"].as_str().unwrap(),
        format!("{}, {}", kernels[0], kernels[2]),
        "{ctx}"
    );
    // Each kernel's guest kept its own console beside the merged reports.
    assert!(out.path().join("kernel-6.1/console.log").is_file(), "{ctx}");
    assert!(
        out.path().join("kernel-6.12/console.log").is_file(),
        "{ctx}"
    );
    // The timeline page links each kernel's capture where that guest wrote it.
    let page = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    for k in ["6.1", "6.12"] {
        let pcap = format!("kernel-{k}/nfs-write-error-eio/nfs-fs1.pcap");
        assert!(out.path().join(&pcap).is_file(), "{pcap}\n{ctx}");
        let link = format!(r#"data-kind="pcap" data-server="fs1" href="{pcap}""#);
        assert!(page.contains(&link), "{link} in report.html");
    }
    let junit = std::fs::read_to_string(out.path().join("junit.xml")).unwrap();
    for k in [kernels[0], kernels[2]] {
        let name = format!("name=\"xfs-shutdown-under-writes on {k}\"");
        assert!(junit.contains(&name), "{name} in\n{junit}");
        assert!(
            stdout.contains(&format!("PASS   xfs-shutdown-under-writes on {k}")),
            "{ctx}"
        );
    }
    assert_eq!(run.status.code(), Some(0), "{ctx}");
}
