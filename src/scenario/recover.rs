//! Every parse error of a file at once, not just the first.
//!
//! serde stops at the first error, and after one the deserializer's place in
//! the event stream is lost. So each top-level section, and each item of a
//! block sequence (`steps`, `workloads`, …) and each entry of `hosts` and
//! `nfs_servers`, is parsed again alone: a copy of the file with every other
//! line blanked, which keeps every line and column where it was. A section
//! parsed alone misses the required top-level fields; those errors are the
//! full parse's to report and are dropped here.
//!
//! Also here: naming an undefined `${var}` instead of the error it causes.

use super::load::SyntaxError;
use super::validate::{Problem, closest};
use std::collections::{BTreeMap, BTreeSet};

/// Sections whose entries are independent of each other, so an entry can be
/// parsed alone without a false "missing field".
const MAP_SECTIONS: &[&str] = &["hosts", "nfs_servers"];

/// `first` (the full parse's error) and whatever parsing each piece of
/// `text` alone finds, by position, without duplicates. `parse` parses a
/// text, renumbering a lone sequence item (section, index).
pub(super) fn every_syntax_error<T>(
    text: &str,
    first: SyntaxError,
    parse: impl Fn(&str, Option<(&str, usize)>, bool) -> Result<T, SyntaxError>,
) -> Vec<SyntaxError> {
    // serde reads in order: a piece wholly above a type error was read
    // without one. (Not so for a YAML syntax error: an unclosed `{` is
    // noticed lines later.)
    let first_line = match first.error.without_snippet() {
        serde_saphyr::Error::SerdeInvalidType { .. }
        | serde_saphyr::Error::SerdeInvalidValue { .. }
        | serde_saphyr::Error::SerdeUnknownVariant { .. }
        | serde_saphyr::Error::SerdeUnknownField { .. }
        | serde_saphyr::Error::Message { .. } => first.line,
        _ => 0,
    };
    let mut errors = vec![first];
    for piece in pieces(text)
        .into_iter()
        .filter(|p| p.last_line + 1 >= first_line as usize)
    {
        let index = piece.index.as_ref().map(|(s, i)| (s.as_str(), *i));
        // Without a snippet first: most of these errors are dropped, and
        // rendering one costs more than parsing.
        let Err(e) = parse(&piece.text, index, false) else {
            continue;
        };
        let top_level_missing = e.path.is_empty()
            && matches!(
                e.error.without_snippet(),
                serde_saphyr::Error::SerdeMissingField { .. }
            );
        // An alias whose anchor was blanked with another piece.
        let lost_anchor = matches!(
            e.error.without_snippet(),
            serde_saphyr::Error::UnknownAnchor { .. } | serde_saphyr::Error::AliasError { .. }
        );
        let seen = errors
            .iter()
            .any(|x| (x.line, x.column) == (e.line, e.column));
        if !top_level_missing && !lost_anchor && !seen {
            let Err(mut e) = parse(&piece.text, index, true) else {
                continue;
            };
            e.rendered = restore_context(&e.rendered, text);
            errors.push(e);
        }
    }
    errors.sort_by_key(|e| (e.line, e.column));
    errors
}

