//! `plan`, `list` and `validate` with matrices and --var: no privileges, no
//! side effects.

use std::process::Command;

fn stackquake(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_stackquake"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const MATRIX: &str = "schema_version: 1
id: storm
title: parallel mounts
vars: { n: '4' }
matrix: { vers: ['3', '4.1'] }
hosts: { a: {} }
steps:
  - { id: steady, wait: 1s }
  - { id: probe, after: steady, offset: 250ms, exec: { host: a, command: [echo, 'vers=${vers} n=${n}'] }, timeout: 5s }
  - id: both
    parallel:
      - { id: x, wait: 2s }
      - { id: y, offset: 1s, wait: 2s }
";

#[test]
fn plan_shows_the_resolved_timeline_of_every_matrix_case() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.yaml");
    std::fs::write(&file, MATRIX).unwrap();
    let (code, out, err) = stackquake(&["plan", "--var", "n=16", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("storm[vers=3]") && out.contains("storm[vers=4.1]"),
        "{out}"
    );
    assert!(
        out.contains("exec on a: echo vers=4.1 n=16"),
        "--var overrides vars: {out}"
    );
    assert!(out.contains("after steady ends + 250ms"), "{out}");
    assert!(out.contains("with group both + 1s"), "{out}");
    // x and y run side by side; the group ends with y, at +3s after it began.
    assert!(
        out.contains("y              ?..?"),
        "after an exec, times are unknown: {out}"
    );
    assert!(out.contains("(timeout 5s)"), "{out}");
}

#[test]
fn list_names_cases_and_validate_rejects_the_bad_corpus_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.yaml"), MATRIX).unwrap();
    let (code, out, _) = stackquake(&["list", dir.path().to_str().unwrap()]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 2, "{out}");
    let bad = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scenarios/bad");
    let (code, out, err) = stackquake(&["validate", bad]);
    assert_eq!(code, 2);
    assert!(out.contains("0 valid, "), "{out}");
    assert!(
        err.contains("step-after-later.yaml:23:26: steps[0].after"),
        "{err}"
    );
}

#[test]
fn plan_names_the_switch_namespace_and_bridge_it_will_create() {
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/stacked-vlan-nfs.yaml"
    );
    let (code, out, err) = stackquake(&["plan", file]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("    netns sq-<run>-sw (switch sw)\n"), "{out}");
    assert!(
        out.contains("    bridge br0 in netns sq-<run>-sw (switch sw)\n"),
        "{out}"
    );
    // Each host joins the switch once, however many links it has through it.
    assert_eq!(
        out.matches("veth pair server <-> switch sw").count(),
        1,
        "{out}"
    );
    assert!(out.contains("veth pair rd <-> switch sw"), "{out}");
    assert!(!out.contains("veth pair server <-> client"), "{out}");
}

