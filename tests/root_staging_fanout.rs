//! The staging fan-out playbook (staging/ansible/rehearsal.yml), run by a
//! real `ansible-playbook` against this machine: the test makes a server
//! namespace with a TCP listener and a client namespace on a veth, and
//! runs the playbook (connection local) inside the client namespace, so
//! the rehearsal's table stays there. A passing rehearsal comes home as
//! results/localhost/{junit.xml,journal.json,report.html}; a failing one
//! fails the play and still comes home; nothing is left on the "client".

mod root_world_support;
mod staging_support;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use root_world_support::{TestRun, require_root_and};
use staging_support::{Staging, staging, tables_in};

const PLAYBOOK: &str = "/opt/stackquake-validators/bin/ansible-playbook";

/// A rehearsal whose connects to the server are cut for 2 s; `during`
/// is the exit code the connect made under the cut must have (124 is
/// right: `timeout` killed it; anything else makes the verdict FAIL).
fn rehearsal(server: IpAddr, during: i32) -> String {
    let probe = format!("timeout 1 bash -c 'exec 3<>/dev/tcp/{server}/7085'");
    format!(
        r#"schema_version: 1
id: fanout-cut
title: A timed cut toward the staging server, from a client the playbook reached
requires: {{ target: [staging], tools: [nft, bash, timeout] }}
timeout: 60s
hosts:
  client: {{}}
  filer: {{ addr: {server}/24 }}
nfs_servers:
  fs1: {{ host: filer, kind: external, exports: [{{ path: /export }}] }}
steps:
  - id: window
    parallel:
      - id: cut
        fault: {{ net.block: {{ host: client, toward: filer }} }}
        for: 2s
      - id: during
        offset: 300ms
        exec: {{ host: client, command: [bash, -c, "{probe}"] }}
        timeout: 5s
expect:
  - exit_code: {{ step: during, code: {during} }}
"#
    )
}

/// Runs the playbook in the client namespace with this machine as its
/// only host; the results land in `results`.
fn play(s: &Staging, scenario: &Path, results: &Path) -> Output {
    assert!(
        Path::new(PLAYBOOK).is_file(),
        "{PLAYBOOK} missing: run ci/setup (it installs ansible-core)"
    );
    let playbook = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("staging/ansible/rehearsal.yml");
    Command::new("ip")
        .args(["netns", "exec", s.client.name(), PLAYBOOK])
        .args(["-i", "localhost,", "-c", "local"])
        .arg(&playbook)
        .arg("-e")
        .arg(format!(
            "stackquake_bin={}",
            env!("CARGO_BIN_EXE_stackquake")
        ))
        .arg("-e")
        .arg(format!("scenario={}", scenario.display()))
        .arg("-e")
        .arg(format!(r#"{{"allow_external": ["{}"]}}"#, s.server_ip))
        .arg("-e")
        .arg(format!("results_dir={}", results.display()))
        // This machine's own Python (not a shim on PATH), and su for
        // become: a root shell, no sudo.
        .args(["-e", "ansible_python_interpreter=/usr/bin/python3"])
        .args(["-e", "ansible_become_method=su"])
        .env("ANSIBLE_LOCAL_TEMP", results.join(".ansible-tmp"))
        .output()
        .unwrap()
}

/// The temporary directory the playbook made on the client, as the run's
/// own output names it ("reports in <dir>/out").
fn workdir(said: &str) -> PathBuf {
    let at = said
        .find("reports in ")
        .expect("the run's output in the play")
        + "reports in ".len();
    let out = said[at..].split(['"', '\n', ' ']).next().expect("a path");
    let dir = Path::new(out).parent().expect("<dir>/out").to_path_buf();
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    assert!(name.starts_with("stackquake-"), "{}", dir.display());
    dir
}

fn verdict(results: &Path) -> (String, serde_json::Value) {
    let dir = results.join("localhost");
    let junit = std::fs::read_to_string(dir.join("junit.xml"))
        .unwrap_or_else(|e| panic!("no junit.xml fetched: {e}"));
    let journal: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("journal.json")).expect("journal.json fetched"),
    )
    .unwrap();
    assert!(dir.join("report.html").is_file(), "report.html fetched");
    (junit, journal)
}

#[test]
fn the_playbook_rehearses_on_the_client_and_brings_its_results_home() {
    require_root_and(&["ip", "nft", "bash", "timeout"], &["/proc/self/ns/net"]);
    let t = TestRun::new("root_staging_fanout");
    let s = staging(&t, 75, 7085);
    let scenario = t.scratch("rehearsal.yaml");
    std::fs::write(&scenario, rehearsal(s.server_ip, 124)).unwrap();
    let results = t.scratch("results");
    let out = play(&s, &scenario, &results);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("localhost                  : ok="), "{said}");
    let (junit, journal) = verdict(&results);
    assert!(
        junit.contains("fanout-cut") && !junit.contains("<failure"),
        "{junit}"
    );
    assert_eq!(journal["target"], "staging");
    assert_eq!(journal["results"][0]["verdict"], "PASS", "{journal}");
    assert!(!tables_in(&s.client).contains("_ttl"));
    let dir = workdir(&said);
    assert!(
        dir.starts_with(std::env::temp_dir()) && !dir.exists(),
        "the playbook left {}",
        dir.display()
    );
}

#[test]
fn a_failed_rehearsal_fails_its_host_and_still_brings_its_results_home() {
    require_root_and(&["ip", "nft", "bash", "timeout"], &["/proc/self/ns/net"]);
    let t = TestRun::new("root_staging_fanout");
    let s = staging(&t, 75, 7085);
    let scenario = t.scratch("rehearsal.yaml");
    // Expects the connect under the cut to succeed: the verdict is FAIL.
    std::fs::write(&scenario, rehearsal(s.server_ip, 0)).unwrap();
    let results = t.scratch("results");
    let out = play(&s, &scenario, &results);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("stackquake exited 1"), "{said}");
    let (junit, journal) = verdict(&results);
    assert!(junit.contains("<failure"), "{junit}");
    assert_eq!(journal["results"][0]["verdict"], "FAIL", "{journal}");
    assert!(!tables_in(&s.client).contains("_ttl"));
    let dir = workdir(&said);
    assert!(
        dir.starts_with(std::env::temp_dir()) && !dir.exists(),
        "the playbook left {}",
        dir.display()
    );
}
