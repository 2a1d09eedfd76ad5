//! `plan --target staging` and `--allow-external` on the shipped rehearsal
//! (staging/failover-rehearsal.yaml): what it would change on the client,
//! each with its expiry, and a refusal (exit 2) while a remote address it
//! touches is not named, and `run --target staging` refusing alike. No
//! privileges, no side effects.

use std::process::Command;

fn stackquake(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_stackquake"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const REHEARSAL: &str = "staging/failover-rehearsal.yaml";

#[test]
fn the_shipped_rehearsal_validates() {
    let (code, out, err) = stackquake(&["validate", REHEARSAL]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn plan_shows_every_change_with_its_expiry_once_every_remote_is_allowed() {
    let (code, out, err) = stackquake(&[
        "plan",
        "--target",
        "staging",
        "--allow-external",
        "198.51.100.1,192.0.2.10",
        REHEARSAL,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    for line in [
        "192.0.2.10 (allowed)",
        "nft table inet sq_<run>_ttl",
        "element { 192.0.2.10 timeout 40s } in set drop_addr4: added by step blackhole at +2s, expires by itself 40s later",
        "mount 192.0.2.10:/export at <run root>/mnt/share (-o vers=3,proto=tcp,hard,timeo=10,retrans=1,nolock): unmounted at teardown",
        "process: workload writer (append): killed at teardown",
        "process: exec failover at +3s: /usr/local/sbin/filer-failover; killed after 30s (step timeout)",
        "process: abort probe share-reads every 5s: reads the first 64 KiB of <run root>/mnt/share/journal; killed after 50s",
        "on abort (a probe fails): every cut's element deleted at once",
        "writes-stall   an op of workload writer takes longer than 50s",
        "kernel settings: none",
        "on the server: nothing (kind: external)",
    ] {
        assert!(out.contains(line), "missing `{line}` in:\n{out}");
    }
    assert!(
        !out.contains("netns sq-"),
        "a rehearsal builds no namespaces:\n{out}"
    );
    assert!(!out.contains("refused"), "{out}");
}

#[test]
fn plan_refuses_while_a_remote_address_is_not_allowed() {
    for allow in [None, Some("198.51.100.1")] {
        // `stackquake plan …`: the subcommand first, then its flags.
        let mut args = vec!["plan"];
        args.extend(["--target", "staging"]);
        if let Some(a) = allow {
            args.extend(["--allow-external", a]);
        }
        args.push(REHEARSAL);
        let (code, out, err) = stackquake(&args);
        assert_eq!(code, 2, "{out}{err}");
        assert!(out.contains("192.0.2.10 (NOT ALLOWED)"), "{out}");
        assert!(
            out.contains("refused: 192.0.2.10 not named by --allow-external"),
            "{out}"
        );
    }
}

#[test]
fn rehearsals_and_worlds_are_not_mixed_up() {
    let (code, out, err) = stackquake(&["plan", REHEARSAL]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("show it with --target staging"), "{err}");
    let world = "scenarios/blackhole-failover.yaml";
    let (code, out, err) = stackquake(&["plan", "--target", "staging", world]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("no `kind: external` server"), "{err}");
}

// The same rail on `run`: a rehearsal that touches an address the operator
// did not name runs nothing (no reports either), with plan's words;
// `--allow-external` means nothing on another target and is refused.
#[test]
fn run_refuses_before_anything_while_a_remote_address_is_not_allowed() {
    let out_dir = std::env::temp_dir().join(format!("sq-cli-staging-{}", std::process::id()));
    let out_arg = out_dir.to_str().unwrap();
    for allow in [None, Some("198.51.100.1")] {
        // `stackquake run …`: the subcommand first, then its flags.
        let mut args = vec!["run"];
        args.extend(["--target", "staging", "--output", out_arg]);
        if let Some(a) = allow {
            args.extend(["--allow-external", a]);
        }
        args.push(REHEARSAL);
        let (code, out, err) = stackquake(&args);
        assert_eq!(code, 2, "{out}{err}");
        assert!(
            err.contains(
                "refused: 192.0.2.10 not named by --allow-external; \
                 a rehearsal touches no address the operator did not name"
            ),
            "{err}"
        );
        assert!(
            !out_dir.exists(),
            "a refused run wrote {}",
            out_dir.display()
        );
    }
    let world = "scenarios/blackhole-failover.yaml";
    let (code, out, err) = stackquake(&["run", "--target", "staging", world]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("no `kind: external` server"), "{err}");
    let (code, out, err) = stackquake(&[
        "run",
        "--target",
        "host",
        "--allow-external",
        "192.0.2.10",
        world,
    ]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("--allow-external is for --target staging only"),
        "{err}"
    );
}

// Each client-side degradation becomes an element of a set of its own,
// and `plan` says so, with the set's name (its fixed rule's condition) and
// who holds what a delay queues.
#[test]
fn plan_names_the_set_of_each_kind_of_cut_and_delay() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("degraded.yaml");
    std::fs::write(
        &file,
        "schema_version: 1
id: degraded
title: every degradation a staging client can make
requires: { target: [staging] }
hosts:
  client: {}
  filer: { addr: 192.0.2.10/24 }
nfs_servers:
  fs1: { host: filer, kind: external, exports: [{ path: /export }] }
steps:
  - { id: mtu, fault: { net.block: { host: client, toward: filer, min_size: 1401 } }, for: 5s }
  - { id: lossy, fault: { net.block: { host: client, toward: filer, percent: 12.5 } }, for: 5s }
  - id: slow
    fault: { net.delay: { host: client, toward: filer, protocol: tcp, port: 2049, delay: 300ms } }
    for: 5s
",
    )
    .unwrap();
    let (code, out, err) = stackquake(&[
        "plan",
        "--target",
        "staging",
        "--allow-external",
        "192.0.2.10",
        file.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    for line in [
        "element { 192.0.2.10 timeout 5s } in set drop_ge1401_addr4",
        "element { 192.0.2.10 timeout 5s } in set drop_p1250_addr4",
        "element { 192.0.2.10 . tcp . 2049 timeout 5s } in set delay300_port4",
        "a thread of stackquake holds what a delay set queues",
    ] {
        assert!(out.contains(line), "missing `{line}` in:\n{out}");
    }
}
