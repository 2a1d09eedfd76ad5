//! `stackquake schema` prints a JSON Schema that accepts every scenario the
//! loader accepts (after `${name}` substitution, as the schema says) and
//! rejects the structural mistakes of the bad corpus.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The schema as the real binary prints it.
fn printed_schema() -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_stackquake"))
        .arg("schema")
        .output()
        .expect("run stackquake schema");
    assert!(
        out.status.success(),
        "stackquake schema exited {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stackquake schema prints JSON")
}

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&printed_schema()).expect("the schema is a valid JSON Schema")
}

/// The YAML as JSON, which is what editors validate against the schema.
fn yaml_to_json(text: &str, name: &str) -> Value {
    serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("{name}: not YAML: {e}"))
}

/// Every problem the validator reports, one line each: `/json/path: message`.
fn problems(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// The texts the loader parses for one file: one per matrix case, with the
/// file's vars and the case's values substituted.
fn substituted_cases(text: &str) -> Vec<String> {
    stackquake::scenario::expand_cases(text, &[])
        .into_iter()
        .map(|c| c.text)
        .collect()
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path);
        }
    }
}

#[test]
fn the_schema_is_draft_7_with_the_model_docs() {
    let schema = printed_schema();
    assert_eq!(
        schema["$schema"], "http://json-schema.org/draft-07/schema#",
        "editors' YAML servers handle draft 7 everywhere"
    );
    assert_eq!(schema["additionalProperties"], false);
    let description = schema["description"].as_str().unwrap();
    assert!(
        description.contains("after `${name}` substitution"),
        "{description}"
    );
    // A doc comment of the model reaches the editor.
    let timeout = &schema["properties"]["timeout"];
    assert!(
        timeout["description"]
            .as_str()
            .unwrap()
            .contains("Wall-clock limit"),
        "{timeout}"
    );
    assert_eq!(timeout["default"], "2m");
    let required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(required, ["schema_version", "id", "title", "steps"]);
}

#[test]
fn every_valid_scenario_file_validates_against_the_schema() {
    let v = validator();
    let mut files = Vec::new();
    yaml_files(&root().join("scenarios"), &mut files);
    yaml_files(&root().join("tests/scenarios"), &mut files);
    let bad_dir = root().join("tests/scenarios/bad");
    files.retain(|f| !f.starts_with(&bad_dir));
    files.sort();
    assert!(
        files.len() >= 15,
        "found only {} scenario files",
        files.len()
    );
    let mut failures = Vec::new();
    for file in &files {
        // Only files the loader accepts: the schema must accept them too.
        if let Err(e) = stackquake::scenario::load_cases(file, &[]) {
            panic!("{} is outside bad/ but does not load:\n{e}", file.display());
        }
        let text = std::fs::read_to_string(file).unwrap();
        for case in substituted_cases(&text) {
            let doc = yaml_to_json(&case, &file.display().to_string());
            let found = problems(&v, &doc);
            if !found.is_empty() {
                failures.push(format!("{}:\n  {}", file.display(), found.join("\n  ")));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Bad-corpus files whose mistake is structural, each with the JSON path of
/// the mistake: the schema must reject them there.
const STRUCTURALLY_BAD: &[(&str, &str)] = &[
    ("unknown-top-key", ""),
    ("missing-title", ""),
    ("schema-version-string", "/schema_version"),
    ("schema-version-2", "/schema_version"),
    ("step-unknown-key", "/steps/0"),
    ("step-for-wrong-type", "/steps/3/for"),
    ("fault-unknown-kind", "/steps/1/fault"),
    ("fault-missing-field", "/steps/1/fault"),
    ("net-delay-unknown-field", "/steps/1/fault"),
    ("workload-unknown-op", "/workloads/0/op"),
    ("workload-count-not-number", "/workloads/0/count"),
    ("expect-unknown-matcher", "/expect/1"),
    ("expect-hang-bad-state", "/expect/1"),
    ("order-unknown-op", "/expect/0"),
    ("never-resumes-without-after", "/expect/0"),
    ("mkfs-ext4", "/images/0/mkfs"),
    ("server-kind-unknown", "/nfs_servers/fs1/kind"),
    ("bad-duration", "/timeout"),
    ("bad-size", "/images/0/size"),
];

#[test]
fn structural_mistakes_of_the_bad_corpus_are_rejected_where_they_are() {
    let v = validator();
    let mut wrong = Vec::new();
    for (name, at) in STRUCTURALLY_BAD {
        let path = root().join(format!("tests/scenarios/bad/{name}.yaml"));
        let text = std::fs::read_to_string(&path).unwrap();
        let doc = yaml_to_json(&text, name);
        let errors: Vec<String> = v
            .iter_errors(&doc)
            .map(|e| e.instance_path().to_string())
            .collect();
        if errors.is_empty() {
            wrong.push(format!("{name}: accepted by the schema"));
        } else if !errors.iter().any(|p| p == at) {
            wrong.push(format!("{name}: rejected at {errors:?}, not at `{at}`"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_unknown_top_key_is_named() {
    let v = validator();
    let text =
        std::fs::read_to_string(root().join("tests/scenarios/bad/unknown-top-key.yaml")).unwrap();
    let found = problems(&v, &yaml_to_json(&text, "unknown-top-key")).join("\n");
    assert!(found.contains("timeout_s"), "{found}");
}

/// The schema describes the file after substitution: a var in a duration
/// field is checked once its value is in, which is what the loader sees.
#[test]
fn vars_are_checked_after_substitution() {
    let v = validator();
    let text = "# yaml-language-server: $schema=scenario.schema.json\n\
                schema_version: 1\nid: m\ntitle: t\nvars: { pause: 1s }\n\
                matrix: { gap: [250ms, 2s] }\n\
                steps: [{ id: s, wait: '${pause}' }, { id: t, wait: '${gap}' }]\n";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("m.yaml");
    std::fs::write(&file, text).unwrap();
    assert_eq!(
        stackquake::scenario::load_cases(&file, &[]).unwrap().len(),
        2
    );
    let cases = substituted_cases(text);
    assert_eq!(cases.len(), 2);
    for case in &cases {
        assert_eq!(
            problems(&v, &yaml_to_json(case, "m.yaml")),
            Vec::<String>::new()
        );
    }
    // As written, `${pause}` is no duration: an editor flags it, as the
    // schema's description and docs/scenarios.md warn.
    let raw = problems(&v, &yaml_to_json(text, "m.yaml"));
    assert!(
        raw.iter().any(|p| p.starts_with("/steps/0/wait")),
        "{raw:?}"
    );
}
