//! Every file in tests/scenarios/bad/ is rejected with exactly the message
//! in its `.expected` file (file:line:column, path, what was expected, hint).
//! `UPDATE_EXPECT=1 cargo test --test scenario_bad_corpus` rewrites them;
//! review the diff before committing.

use std::path::Path;

#[test]
fn every_bad_scenario_gives_its_expected_message() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios/bad");
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 40, "the corpus has {} files", files.len());
    let mut mismatches = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(file).unwrap();
        let got = match stackquake::scenario::load_str(&text, &name) {
            Ok(_) => {
                mismatches.push(format!(
                    "{name} loads, but the corpus holds only bad scenarios"
                ));
                continue;
            }
            Err(e) => format!("{e}\n"),
        };
        assert!(
            got.contains(&format!("{name}:")),
            "{name}: message names no file:line:column:\n{got}"
        );
        let expected_path = file.with_extension("expected");
        if update {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&expected_path).unwrap_or_else(|_| {
            panic!(
                "{} is missing (UPDATE_EXPECT=1 writes it)",
                expected_path.display()
            )
        });
        if want != got {
            mismatches.push(format!("--- {name}\nwant:\n{want}got:\n{got}"));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
