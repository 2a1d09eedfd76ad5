//! Reading a scenario file: YAML → typed model → validated, or every problem at once.

use super::model::Scenario;
use super::validate::{Problems, validate};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read scenario {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The YAML does not fit the model; the text names file:line:col and the
    /// valid choices (rendered by serde-saphyr with a source snippet).
    #[error("{rendered}")]
    Syntax { rendered: String },
    #[error("{0}")]
    Invalid(Problems),
}

pub fn load_file(path: &Path) -> Result<Scenario, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    load_str(&text, &path.display().to_string())
}

/// The parts of a file read before the rest: its variables and matrix.
#[derive(serde::Deserialize, Default)]
struct Prelude {
    #[serde(default)]
    vars: BTreeMap<String, String>,
    #[serde(default)]
    matrix: BTreeMap<String, Vec<String>>,
}

/// Loads a file as one scenario per `matrix:` case (one if there is no
/// matrix), with `${name}` replaced by the file's `vars:`, the case's values
/// and `overrides` (`--var`), in rising precedence. A case's id gets its
/// values appended: `nfs-mount[vers=4.1]`.
pub fn load_cases(path: &Path, overrides: &[(String, String)]) -> Result<Vec<Scenario>, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let file = path.display().to_string();
    let mut out = Vec::new();
    for case in expand_cases(&text, overrides) {
        let mut scenario = load_str(&case.text, &file)?;
        if !case.values.is_empty() {
            let label: Vec<String> = case
                .values
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            scenario.id.value = format!("{}[{}]", scenario.id.value, label.join(","));
        }
        out.push(scenario);
    }
    Ok(out)
}

/// One `matrix:` case of a file: its values, and the file's text with
/// every variable substituted.
pub struct Case {
    /// The matrix values of this case, in matrix order (empty without one).
    pub values: Vec<(String, String)>,
    pub text: String,
}

/// The cases of a scenario file's text, before parsing: one per
/// combination of `matrix:` values (one if there is no matrix), with
/// `${name}` replaced by the file's `vars:`, the case's values and
/// `overrides`, in rising precedence.
pub fn expand_cases(text: &str, overrides: &[(String, String)]) -> Vec<Case> {
    // A file whose prelude does not parse is reported by the full load.
    let prelude: Prelude = serde_saphyr::from_str(text).unwrap_or_default();
    let mut cases: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for (name, values) in &prelude.matrix {
        cases = cases
            .into_iter()
            .flat_map(|case| {
                values.iter().map(move |v| {
                    let mut c = case.clone();
                    c.push((name.clone(), v.clone()));
                    c
                })
            })
            .collect();
    }
    cases
        .into_iter()
        .map(|values| {
            let mut vars = prelude.vars.clone();
            vars.extend(values.iter().cloned());
            vars.extend(overrides.iter().cloned());
            Case {
                text: substitute(text, &vars),
                values,
            }
        })
        .collect()
}

/// Replaces each `${name}` whose name is in `vars`; others stay as written.
pub fn substitute(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = text.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("${{{k}}}"), v);
    }
    out
}

/// Parses and validates `text`, naming it `file` in every message.
pub fn load_str(text: &str, file: &str) -> Result<Scenario, LoadError> {
    // serde_path_to_error tracks where in the model the deserializer is, so
    // a wrong type or unknown key names `steps[3].for` as validation does.
    let path = std::cell::RefCell::new(None);
    let parsed = serde_saphyr::with_deserializer_from_str(text, |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            *path.borrow_mut() = Some(model_path(&e.path().to_string()));
            e.into_inner()
        })
    });
    let scenario: Scenario = parsed.map_err(|e| LoadError::Syntax {
        rendered: render_syntax_error(&e, file, path.borrow().as_deref()),
    })?;
    let problems = validate(&scenario, file);
    if problems.is_empty() {
        Ok(scenario)
    } else {
        Err(LoadError::Invalid(problems))
    }
}

fn render_syntax_error(e: &serde_saphyr::Error, file: &str, path: Option<&str>) -> String {
    let mut text = e.render_with_options(serde_saphyr::render_options! {
        source_name: Some(file),
    });
    if let Some(path) = path.filter(|p| !p.is_empty() && *p != ".")
        && let Some(rest) = text.strip_prefix("error: ")
    {
        text = format!("error: {path}: {rest}");
    }
    // serde lists the valid keys; point at the likeliest one as well.
    if let Some(hint) = closest_choice_hint(&text) {
        text.push_str(&format!("\n  hint: did you mean `{hint}`?"));
    }
    text
}