/// A piece's snippet shows the lines around the error blanked; put the
/// file's lines back (cut to a screen's width: the snippet crops long ones).
fn restore_context(rendered: &str, text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    rendered
        .lines()
        .map(|row| {
            let Some((number, content)) = row.split_once(" |") else {
                return row.to_string();
            };
            let Ok(n) = number.trim().parse::<usize>() else {
                return row.to_string();
            };
            match lines.get(n.wrapping_sub(1)) {
                Some(original) if content.trim().is_empty() && !original.trim().is_empty() => {
                    let shown: String = original.chars().take(100).collect();
                    let cut = if shown.len() < original.len() {
                        "…"
                    } else {
                        ""
                    };
                    format!("{number} | {shown}{cut}")
                }
                _ => row.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + if rendered.ends_with('\n') { "\n" } else { "" }
}

/// A copy of the file with only some lines kept.
struct Piece {
    text: String,
    /// Its last line, 0-based.
    last_line: usize,
    /// For an item of a sequence section: the section and the item's index.
    index: Option<(String, usize)>,
}

/// The pieces of a block-style file: each top-level section, or for a
/// sequence section each item, and for a [`MAP_SECTIONS`] each entry (with
/// the section's key line). None for a flow-style or otherwise unusual root:
/// then the full parse's error is all there is.
fn pieces(text: &str) -> Vec<Piece> {
    let lines: Vec<&str> = text.lines().collect();
    let Some(sections) = sections(&lines) else {
        return Vec::new();
    };
    let keep = |kept: &BTreeSet<usize>| keep_lines(&lines, kept);
    let mut out = Vec::new();
    for (key, start, end) in &sections {
        let body = (start + 1)..*end;
        let content: Vec<usize> = body
            .clone()
            .filter(|i| {
                let t = lines[*i].trim();
                !t.is_empty() && !t.starts_with('#')
            })
            .collect();
        let whole = || Piece {
            text: keep(&(*start..*end).collect()),
            last_line: end - 1,
            index: None,
        };
        let Some(first) = content.first() else {
            out.push(whole());
            continue;
        };
        let indent = |i: usize| lines[i].len() - lines[i].trim_start_matches(' ').len();
        let n = indent(*first);
        let sequence = lines[*first].trim_start().starts_with('-');
        if !sequence && !MAP_SECTIONS.contains(&key.as_str()) {
            out.push(whole());
            continue;
        }
        // Item starts: content lines at the first item's indent (and a dash,
        // for a sequence); a line less indented ends the section's pieces.
        let starts: Vec<usize> = content
            .iter()
            .copied()
            .filter(|i| indent(*i) == n && (!sequence || lines[*i].trim_start().starts_with('-')))
            .collect();
        for (k, s) in starts.iter().enumerate() {
            let e = starts.get(k + 1).copied().unwrap_or(*end);
            let mut kept: BTreeSet<usize> = (*s..e).collect();
            kept.insert(*start);
            out.push(Piece {
                text: keep(&kept),
                last_line: e - 1,
                index: sequence.then(|| (key.clone(), k)),
            });
        }
    }
    out
}

/// The top-level sections of a block-style file: (key, first line, end
/// line exclusive). None for a flow-style or otherwise unusual root.
fn sections(lines: &[&str]) -> Option<Vec<(String, usize, usize)>> {
    let is_top_key = |l: &str| {
        let first = l.chars().next();
        first.is_some_and(|c| !matches!(c, ' ' | '\t' | '#' | '-' | '%' | '.' | '\u{feff}'))
            && l.contains(':')
    };
    let mut sections: Vec<(String, usize, usize)> = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if is_top_key(l) {
            if matches!(
                l.chars().next(),
                Some('{' | '[' | '"' | '\'' | '?' | '&' | '*' | '!')
            ) {
                return None;
            }
            let key = l.split(':').next().unwrap_or("").trim().to_string();
            if let Some(last) = sections.last_mut() {
                last.2 = i;
            }
            sections.push((key, i, lines.len()));
        }
    }
    Some(sections)
}

/// The lines, with those not `kept` blanked.
fn keep_lines(lines: &[&str], kept: &BTreeSet<usize>) -> String {
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| if kept.contains(&i) { *l } else { "" })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Each `${name}` in `text` whose name the file does not define (in
/// `vars:` or `matrix:`; `--var` values were put in before), by line.
pub(super) fn undefined_vars(text: &str) -> BTreeMap<u64, Vec<(u64, String)>> {
    let mut out: BTreeMap<u64, Vec<(u64, String)>> = BTreeMap::new();
    if !text.contains("${") {
        return out;
    }
    let defined = defined_vars(text);
    for (i, line) in text.lines().enumerate() {
        let mut rest = line;
        let mut offset = 0;
        while let Some(at) = rest.find("${") {
            let after = &rest[at + 2..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .collect();
            if !name.is_empty() && after[name.len()..].starts_with('}') && !defined.contains(&name)
            {
                let column = line[..offset + at].chars().count() as u64 + 1;
                out.entry(i as u64 + 1)
                    .or_default()
                    .push((column, name.clone()));
            }
            offset += at + 2;
            rest = after;
        }
    }
    out
}

fn defined_vars(text: &str) -> BTreeSet<String> {
    #[derive(serde::Deserialize, Default)]
    struct Names {
        #[serde(default)]
        vars: BTreeMap<String, serde::de::IgnoredAny>,
        #[serde(default)]
        matrix: BTreeMap<String, serde::de::IgnoredAny>,
    }
    // Only `vars:` and `matrix:`: the rest may not parse (that is why we
    // are here), and these two must not be judged by it.
    let lines: Vec<&str> = text.lines().collect();
    let kept: BTreeSet<usize> = sections(&lines)
        .unwrap_or_default()
        .into_iter()
        .filter(|(key, _, _)| key == "vars" || key == "matrix")
        .flat_map(|(_, start, end)| start..end)
        .collect();
    let names: Names = serde_saphyr::from_str(&keep_lines(&lines, &kept)).unwrap_or_default();
    names
        .vars
        .into_keys()
        .chain(names.matrix.into_keys())
        .collect()
}

/// "`pause` is not defined" for each undefined `${pause}` on a line where
/// an error was found (`located`: line, column and model path of each
/// error): the error there is the variable's doing. The path is the error's
/// if it is where the variable is, else the variable's own `${name}`. A `${…}` on a line without an error
/// may be meant for a shell and is left alone.
pub(super) fn undefined_problems(
    text: &str,
    file: &str,
    undefined: &BTreeMap<u64, Vec<(u64, String)>>,
    located: Vec<(u64, u64, String)>,
) -> Vec<Problem> {
    if undefined.is_empty() {
        return Vec::new();
    }
    let defined: Vec<String> = defined_vars(text).into_iter().collect();
    let mut out = Vec::new();
    let mut done = BTreeSet::new();
    let at = |line: u64, column: u64| {
        located
            .iter()
            .find(|(l, c, p)| (*l, *c) == (line, column) && !p.is_empty())
            .map(|(_, _, p)| p.clone())
    };
    for (line, _, _) in &located {
        let line = *line;
        let Some(names) = undefined.get(&line) else {
            continue;
        };
        if !done.insert(line) {
            continue;
        }
        for (column, name) in names {
            let hint = match closest(name, defined.iter().map(String::as_str)) {
                Some(c) => format!("did you mean `{c}`?"),
                None if defined.is_empty() => format!(
                    "this file defines no variables: add `vars: {{ {name}: … }}` or pass --var {name}=…"
                ),
                None => format!(
                    "defined: {} (in `vars:` or `matrix:`; --var NAME=VALUE adds one)",
                    defined.join(", ")
                ),
            };
            out.push(Problem {
                file: file.to_string(),
                line,
                column: *column,
                path: at(line, *column).unwrap_or_else(|| format!("${{{name}}}")),
                message: format!("`{name}` is not defined"),
                hint: Some(hint),
            });
        }
    }
    out
}
