//! Reading a scenario file: YAML → typed model → validated, or every problem at once.

use super::model::Scenario;
use super::validate::{Problem, Problems, validate};
use crate::plan::Plan;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The most a scenario file may hold: far above any real scenario, and
/// small enough that `validate /dev/zero` fails at once instead of reading
/// until memory runs out.
pub const MAX_SCENARIO_BYTES: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read scenario {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path}: more than {cap} bytes, the most a scenario file may hold\n  hint: is it a scenario? those are a few kilobytes of YAML"
    )]
    TooLarge { path: PathBuf, cap: u64 },
    #[error(
        "{path}:{line}:{column}: not UTF-8 text (byte 0x{byte:02x})\n  hint: a scenario is a UTF-8 YAML file"
    )]
    NotUtf8 {
        path: PathBuf,
        line: usize,
        column: usize,
        byte: u8,
    },
    /// The YAML does not fit the model; the text names file:line:col and the
    /// valid choices (rendered by serde-saphyr with a source snippet), for
    /// every problem the parser can find.
    #[error("{rendered}")]
    Syntax { rendered: String },
    #[error("{0}")]
    Invalid(Problems),
}

pub fn load_file(path: &Path) -> Result<Plan, LoadError> {
    let text = read_text(path)?;
    load_str(&text, &path.display().to_string())
}

