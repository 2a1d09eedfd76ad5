//! Reading a scenario file: YAML → typed model → validated, or every problem at once.

use super::model::Scenario;
use super::validate::{Problems, validate};
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

/// Parses and validates `text`, naming it `file` in every message.
pub fn load_str(text: &str, file: &str) -> Result<Scenario, LoadError> {
    let scenario: Scenario = serde_saphyr::from_str(text).map_err(|e| LoadError::Syntax {
        rendered: render_syntax_error(&e, file),
    })?;
    let problems = validate(&scenario, file);
    if problems.is_empty() {
        Ok(scenario)
    } else {
        Err(LoadError::Invalid(problems))
    }
}

fn render_syntax_error(e: &serde_saphyr::Error, file: &str) -> String {
    let mut text = e.render_with_options(serde_saphyr::render_options! {
        source_name: Some(file),
    });
    // serde lists the valid keys; point at the likeliest one as well.
    if let Some(hint) = closest_choice_hint(&text) {
        text.push_str(&format!("\n  hint: did you mean `{hint}`?"));
    }
    text
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
    fn unknown_fault_kind_lists_the_catalogue() {
        let text = "schema_version: 1\nid: x\ntitle: t\nsteps:\n  - id: a\n    fault: { nfs.unexprt: { server: s, export: /e } }\n";
        let err = load_str(text, "s.yaml").unwrap_err().to_string();
        assert!(err.contains("s.yaml:6:14"), "{err}");
        assert!(err.contains("nfs.unexport"), "{err}");
        assert!(err.contains("did you mean `nfs.unexport`?"), "{err}");
    }
}
