//! Issue 15 end to end in a QEMU guest: a knfsd "staging server" in a
//! namespace of the test's own (nothing of it is stackquake's world), an
//! operator's failover script that unexports and re-exports through
//! exportfs, and `stackquake run --target staging` on a client namespace
//! that mounts the server by its address alone (its rpcbind names the
//! ports), with a timed `net.block` around the failover. Expected: the
//! fsynced writer stalls, sees no error, and every acknowledged record is
//! intact; afterwards the client namespace has no table of the run (a
//! mount or table teardown left would have made the verdict ERROR).

mod vm_world_support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use stackquake::ledger::{Ledger, RunId};
use stackquake::net::{Netns, VethPair, add_address, command_in, set_up};
use stackquake::nfs::knfsd::{Knfsd, KnfsdConfig, KnfsdExport};
use stackquake::report::{RunReport, Verdict};
/// The stackquake binary, copied by the host into the guest's output
/// directory (GUEST_OUT_DIR): a clone's target/debug under /tmp is hidden
/// from the guest, which gets a tmpfs there.
const BIN_IN_OUT: &str = "stackquake";

use vm_world_support::{guest_init, require_guest, require_vm_tools, run_in_guest_at};

#[test]
#[ignore = "PID 1 of the guest; the host test boots it"]
fn guest_entry() {
    guest_init();
}

const EXPORT: &str = "/tmp/export-staging";
const CLIENTS: &str = "10.99.90.0/24";
const OPTIONS: &str = "rw,sync,no_root_squash,no_subtree_check,fsid=1";

/// The operator's failover: unexport, a moment with no export, export
/// again, all inside the server's namespaces.
fn failover_script(anchor: u32) -> String {
    let enter = format!("nsenter -t {anchor} -m -n --");
    format!(
        "#!/bin/bash\nset -e\n{enter} exportfs -u {CLIENTS}:{EXPORT}\nsleep 2\n\
         {enter} exportfs -o {OPTIONS} {CLIENTS}:{EXPORT}\necho failover done\n"
    )
}

fn rehearsal(script: &str) -> String {
    format!(
        r#"schema_version: 1
id: vm-staging-failover
title: A failover behind a timed cut, rehearsed against a real knfsd
requires: {{ target: [staging], tools: [nft] }}
timeout: 120s
hosts:
  client: {{}}
  filer: {{ addr: 10.99.90.2/24 }}
nfs_servers:
  fs1: {{ host: filer, kind: external, exports: [{{ path: {EXPORT} }}] }}
mounts:
  - id: share
    host: client
    server: fs1
    export: {EXPORT}
    at: /mnt/share
    options: vers=3,proto=tcp,hard,timeo=10,retrans=1,nolock
workloads:
  - {{ id: writer, host: client, op: append, path: /mnt/share/journal, every: 20ms,
      fsync: true, deadline: 40s }}
steps:
  - {{ id: steady, wait: 2s }}
  - id: blackhole
    fault: {{ net.block: {{ host: client, toward: filer }} }}
    for: 8s
  - id: failover
    after: steady
    offset: 1s
    exec: {{ host: client, command: [bash, {script}] }}
    timeout: 10s
  - {{ id: after, after: blackhole, wait: 10s }}
expect:
  - exit_code: {{ step: failover, code: 0 }}
  - no_errors: {{ workload: writer }}
  - resumes_within: {{ workload: writer, duration: 15s, after: blackhole }}
  - data: {{ workload: writer, verify: all_acknowledged }}
"#
    )
}

#[test]
#[ignore = "runs inside the guest; a_failover_rehearsal_against_knfsd boots it"]
fn guest_rehearsal() {
    require_guest();
    let status = Command::new("modprobe")
        .args(["-a", "nfsd", "nfsv3", "veth"])
        .status()
        .unwrap();
    assert!(status.success(), "modprobe nfsd nfsv3 veth");
    let run = RunId::generate();
    let ledger =
        Ledger::create(Path::new("/run/stackquake"), &run, Path::new("vm_staging")).unwrap();
    let client = Netns::create("client", &ledger).unwrap();
    let filer = Netns::create("filer", &ledger).unwrap();
    let _veth = VethPair::create((&client, "sqc"), (&filer, "sqs"), None, &ledger).unwrap();
    add_address(&client, "sqc", "10.99.90.1/24").unwrap();
    add_address(&filer, "sqs", "10.99.90.2/24").unwrap();
    for (ns, ifname) in [(&client, "sqc"), (&filer, "sqs")] {
        ns.set_loopback_up().unwrap();
        set_up(ns, ifname).unwrap();
    }
    std::fs::create_dir_all(EXPORT).unwrap();
    let mut knfsd = Knfsd::start(&filer, &KnfsdConfig::default(), Some(&ledger)).unwrap();
    knfsd
        .export(&KnfsdExport {
            dir: EXPORT.into(),
            clients: CLIENTS.into(),
            options: OPTIONS.into(),
        })
        .unwrap();
    let script = "/tmp/failover.sh";
    std::fs::write(script, failover_script(knfsd.anchor_pid())).unwrap();
    let file = "/tmp/rehearsal.yaml";
    std::fs::write(file, rehearsal(script)).unwrap();
    let out_dir = Path::new(&std::env::var("OUT").unwrap()).join("report");
    // The host put the binary in the shared output directory: the guest
    // sees only the test binary's own directory of a clone under /tmp.
    let bin = Path::new(&std::env::var("OUT").unwrap()).join(BIN_IN_OUT);
    let out = Command::new("ip")
        .args(["netns", "exec", "client"])
        .arg(&bin)
        .args([
            "run",
            "--target",
            "staging",
            "--allow-external",
            "10.99.90.2",
        ])
        .arg("--output")
        .arg(&out_dir)
        .arg(file)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{said}");
    let report = RunReport::read(&out_dir).unwrap_or_else(|e| panic!("{e}: {said}"));
    let r = &report.results[0];
    assert_eq!(r.verdict, Verdict::Pass, "{:?}\n{said}", r.reason);
    assert_eq!(out.status.code(), Some(0), "{said}");
    // The writer stalled under the cut: some op took most of it.
    let longest = r
        .journal
        .events
        .iter()
        .filter_map(|e| match e {
            stackquake::journal::Event::Op {
                start_ns, end_ns, ..
            } => Some(end_ns - start_ns),
            _ => None,
        })
        .max()
        .unwrap();
    assert!(
        Duration::from_nanos(longest) > Duration::from_secs(5),
        "no op stalled: longest {longest} ns"
    );
    let tables = command_in(&client, "nft")
        .args(["list", "tables"])
        .output()
        .unwrap();
    let tables = String::from_utf8_lossy(&tables.stdout);
    assert!(!tables.contains("_ttl"), "{tables}");
    println!("STAGING REHEARSAL PASS (longest op {longest} ns)");
    drop(knfsd);
}

#[test]
fn a_failover_rehearsal_against_knfsd() {
    require_vm_tools();
    let out = tempfile::tempdir().unwrap();
    std::fs::copy(
        env!("CARGO_BIN_EXE_stackquake"),
        out.path().join(BIN_IN_OUT),
    )
    .unwrap();
    let stdout = run_in_guest_at(
        "guest_rehearsal",
        out.path(),
        &[],
        Duration::from_secs(300),
        1024,
    );
    assert!(stdout.contains("STAGING REHEARSAL PASS"), "{stdout}");
}