/// Reads at most [`MAX_SCENARIO_BYTES`] (a device or a pipe may never end)
/// and names the line and column of the first byte that is not UTF-8.
fn read_text(path: &Path) -> Result<String, LoadError> {
    let read = |source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read)?;
    let mut bytes = Vec::new();
    file.take(MAX_SCENARIO_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read)?;
    if bytes.len() as u64 > MAX_SCENARIO_BYTES {
        return Err(LoadError::TooLarge {
            path: path.to_path_buf(),
            cap: MAX_SCENARIO_BYTES,
        });
    }
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let good = std::str::from_utf8(&bytes[..valid]).unwrap_or_default();
        LoadError::NotUtf8 {
            path: path.to_path_buf(),
            line: good.matches('\n').count() + 1,
            column: good.rsplit('\n').next().unwrap_or("").chars().count() + 1,
            byte: bytes[valid],
        }
    })
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
pub fn load_cases(path: &Path, overrides: &[(String, String)]) -> Result<Vec<Plan>, LoadError> {
    let text = read_text(path)?;
    let file = path.display().to_string();
    let mut out = Vec::new();
    for case in expand_cases(&text, overrides) {
        let mut scenario = load_case(&case.text, &file, &case.values)?;
        if !case.values.is_empty() {
            let label: Vec<String> = case
                .values
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            scenario.id = format!("{}[{}]", scenario.id, label.join(","));
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

/// Parses and validates `text`, naming it `file` in every message, and
/// lowers it into the plan a run follows. A file that does not parse gets
/// every parse error the parser can find (see recover.rs), but no semantic
/// checks: those would judge a partial model.
pub fn load_str(text: &str, file: &str) -> Result<Plan, LoadError> {
    load_case(text, file, &[])
}

/// [`load_str`] for one `matrix:` case, whose `values` pick the `cases:`
/// rules that apply.
pub fn load_case(text: &str, file: &str, values: &[(String, String)]) -> Result<Plan, LoadError> {
    if is_empty(text) {
        return Err(LoadError::Invalid(Problems(vec![Problem {
            file: file.to_string(),
            line: 1,
            column: 1,
            path: String::new(),
            message: "the file holds no scenario: it is empty".into(),
            hint: Some("a scenario needs at least schema_version, id, title and steps".into()),
        }])));
    }
    let undefined = super::recover::undefined_vars(text);
    let first = match parse(text, file, None, true) {
        Ok(scenario) => {
            let problems = validate(&scenario, file);
            if problems.is_empty() {
                return Ok(super::lower::lower(&scenario, values));
            }
            let located = problems
                .0
                .iter()
                .map(|p| (p.line, p.column, p.path.clone()))
                .collect();
            let named = super::recover::undefined_problems(text, file, &undefined, located);
            if named.is_empty() {
                return Err(LoadError::Invalid(problems));
            }
            let on_named_line =
                |p: &Problem| named.iter().any(|n| n.line == p.line && n.file == p.file);
            let mut all: Vec<Problem> = problems
                .0
                .into_iter()
                .filter(|p| !on_named_line(p))
                .collect();
            all.extend(named);
            all.sort_by_key(|p| (p.line, p.column));
            return Err(LoadError::Invalid(Problems(all)));
        }
        Err(e) => e,
    };
    let errors = super::recover::every_syntax_error(text, first, |t, index, snippet| {
        parse(t, file, index, snippet)
    });
    let located = errors
        .iter()
        .map(|e| (e.line, e.column, e.path.clone()))
        .collect();
    let named = super::recover::undefined_problems(text, file, &undefined, located);
    let mut out: Vec<(u64, u64, String)> = errors
        .into_iter()
        .filter(|e| !named.iter().any(|n| n.line == e.line))
        .map(|e| (e.line, e.column, e.rendered))
        .collect();
    out.extend(named.into_iter().map(|p| (p.line, p.column, p.to_string())));
    out.sort_by_key(|(line, column, _)| (*line, *column));
    let rendered: Vec<String> = out.into_iter().map(|(_, _, r)| r).collect();
    Err(LoadError::Syntax {
        rendered: rendered.join("\n"),
    })
}

/// Nothing but blank lines, comments and document markers.
fn is_empty(text: &str) -> bool {
    text.trim_start_matches('\u{feff}').lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---" || t == "..."
    })
}

/// One parse error: where, the model path, and its rendering.
pub(super) struct SyntaxError {
    pub line: u64,
    pub column: u64,
    /// The model path, e.g. `steps[3].for` (empty at the top).
    pub path: String,
    pub error: Box<serde_saphyr::Error>,
    /// With a source snippet; empty if parsed without snippets.
    pub rendered: String,
}

/// Parses `text` into the model. `index` renumbers a sequence item that is
/// parsed alone as item 0 of its section: (`steps`, 3) turns `steps[0]` into
/// `steps[3]`.
fn parse(
    text: &str,
    file: &str,
    index: Option<(&str, usize)>,
    snippet: bool,
) -> Result<Scenario, SyntaxError> {
    // serde_path_to_error tracks where in the model the deserializer is, so
    // a wrong type or unknown key names `steps[3].for` as validation does.
    let path = std::cell::RefCell::new(None);
    // A piece's error is most often dropped (recover.rs): it gets its
    // snippet only when kept, by parsing it again; snippets cost more than
    // parsing does.
    let mut options = serde_saphyr::options! {};
    options.with_snippet = snippet;
    let parsed = serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            *path.borrow_mut() = Some(model_path(&e.path().to_string()));
            e.into_inner()
        })
    });
    parsed.map_err(|e| {
        let mut path = path.into_inner().unwrap_or_default();
        if let Some((section, i)) = index
            && let Some(rest) = path.strip_prefix(&format!("{section}[0]"))
        {
            path = format!("{section}[{i}]{rest}");
        }
        let path = if path == "." { String::new() } else { path };
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((1, 1));
        let mut e = SyntaxError {
            line,
            column,
            path,
            error: Box::new(e),
            rendered: String::new(),
        };
        if snippet {
            e.rendered = render_syntax_error(&e.error, file, &e.path, (line, column));
        }
        e
    })
}

