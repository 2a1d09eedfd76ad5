//! The layers of docs/architecture.md hold: a module's code (its tests
//! aside) names only modules of its own layer or below. A new upward import
//! fails here with the file and line, before it tangles the build order.

use std::path::Path;

/// Each top-level module and its layer; higher layers may use lower ones.
const LAYERS: &[(&str, u8)] = &[
    ("cli", 10),
    ("engine", 9),
    ("cleanup", 9),
    ("scenario", 8),
    ("report", 7),
    ("fault", 6),
    ("workload", 6),
    ("expect", 6),
    ("plan", 5),
    ("nfs", 4),
    ("block", 4),
    ("net", 4),
    ("observe", 4),
    ("vm", 4),
    ("sysctl", 4),
    ("process", 4),
    ("ledger", 3),
    ("tools", 3),
    ("journal", 2),
    ("addr", 2),
    ("errno", 2),
    ("sys", 1),
];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

/// Every `crate::<module>` a source file names outside its `#[cfg(test)]`
/// part, with line numbers.
fn imports(text: &str) -> Vec<(usize, String)> {
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    let mut out = Vec::new();
    for (n, line) in code.lines().enumerate() {
        if line.trim_start().starts_with("//") {
            continue;
        }
        for (i, _) in line.match_indices("crate::") {
            let name: String = line[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            out.push((n + 1, name));
        }
    }
    out
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_module_imports_a_layer_above_its_own() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in &all {
        let rel = file.strip_prefix(&src).unwrap();
        let top = rel.iter().next().unwrap().to_string_lossy();
        let module = top.trim_end_matches(".rs");
        if matches!(module, "lib" | "main") {
            continue;
        }
        let own = layer(module)
            .unwrap_or_else(|| panic!("src/{module} is in no layer: add it to LAYERS and the doc"));
        for (line, used) in imports(&std::fs::read_to_string(file).unwrap()) {
            checked += 1;
            let Some(theirs) = layer(&used) else {
                continue; // crate::Foo (a re-export) or a macro path
            };
            if used != module && theirs > own {
                problems.push(format!(
                    "src/{}:{line}: {module} (layer {own}) uses {used} (layer {theirs})",
                    rel.display()
                ));
            }
        }
    }
    assert!(
        checked > 100,
        "only {checked} imports seen: is the scan broken?"
    );
    assert!(
        problems.is_empty(),
        "upward imports:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_scan_sees_an_upward_import() {
    let found = imports(
        "use crate::engine::Foo;\n// crate::cli in a comment\n#[cfg(test)]\nuse crate::cli;",
    );
    assert_eq!(found, vec![(1, "engine".to_string())]);
}