#[test]
fn validate_stops_reading_an_endless_file_at_the_cap() {
    let started = std::time::Instant::now();
    let (code, _, err) = stackquake(&["validate", "/dev/zero"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("/dev/zero: more than 1048576 bytes, the most a scenario file may hold"),
        "{err}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

/// Issue 13: `stackquake plan … | head` panicked on EPIPE. The read end is
/// closed before the child starts, so every write it makes fails.
#[test]
fn output_to_a_closed_pipe_ends_quietly() {
    let scenarios = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios");
    for args in [
        vec!["plan", scenarios],
        vec!["list", scenarios],
        vec!["validate", scenarios],
        vec!["schema"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_stackquake"))
            .args(&args)
            .stdout(writer)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(err, "", "{args:?}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
    }
}

/// Issue 13: `plan` left out VLANs, MTUs, offloads, dm volumes, statd and
/// the firewall table, and named expectations by kind only.
#[test]
fn plan_names_interfaces_volumes_daemons_tables_and_each_expectation() {
    let plan = |name: &str| {
        let file = format!("{}/scenarios/{name}", env!("CARGO_MANIFEST_DIR"));
        let (code, out, err) = stackquake(&["plan", &file]);
        assert_eq!(code, 0, "{err}");
        out
    };
    let vlan = plan("stacked-vlan-nfs.yaml");
    for line in [
        "    veth pair server <-> switch sw (bridge port p-server, mtu 1500, offloads off)\n",
        "      in server: to-sw > vsw.20 > vsw.100, 10.77.0.1/24 on vsw.100\n",
        "    no_errors stat\n",
        "    no_errors lister\n",
        "    hang reader during observe\n",
        "    file /export/seed.bin (256K of zeros), before any mount\n",
    ] {
        assert!(vlan.contains(line), "{line:?} in:\n{vlan}");
    }
    let lockd = plan("lockd-down-knfsd-firewall.yaml");
    for line in [
        "      statd stackquake: stackquake's portmapper and NSM on 127.0.0.1:111\n",
        "    nft table sq_<run> in netns sq-<run>-client (for net.block/net.reject)\n",
        "    knfsd server fs1 (rpc.statd beside it) on server exporting /export\n",
        "    no_hang php during steady\n",
    ] {
        assert!(lockd.contains(line), "{line:?} in:\n{lockd}");
    }
    let detach = plan("volume-detach-xfs-stays-mounted.yaml");
    assert!(
        detach.contains("dm volume sq-<run>-ebs (linear) on it"),
        "{detach}"
    );
    assert!(
        detach.contains("    errno writer EIO during detach..after\n"),
        "{detach}"
    );
}

#[test]
fn list_partitions_deal_every_case_to_exactly_one_share_and_json_feeds_a_matrix() {
    let scenarios = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios");
    let ids = |args: &[&str]| -> Vec<String> {
        let (code, out, err) = stackquake(args);
        assert_eq!(code, 0, "{err}");
        let cases: serde_json::Value = serde_json::from_str(&out).unwrap();
        cases
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                assert!(c["file"].as_str().unwrap().ends_with(".yaml"), "{c}");
                c["id"].as_str().unwrap().to_string()
            })
            .collect()
    };
    let all = ids(&["list", "--format", "json", scenarios]);
    assert!(all.len() > 20, "{all:?}");
    let mut dealt = Vec::new();
    for k in 1..=3 {
        let share = ids(&[
            "list",
            "--format",
            "json",
            "--partition",
            &format!("{k}/3"),
            scenarios,
        ]);
        // Round-robin: shares differ in size by at most one.
        assert!(share.len().abs_diff(all.len() / 3) <= 1, "{share:?}");
        dealt.extend(share);
    }
    let mut sorted_all = all.clone();
    sorted_all.sort();
    dealt.sort();
    assert_eq!(dealt, sorted_all);
    let (code, _, err) = stackquake(&["list", "--partition", "4/3", scenarios]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("1 <= K <= N"), "{err}");
}

#[test]
fn a_run_whose_partition_holds_no_case_runs_nothing_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("one.yaml");
    std::fs::write(
        &file,
        "schema_version: 1\nid: one\ntitle: t\nhosts: { a: {} }\nsteps:\n  - { id: s, wait: 1s }\n",
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let (code, _, err) = stackquake(&[
        "run",
        "--target",
        "host",
        "--partition",
        "2/2",
        "--output",
        out_dir.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("partition 2/2: no scenario cases to run"),
        "{err}"
    );
    assert!(!out_dir.exists());
}

/// Issue 13: hosts share one kernel log, so a `kmsg` matcher in a world
/// where several client hosts mount one server cannot tell which host
/// logged its line. `plan` warns (it cannot know whether the pattern
/// assumes one host); a world with one client host gets no warning.
#[test]
fn plan_warns_of_a_kmsg_matcher_when_several_hosts_mount_one_server() {
    let world = |clients: &[&str]| {
        let mut hosts = String::from("  server: { addr: 10.77.0.1/24 }\n");
        let mut links = String::new();
        let mut mounts = String::new();
        for (i, c) in clients.iter().enumerate() {
            hosts += &format!("  {c}: {{ addr: 10.77.0.{}/24 }}\n", i + 2);
            links += &format!("  - {{ between: [server, {c}] }}\n");
            mounts += &format!(
                "  - {{ id: m{i}, host: {c}, server: fs1, export: /export, at: /mnt/{c}, \
                 options: 'vers=3,nolock' }}\n"
            );
        }
        format!(
            "schema_version: 1\nid: k\ntitle: t\nhosts:\n{hosts}links:\n{links}\
             nfs_servers:\n  fs1:\n    host: server\n    exports:\n      \
             - {{ path: /export, clients: 10.77.0.0/24 }}\nmounts:\n{mounts}\
             steps:\n  - {{ id: s, wait: 1s }}\nexpect:\n  \
             - kmsg: {{ pattern: 'nfs: server .* not responding' }}\n"
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let plan = |name: &str, text: String| {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        let (code, out, err) = stackquake(&["plan", file.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        out
    };
    let two = plan("two.yaml", world(&["web1", "web2"]));
    assert!(
        two.contains(
            "  WARNING: kmsg `nfs: server .* not responding` may match a line logged for \
             any of hosts web1, web2"
        ),
        "{two}"
    );
    let one = plan("one.yaml", world(&["web1"]));
    assert!(!one.contains("WARNING"), "{one}");
}