fn render_syntax_error(e: &serde_saphyr::Error, file: &str, path: &str, at: (u64, u64)) -> String {
    let mut text = e.render_with_options(serde_saphyr::render_options! {
        source_name: Some(file),
    });
    // Library advice is no advice to someone writing a scenario.
    text = text.replace(", set DuplicateKeyPolicy in Options if acceptable", "");
    if !path.is_empty()
        && let Some(rest) = text.strip_prefix("error: ")
    {
        text = format!("error: {path}: {rest}");
    }
    // On a long line the snippet is cropped and its `-->` counts columns of
    // the cropped text; the header counts the file's. Say the file's.
    let arrow = format!(" --> {file}:");
    let fixed = format!(" --> {file}:{}:{}", at.0, at.1);
    let mut found = false;
    let trailing = text.ends_with('\n');
    text = text
        .lines()
        .map(|l| {
            if !found && l.trim_start().starts_with(arrow.trim_start()) {
                found = true;
                let gutter = &l[..l.len() - l.trim_start().len()];
                format!("{gutter}{}", fixed.trim_start())
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    if trailing {
        text.push('\n');
    }
    if !found {
        // No snippet (e.g. an error at the end of the input): still name the file.
        text.push('\n');
        text.push_str(&fixed);
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
        let ids: Vec<&str> = cases.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            ids,
            ["m[a=x,b=1]", "m[a=x,b=2]", "m[a=y,b=1]", "m[a=y,b=2]"]
        );
        let wait = |p: &crate::plan::Plan| match p.steps[0].action {
            crate::plan::Action::Wait(w) => w,
            ref other => panic!("not a wait: {other:?}"),
        };
        assert_eq!(wait(&cases[0]), std::time::Duration::from_secs(1));
        let over = load_cases(&path, &[("pause".into(), "250ms".into())]).unwrap();
        assert_eq!(wait(&over[0]), std::time::Duration::from_millis(250));
    }

    #[test]
    fn a_case_rule_applies_to_its_cases_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.yaml");
        let text = "schema_version: 1\nid: m\ntitle: t\n\
                    requires: { kernel_features: [nfs], tools: [flock] }\n\
                    xfail: { reason: everywhere }\n\
                    matrix: { proto: [tcp, udp], vers: ['3', '4.1'] }\n\
                    cases:\n\
                    \x20 - when: { proto: udp }\n\
                    \x20   requires: { kernel_features: [netns], tools: [flock, rpcinfo], target: [vm] }\n\
                    \x20 - when: { proto: udp, vers: '3' }\n\
                    \x20   xfail: { reason: udp v3, kernel: { from: '6.12' } }\n\
                    steps:\n  - { id: s, wait: 1s }\n";
        std::fs::write(&path, text).unwrap();
        let cases = load_cases(&path, &[]).unwrap();
        let case = |id: &str| cases.iter().find(|c| c.id == id).unwrap();
        let tcp = case("m[proto=tcp,vers=3]");
        assert_eq!(tcp.requires.tools, ["flock"]);
        assert!(tcp.requires.targets.is_empty());
        assert_eq!(tcp.xfail.as_ref().unwrap().reason, "everywhere");
        let udp4 = case("m[proto=udp,vers=4.1]");
        assert_eq!(udp4.requires.tools, ["flock", "rpcinfo"]);
        assert_eq!(udp4.requires.targets, [crate::plan::Target::Vm]);
        assert!(
            udp4.requires
                .kernel_features
                .contains(&crate::plan::KernelFeature::Netns)
        );
        assert_eq!(udp4.xfail.as_ref().unwrap().reason, "everywhere");
        let udp3 = case("m[proto=udp,vers=3]");
        let x = udp3.xfail.as_ref().unwrap();
        assert_eq!(
            (x.reason.as_str(), x.kernel.to_string().as_str()),
            ("udp v3", "kernel 6.12 and later")
        );
    }

    #[test]
    fn a_file_is_read_bounded_and_its_bad_bytes_are_located() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.yaml");
        std::fs::write(&big, vec![b'#'; MAX_SCENARIO_BYTES as usize + 1]).unwrap();
        let err = load_file(&big).unwrap_err().to_string();
        assert!(err.contains("more than 1048576 bytes"), "{err}");
        // /dev/zero never ends: the read stops at the cap.
        let err = load_file(Path::new("/dev/zero")).unwrap_err().to_string();
        assert!(
            err.starts_with("/dev/zero: more than 1048576 bytes"),
            "{err}"
        );
        let latin1 = dir.path().join("l.yaml");
        std::fs::write(&latin1, b"schema_version: 1\nid: x\ntitle: caf\xe9\n").unwrap();
        let err = load_file(&latin1).unwrap_err().to_string();
        let want = format!("{}:3:11: not UTF-8 text (byte 0xe9)", latin1.display());
        assert!(err.starts_with(&want), "{err}");
    }

    #[test]
    fn an_empty_file_is_named_with_a_position() {
        for text in ["", "\n\n", "# nothing\n---\n"] {
            let err = load_str(text, "e.yaml").unwrap_err().to_string();
            assert!(
                err.starts_with("e.yaml:1:1: the file holds no scenario"),
                "{err}"
            );
        }
    }

    #[test]
    fn the_location_line_agrees_with_the_header_on_long_lines() {
        let long = "x".repeat(120);
        let text = format!(
            "schema_version: 1\nid: x\ntitle: t\nsteps:\n  - {{ id: a, exec: {{ host: h, command: [{long}] }}, timeout: [1] }}\n"
        );
        let err = load_str(&text, "s.yaml").unwrap_err().to_string();
        let column = text.lines().nth(4).unwrap().find("[1]").unwrap() + 1;
        assert!(err.contains(&format!("line 5 column {column}:")), "{err}");
        assert!(err.contains(&format!("--> s.yaml:5:{column}\n")), "{err}");
    }

    #[test]
    fn type_errors_in_several_places_are_all_reported() {
        let text = "schema_version: 1\nid: x\ntitle: t\ntimeout: [1]\nhosts:\n  a: { addr: [2] }\n\
                    steps:\n  - { id: a, wait: 1s }\n  - { id: b, wait: {} }\n  - { id: c, wait: 1s, for: [3] }\n";
        let err = load_str(text, "s.yaml").unwrap_err().to_string();
        for (path, at) in [
            ("timeout", "s.yaml:4:10"),
            ("hosts.a.addr", "s.yaml:6:14"),
            ("steps[1].wait", "s.yaml:9:20"),
            ("steps[2].for", "s.yaml:10:29"),
        ] {
            assert!(err.contains(&format!("error: {path}: ")), "{path}: {err}");
            assert!(err.contains(&format!("--> {at}\n")), "{at}: {err}");
        }
    }

    #[test]
    fn library_advice_does_not_reach_the_user() {
        let text = "schema_version: 1\nid: x\nid: y\ntitle: t\nsteps: [{ id: a, wait: 1s }]\n";
        let err = load_str(text, "s.yaml").unwrap_err().to_string();
        assert!(err.contains("duplicate mapping key: id"), "{err}");
        assert!(!err.contains("Options"), "{err}");
    }

    #[test]
    fn an_undefined_variable_is_named_with_the_defined_ones() {
        let text = "schema_version: 1\nid: x\ntitle: t\nvars: { pause: 1s, other: 2s }\n\
                    steps:\n  - { id: a, wait: ${paus} }\n  - id: b\n    wait: ${zzz}\n";
        let err = load_str(text, "s.yaml").unwrap_err().to_string();
        assert!(
            err.contains(
                "s.yaml:6:20: steps[0].wait: `paus` is not defined\n  hint: did you mean `pause`?"
            ),
            "{err}"
        );
        assert!(
            err.contains("s.yaml:8:11: steps[1].wait: `zzz` is not defined"),
            "{err}"
        );
        assert!(err.contains("defined: other, pause"), "{err}");
        assert!(!err.contains("invalid duration"), "{err}");
        // A `${…}` on a line without an error may be meant for a shell.
        let text = "schema_version: 1\nid: x\ntitle: t\nhosts: { h: {} }\nsteps:\n  - { id: a, exec: { host: h, command: [sh, -c, 'echo ${HOME}'] } }\n";
        load_str(text, "s.yaml").unwrap();
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
