//! `run --repeat N` and `--until-fail`, with the verdict histogram and
//! each round's own files.

mod engine_support;

use engine_support::{Case, SERVER_WORLD, journal, require_root};

fn case(command: &str) -> Case {
    Case::new(&format!(
        "schema_version: 1\nid: rep\ntitle: t\ntimeout: 30s\n{SERVER_WORLD}steps:
  - id: probe
    exec: {{ host: srv, command: {command} }}
expect:
  - exit_code: {{ step: probe, code: 0 }}
"
    ))
}

#[test]
fn repeat_runs_n_times_and_until_fail_stops_at_the_first_failure() {
    require_root();
    let ok = case("[true]");
    let out = ok.spawn(&["--repeat", "3"]).wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let j = journal(&ok.out());
    let results = j["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert!(stdout.contains("rep: 3 runs\n  PASS 3 ###"), "{stdout}");
    // Each round keeps its own files, and the page links each round's.
    let page = std::fs::read_to_string(ok.out().join("report.html")).unwrap();
    for (k, r) in (1..).zip(results) {
        let dir = format!("rep/repeat-{k}");
        assert_eq!(r["files_dir"], dir.as_str());
        let kmsg = format!("{dir}/probe/kmsg.txt");
        assert!(ok.out().join(&kmsg).is_file(), "{kmsg}");
        assert!(page.contains(&format!(r#"href="{kmsg}""#)), "{kmsg} linked");
    }
    assert!(!ok.out().join("rep/probe").exists());

    let bad = case("[false]");
    let out = bad
        .spawn(&["--repeat", "5", "--until-fail"])
        .wait_with_output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert_eq!(
        journal(&bad.out())["results"].as_array().unwrap().len(),
        1,
        "{stdout}"
    );
    assert!(stdout.contains("rep: 1 runs\n  FAIL 1 #"), "{stdout}");
}
