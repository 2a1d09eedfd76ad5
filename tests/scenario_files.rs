//! Every scenario shipped under scenarios/ loads and validates, each
//! `matrix:` case of it with its values substituted.

use std::path::Path;

#[test]
fn every_seed_scenario_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            match stackquake::scenario::load_cases(&path, &[]) {
                Ok(cases) => assert!(!cases.is_empty(), "{}: no case", path.display()),
                Err(e) => panic!("{e}"),
            }
            count += 1;
        }
    }
    assert!(
        count >= 2,
        "expected the seed scenarios in {}",
        dir.display()
    );
}