/// The model path as validation spells it: `Spanned<T>` shows up as a
/// `.value` segment, and a YAML-level error inside a node as `.?`.
fn model_path(raw: &str) -> String {
    raw.split('.')
        .filter(|seg| *seg != "value" && *seg != "?")
        .collect::<Vec<_>>()
        .join(".")
}

/// From "unknown field `wiat`, expected one of id, wait" (or "unknown
/// variant …"), the valid choice closest to the misspelling.
fn closest_choice_hint(message: &str) -> Option<String> {
    let line = message.lines().next()?;
    let (_, rest) = line.split_once("unknown ")?;
    let (_, rest) = rest.split_once('`')?;
    let (wrong, rest) = rest.split_once('`')?;
    let choices = rest
        .split_once("expected one of ")
        .map(|(_, c)| c)
        .or_else(|| rest.split_once("expected ").map(|(_, c)| c))?;
    let choices: Vec<&str> = choices
        .split([',', ' '])
        .map(|c| c.trim_matches(['`', ' ']))
        .filter(|c| !c.is_empty() && *c != "or")
        .collect();
    super::validate::closest(wrong, choices.iter().copied()).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_names_file_line_column_choices_and_the_closest() {
        let text = "schema_version: 1\nid: x\ntitle: t\nsteps:\n  - id: a\n    wiat: 2s\n";
        let err = load_str(text, "s.yaml").unwrap_err().to_string();
        assert!(err.contains("s.yaml:6:5"), "{err}");
        assert!(err.contains("unknown field `wiat`"), "{err}");
        assert!(err.contains("did you mean `wait`?"), "{err}");
    }

    #[test]
    fn wrong_types_name_the_model_path() {
        let text = "schema_version: 1\nid: x\ntitle: t\nsteps:\n  - { id: a, wait: 1s }\n  - { id: b, wait: 1s, for: [1] }\n";
        let err = load_str(text, "s.yaml").unwrap_err().to_string();
        assert!(
            err.starts_with("error: steps[1].for: line 6 column 29:"),
            "{err}"
        );
        let text =
            "schema_version: 1\nid: x\ntitle: t\nworkloads:\n  - { id: w, host: h, op: apend }\n";
        let err = load_str(text, "s.yaml").unwrap_err().to_string();
        assert!(err.starts_with("error: workloads[0].op: "), "{err}");
        assert_eq!(
            model_path("expect[1].value.hang.state"),
            "expect[1].hang.state"
        );
        assert_eq!(model_path("steps[1].?"), "steps[1]");
    }

    #[test]
    fn a_matrix_expands_into_named_cases_and_vars_override() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.yaml");
        let text = "schema_version: 1\nid: m\ntitle: t\nvars: { pause: 1s }\n\
                    matrix: { a: [x, y], b: ['1', '2'] }\nsteps:\n  - { id: s, wait: '${pause}' }\n";
        std::fs::write(&path, text).unwrap();
        let cases = load_cases(&path, &[]).unwrap();
        let ids: Vec<&str> = cases.iter().map(|c| c.id.value.as_str()).collect();
        assert_eq!(
            ids,
            ["m[a=x,b=1]", "m[a=x,b=2]", "m[a=y,b=1]", "m[a=y,b=2]"]
        );
        assert_eq!(cases[0].steps[0].wait.unwrap().to_string(), "1s");
        let over = load_cases(&path, &[("pause".into(), "250ms".into())]).unwrap();
        assert_eq!(over[0].steps[0].wait.unwrap().to_string(), "250ms");
    }

    #[test]
    fn unknown_fault_kind_lists_the_catalogue() {
        let text = "schema_version: 1\nid: x\ntitle: t\nsteps:\n  - id: a\n    fault: { nfs.unexprt: { server: s, export: /e } }\n";
        let err = load_str(text, "s.yaml").unwrap_err().to_string();
        assert!(err.contains("s.yaml:6:14"), "{err}");
        assert!(err.contains("nfs.unexport"), "{err}");
        assert!(err.contains("did you mean `nfs.unexport`?"), "{err}");
    }
}
