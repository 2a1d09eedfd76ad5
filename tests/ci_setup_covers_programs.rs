//! Every program the code, the tests and the scenarios run comes from a
//! Debian package that `ci/setup` installs, or from Debian's required set.
//!
//! Regression test for issue 11 §5: on a fresh machine `ci/test` failed
//! because `tests/nfs_pcap.rs` runs `tshark` and `ci/setup` did not install
//! it; CI passed only where someone had installed it by hand. The programs
//! are found by reading the sources (not from a list kept here, which would
//! drift), mapped to their packages with `dpkg-query -S`, and each package
//! must be named in `ci/setup` unless it is `Essential: yes` or
//! `Priority: required` (present on every Debian system).
//!
//! What counts as running a program (see `scan_rust` and `scan_scenario`):
//! - `Command::new(P)` and `tools::which(P)`, and any function that passes
//!   one of its `&str` parameters on to those (`command_in(ns, P)`,
//!   `DaemonNs::run(P, …)`, a test's `run(P, …)`), found transitively;
//! - tool lists handed to `require…(…)` checks and `for tool in [...]` loops
//!   (the `(program, package)` tables of src/nfs included);
//! - argv tables written as `["prog", "-flag", …]`;
//! - in scenarios: `command:` lists (exec steps and workloads; for `sh -c`,
//!   the first word of each command in the script) and `requires: tools:`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use regex::Regex;

/// Names that are deliberately not programs: tests of the "tool missing" path.
fn deliberately_missing(program: &str) -> bool {
    program.starts_with("no-such-")
}

/// Shell builtins and keywords with no program behind them, which a
/// `sh -c` script may use freely.
const SHELL_BUILTINS: &[&str] = &[
    "cd", "exit", "export", "set", "unset", "exec", "eval", "trap", "shift", "return", ".", ":",
    "readonly", "wait", "read", "local", "{", "}", "(", ")", "if", "then", "else", "fi", "for",
    "do", "done", "while", "until", "case", "esac",
];

/// program → where it is run ("file:line"), first place found.
type Found = BTreeMap<String, String>;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files_under(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, ext, out);
        } else if p.extension().is_some_and(|x| x == ext) {
            out.push(p);
        }
    }
    out.sort();
}

// ---------------------------------------------------------------- Rust ---

/// The text of one balanced argument list, bracket or parenthesis group,
/// starting right after its opening character; None if unbalanced.
fn group(text: &str, open: usize) -> Option<&str> {
    let b = text.as_bytes();
    let (mut depth, mut i) = (1usize, open);
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'\'' if b.get(i + 1) == Some(&b'\\') => {
                i += 2;
                while i < b.len() && b[i] != b'\'' {
                    i += 1;
                }
            }
            b'\'' if b.get(i + 2) == Some(&b'\'') => i += 2,
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&text[open..i]);
                }
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Splits a group's text at its top-level commas.
fn split_top(inner: &str) -> Vec<&str> {
    let (mut parts, mut start, mut depth, mut in_str) = (Vec::new(), 0, 0i32, false);
    let b = inner.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' if in_str => i += 1,
            b'"' => in_str = !in_str,
            b'(' | b'[' | b'{' if !in_str => depth += 1,
            b')' | b']' | b'}' if !in_str => depth -= 1,
            b',' if !in_str && depth == 0 => {
                parts.push(inner[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if !inner[start..].trim().is_empty() {
        parts.push(inner[start..].trim());
    }
    parts
}

/// The value of a plain string literal expression (`"x"`), or of a
/// same-file `const NAME: &str = "x";` when the expression is `NAME`.
fn literal(expr: &str, consts: &BTreeMap<String, String>) -> Option<String> {
    let e = expr.trim().trim_start_matches('&');
    if let Some(s) = e.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        return (!s.contains('"') && !s.contains('\\')).then(|| s.to_string());
    }
    consts.get(e).cloned()
}

/// Programs in a tool list: `["a", "b"]`, `&[("a", "pkg"), …]` (first of
/// each pair), or a const naming such a list.
fn tool_list(expr: &str, text: &str) -> Vec<String> {
    let e = expr.trim().trim_start_matches('&').trim();
    let inner = if let Some(rest) = e.strip_prefix('[') {
        group(rest, 0).map(str::to_string)
    } else if Regex::new(r"^[A-Z][A-Z0-9_]*$").unwrap().is_match(e) {
        let def = Regex::new(&format!(r"const {e}\s*:[^=]*=\s*&?\["))
            .unwrap()
            .find(text);
        def.and_then(|m| group(text, m.end()).map(str::to_string))
    } else {
        None
    };
    let Some(inner) = inner else {
        return Vec::new();
    };
    split_top(&inner)
        .into_iter()
        .filter_map(|item| match item.strip_prefix('(') {
            Some(tuple) => split_top(tuple.trim_end_matches(')'))
                .first()
                .and_then(|x| literal(x, &BTreeMap::new())),
            None => literal(item, &BTreeMap::new()),
        })
        .filter(|p| !p.starts_with('/'))
        .collect()
}

/// A call `name(args…)` in a source file.
struct Call<'t> {
    name: String,
    offset: usize,
    /// From the name to the closing parenthesis.
    span: std::ops::Range<usize>,
    args: Vec<&'t str>,
}

/// A function definition: its name, parameters (without `self`) and the
/// byte range of its body.
struct FnDef {
    name: String,
    params: Vec<String>,
    body: std::ops::Range<usize>,
    public: bool,
}

struct Source {
    name: String,
    text: String,
    consts: BTreeMap<String, String>,
}

impl Source {
    fn new(name: String, text: String) -> Source {
        let consts =
            Regex::new(r#"const ([A-Z][A-Z0-9_]*)\s*:\s*&(?:'static )?str\s*=\s*"([^"]*)";"#)
                .unwrap()
                .captures_iter(&text)
                .map(|c| (c[1].to_string(), c[2].to_string()))
                .collect();
        Source { name, text, consts }
    }

    fn at(&self, offset: usize) -> String {
        let line = self.text[..offset].matches('\n').count() + 1;
        format!("{}:{line}", self.name)
    }

    /// Every call in the file (not definitions); `Command::new` keeps its path.
    fn calls(&self) -> Vec<Call<'_>> {
        // A hand-written scan: the regex crate is slow in test (debug) builds.
        let b = self.text.as_bytes();
        let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
        let mut out = Vec::new();
        for (open, _) in self.text.match_indices('(') {
            let mut start = open;
            while start > 0 && word(b[start - 1]) {
                start -= 1;
            }
            let ident = &self.text[start..open];
            if ident.is_empty()
                || !ident
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
                || ident.as_bytes()[0].is_ascii_digit()
                || self.text[..start].ends_with("fn ")
            {
                continue;
            }
            let (name, start) = if ident == "new" && self.text[..start].ends_with("Command::") {
                ("Command::new".to_string(), start - "Command::".len())
            } else {
                (ident.to_string(), start)
            };
            let Some(inner) = group(&self.text, open + 1) else {
                continue;
            };
            out.push(Call {
                name,
                offset: start,
                span: start..open + 1 + inner.len(),
                args: split_top(inner),
            });
        }
        out
    }

    fn fns(&self) -> Vec<FnDef> {
        let t = &self.text;
        let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
        // (start of `fn`, name, offset of `(`, preceded by `pub`)
        let starts: Vec<(usize, &str, usize, bool)> = t
            .match_indices("fn ")
            .filter(|(at, _)| *at == 0 || !word(t.as_bytes()[at - 1]))
            .filter_map(|(at, _)| {
                let rest = &t[at + 3..];
                let len = rest.bytes().take_while(|c| word(*c)).count();
                let after = &rest[len..];
                // Skip generics (`fn f<T: X>(`); not nested `<>`.
                let generics = if after.starts_with('<') {
                    after.find('>')? + 1
                } else {
                    0
                };
                after[generics..].starts_with('(').then(|| {
                    let before = t[..at].trim_end_matches(' ');
                    let public = before.ends_with("pub")
                        || before.ends_with(')') && {
                            let line = &before[before.rfind('\n').map_or(0, |n| n + 1)..];
                            line.trim_start().starts_with("pub(")
                        };
                    (at, &rest[..len], at + 3 + len + generics, public)
                })
            })
            .collect();
        starts
            .iter()
            .enumerate()
            .filter_map(|(i, &(_, name, paren, public))| {
                let params = group(t, paren + 1)?;
                let end = starts.get(i + 1).map_or(t.len(), |n| n.0);
                Some(FnDef {
                    name: name.to_string(),
                    params: split_top(params)
                        .into_iter()
                        .filter(|p| !p.contains("self"))
                        .map(str::to_string)
                        .collect(),
                    body: paren + 1 + params.len()..end,
                    // src/ items and tests' shared support modules are used
                    // from other files; a test file's own helpers are not.
                    public: public && self.name.starts_with("src/")
                        || self.name.ends_with("/mod.rs") && self.name.starts_with("tests/"),
                })
            })
            .collect()
    }
}

/// A function that starts the program named by its parameter `idx`.
#[derive(Clone)]
struct Launcher {
    idx: usize,
    /// Defined in this source (None: std's `Command::new`, `tools::which`).
    file: Option<usize>,
    public: bool,
}

/// Launchers by name. `Command::new` and `which` are the roots; a function
/// that passes one of its `&str` parameters on to a launcher's program
/// position (or after `--`, as `nsenter … -- program` does) is one too.
fn launchers(sources: &[Source], calls: &[Vec<Call>]) -> BTreeMap<String, Vec<Launcher>> {
    let root = Launcher {
        idx: 0,
        file: None,
        public: true,
    };
    let mut known: BTreeMap<String, Vec<Launcher>> = [
        ("Command::new".to_string(), vec![root.clone()]),
        ("which".to_string(), vec![root]),
    ]
    .into();
    let fns: Vec<(usize, FnDef)> = sources
        .iter()
        .enumerate()
        .flat_map(|(i, s)| s.fns().into_iter().map(move |f| (i, f)))
        .collect();
    let after_dashes = |text: &str, pname: &str| {
        text.match_indices(r#""--","#).any(|(i, m)| {
            let rest = text[i + m.len()..].trim_start();
            rest.strip_prefix(pname)
                .is_some_and(|r| !r.starts_with(|c: char| c.is_alphanumeric() || c == '_'))
        })
    };
    let local_names: Vec<BTreeSet<String>> = sources
        .iter()
        .enumerate()
        .map(|(i, _)| {
            fns.iter()
                .filter(|(f, _)| *f == i)
                .map(|(_, d)| d.name.clone())
                .collect()
        })
        .collect();
    let mut done = BTreeSet::new();
    loop {
        let mut added = false;
        for (n, (file, def)) in fns.iter().enumerate() {
            if done.contains(&n) {
                continue;
            }
            let text = &sources[*file].text[def.body.clone()];
            for (idx, p) in def.params.iter().enumerate() {
                let Some((pname, ty)) = p.split_once(':') else {
                    continue;
                };
                if !(ty.contains("str") || ty.contains("AsRef<OsStr>")) {
                    continue;
                }
                let pname = pname.trim().trim_start_matches("mut ");
                // Calls are in file order: take those inside the body.
                let all = &calls[*file];
                let from = all.partition_point(|c| c.offset < def.body.start);
                let to = all.partition_point(|c| c.offset < def.body.end);
                let handed_on = all[from..to].iter().any(|c| {
                    visible(&known, &c.name, *file, &local_names[*file]).any(|l| {
                        c.args
                            .get(l.idx)
                            .is_some_and(|a| a.trim().trim_start_matches('&') == pname)
                    })
                });
                if handed_on || after_dashes(text, pname) {
                    known.entry(def.name.clone()).or_default().push(Launcher {
                        idx,
                        file: Some(*file),
                        public: def.public,
                    });
                    done.insert(n);
                    added = true;
                    break;
                }
            }
        }
        if !added {
            return known;
        }
    }
}

/// The launchers a call of `name` in `file` may mean: one defined there, or
/// a public one unless the file defines its own function of that name.
fn visible<'k>(
    known: &'k BTreeMap<String, Vec<Launcher>>,
    name: &str,
    file: usize,
    local_names: &BTreeSet<String>,
) -> impl Iterator<Item = &'k Launcher> {
    let shadowed = local_names.contains(name);
    known
        .get(name)
        .into_iter()
        .flatten()
        .filter(move |l| l.file == Some(file) || (l.public && (l.file.is_none() || !shadowed)))
}

fn scan_rust(sources: &[Source], found: &mut Found) {
    let calls: Vec<Vec<Call>> = sources.iter().map(Source::calls).collect();
    let known = launchers(sources, &calls);
    let tool_loop = Regex::new(r"for \(?(?:tool|program|prog)\b[^\n]*? in &?\[").unwrap();
    // `["prog", "-flag", …]` in a table or a binding, but not inside a
    // call (`.args(["run", "-x"])`, `dmsetup(&["create", "-…"])`): there
    // it is arguments to a program named elsewhere, not an argv.
    let argv = Regex::new(r#"\[\s*"([a-z0-9][a-z0-9._+-]*)",\s*"-"#).unwrap();
    let mut add = |program: String, at: String| {
        found.entry(program).or_insert(at);
    };
    for (i, s) in sources.iter().enumerate() {
        let local_names: BTreeSet<String> = s.fns().into_iter().map(|f| f.name).collect();
        for c in &calls[i] {
            for l in visible(&known, &c.name, i, &local_names) {
                if let Some(p) = c.args.get(l.idx).and_then(|a| literal(a, &s.consts)) {
                    add(p, s.at(c.offset));
                }
            }
            if c.name.starts_with("require") {
                let Some(first) = c.args.first().copied() else {
                    continue;
                };
                let mut programs = tool_list(first, &s.text);
                if programs.is_empty()
                    && let Some(p) = literal(first, &s.consts)
                {
                    programs.push(p);
                }
                for p in programs {
                    add(p, s.at(c.offset));
                }
            }
        }
        for m in tool_loop.find_iter(&s.text) {
            let list = &s.text[m.end() - 1..];
            for p in tool_list(list, &s.text) {
                add(p, s.at(m.start()));
            }
        }
        for c in argv.captures_iter(&s.text) {
            let at = c.get(0).unwrap().start();
            if !calls[i].iter().any(|call| call.span.contains(&at)) {
                add(c[1].to_string(), s.at(at));
            }
        }
    }
}

// ----------------------------------------------------------- scenarios ---

/// First words of the commands in a shell script (pipelines, lists,
/// `$(…)`); what is not shaped like a program name (`*)`, `2>`) is skipped.
fn script_programs(script: &str) -> Vec<String> {
    let name = Regex::new(r"^(?:[A-Za-z_][A-Za-z0-9._+-]*|/[^\s]+)$").unwrap();
    script
        .split(['|', ';', '&', '\n', '(', ')', '`', '$'])
        .filter_map(|cmd| {
            cmd.split_whitespace()
                .find(|w| *w != "!" && !w.contains('='))
                .map(str::to_string)
        })
        .filter(|w| name.is_match(w) && !SHELL_BUILTINS.contains(&w.as_str()))
        .collect()
}

fn scan_scenario(file: &str, value: &serde_json::Value, found: &mut Found) {
    use serde_json::Value;
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                let mut programs = Vec::new();
                if key == "command" {
                    let argv = strings(v);
                    if let [shell, dash_c, script, ..] = argv.as_slice()
                        && matches!(shell.as_str(), "sh" | "bash")
                        && dash_c == "-c"
                    {
                        programs.extend(script_programs(script));
                    }
                    programs.extend(argv.into_iter().take(1));
                } else if key == "tools" {
                    programs.extend(strings(v));
                }
                for p in programs.into_iter().filter(|p| !p.contains("${")) {
                    found.entry(p).or_insert_with(|| format!("{file} ({key})"));
                }
                scan_scenario(file, v, found);
            }
        }
        Value::Array(items) => {
            for v in items {
                scan_scenario(file, v, found);
            }
        }
        _ => {}
    }
}

// ------------------------------------------------------------- Debian ---

/// The packages named in `ci/setup`'s `packages=( … )` list.
fn setup_packages(script: &str) -> BTreeSet<String> {
    let start = script
        .find("packages=(")
        .expect("ci/setup has a packages=( … ) list");
    let body = &script[start + "packages=(".len()..];
    let body = &body[..body.find("\n)").expect("packages list ends with `)`")];
    body.lines()
        .flat_map(|l| l.split('#').next().unwrap().split_whitespace())
        .map(str::to_string)
        .collect()
}

/// The paths dpkg may have recorded for an executable found at `path`:
/// with and without /usr (merged /usr), and through symlinks (alternatives).
fn dpkg_candidates(path: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut push_variants = |p: &Path| {
        let s = p.to_string_lossy();
        out.push(p.to_path_buf());
        match s.strip_prefix("/usr") {
            Some(rest) => out.push(PathBuf::from(rest)),
            None => out.push(PathBuf::from(format!("/usr{s}"))),
        }
    };
    push_variants(path);
    if let Ok(real) = std::fs::canonicalize(path) {
        push_variants(&real);
    }
    out.dedup();
    out
}

/// path → owning packages, for every path dpkg knows (one dpkg-query call).
fn dpkg_owners(paths: &BTreeSet<PathBuf>) -> BTreeMap<PathBuf, Vec<String>> {
    let out = Command::new("dpkg-query")
        .arg("-S")
        .args(paths)
        .output()
        .expect("dpkg-query (Debian's dpkg) must be installed: this test checks Debian packages");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("diversion by "))
        .filter_map(|l| {
            let (pkgs, path) = l.rsplit_once(": ")?;
            let pkgs = pkgs
                .split(", ")
                .map(|p| p.split(':').next().unwrap().to_string())
                .collect();
            Some((PathBuf::from(path), pkgs))
        })
        .collect()
}

/// The packages of `pkgs` that every Debian system has.
fn base_packages(pkgs: &BTreeSet<String>) -> BTreeSet<String> {
    let out = Command::new("dpkg-query")
        .arg("-W")
        .arg("-f=${Package} ${Essential} ${Priority}\n")
        .args(pkgs)
        .output()
        .expect("dpkg-query runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 3 && (f[1] == "yes" || f[2] == "required")).then(|| f[0].to_string())
        })
        .collect()
}

fn all_programs() -> Found {
    let root = repo();
    let mut rs = Vec::new();
    files_under(&root.join("src"), "rs", &mut rs);
    files_under(&root.join("tests"), "rs", &mut rs);
    // This file's own fixtures name programs that do not exist.
    rs.retain(|p| !p.ends_with(file!().rsplit('/').next().unwrap()));
    let sources: Vec<Source> = rs
        .iter()
        .map(|p| {
            Source::new(
                p.strip_prefix(&root).unwrap().display().to_string(),
                std::fs::read_to_string(p).unwrap(),
            )
        })
        .collect();
    let mut found = Found::new();
    scan_rust(&sources, &mut found);
    let mut yaml = Vec::new();
    files_under(&root.join("scenarios"), "yaml", &mut yaml);
    // tests/scenarios/bad holds invalid files that are never run.
    let mut test_yaml = Vec::new();
    files_under(&root.join("tests/scenarios"), "yaml", &mut test_yaml);
    yaml.extend(
        test_yaml
            .into_iter()
            .filter(|p| !p.starts_with(root.join("tests/scenarios/bad"))),
    );
    for p in yaml {
        let text = std::fs::read_to_string(&p).unwrap();
        let value: serde_json::Value = serde_saphyr::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: not YAML: {e}", p.display()));
        scan_scenario(
            &p.strip_prefix(&root).unwrap().display().to_string(),
            &value,
            &mut found,
        );
    }
    found.retain(|p, _| !deliberately_missing(p));
    found
}

#[test]
fn ci_setup_installs_every_program_the_code_tests_and_scenarios_run() {
    let found = all_programs();
    let setup = std::fs::read_to_string(repo().join("ci/setup")).unwrap();
    let listed = setup_packages(&setup);

    let mut problems = Vec::new();
    let mut located: BTreeMap<&String, PathBuf> = BTreeMap::new();
    for (program, at) in &found {
        let path = if program.starts_with('/') {
            Some(PathBuf::from(program)).filter(|p| p.is_file())
        } else {
            stackquake::tools::which(program)
        };
        match path {
            Some(p) => {
                located.insert(program, p);
            }
            None => problems.push(format!(
                "`{program}` (run at {at}) is not installed on this machine: \
                 install it and add its Debian package to ci/setup"
            )),
        }
    }
    let candidates: BTreeSet<PathBuf> = located.values().flat_map(|p| dpkg_candidates(p)).collect();
    let owners = dpkg_owners(&candidates);
    let mut owner_of: BTreeMap<&String, String> = BTreeMap::new();
    for (program, path) in &located {
        let owner = dpkg_candidates(path)
            .iter()
            .find_map(|c| owners.get(c))
            .and_then(|pkgs| pkgs.first().cloned());
        match owner {
            Some(pkg) => {
                owner_of.insert(program, pkg);
            }
            None => problems.push(format!(
                "`{program}` (run at {}) is {}, which no Debian package owns \
                 (installed by hand?): ci/setup cannot provide it",
                found[*program],
                path.display()
            )),
        }
    }
    let pkgs: BTreeSet<String> = owner_of.values().cloned().collect();
    let base = base_packages(&pkgs);
    for (program, pkg) in &owner_of {
        let how = if listed.contains(pkg) {
            "ci/setup"
        } else if base.contains(pkg) {
            "required"
        } else {
            problems.push(format!(
                "`{program}` (run at {}) comes from Debian package `{pkg}`, \
                 which ci/setup does not install: add `{pkg}` to its packages list",
                found[*program]
            ));
            "MISSING"
        };
        eprintln!("{program:<22} {pkg:<20} {how:<9} {}", found[*program]);
    }
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn the_scanner_finds_each_way_a_program_is_run() {
    let src = r#"
const QEMU: &str = "qemu-x";
const LIST: &[&str] = &["listed-a", "listed-b"];
fn helper(ns: &Netns, program: &str) -> Command { let c = Command::new(program); c }
fn in_ns(&self, program: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("nsenter-x");
    cmd.args(["-m", "--", program]);
    cmd
}
fn wrapper(tool: &str) { let _ = in_ns(tool, &[]); }
fn f() {
    Command::new("direct").arg("x");
    Command::new(QEMU);
    tools::which("looked-up");
    helper(&ns, "via-helper");
    wrapper("via-two-helpers");
    require_tools(&[("tabled", "pkg-not-a-program")]);
    require_root_and(LIST, &["/dev/not-a-program"]);
    for tool in ["looped"] {}
    let formats = &[(b"x", &["argv-table", "-d"])];
    let not_argv = ["INPUT", "OUTPUT"];
    no_launcher("not-a-program");
    dmsetup(&["not-argv", "--flag"]);
    cmd.args(["not-argv-either", "-x"]);
}
"#;
    let mut found = Found::new();
    scan_rust(&[Source::new("t.rs".into(), src.into())], &mut found);
    let got: BTreeSet<&str> = found.keys().map(String::as_str).collect();
    let want: BTreeSet<&str> = [
        "argv-table",
        "direct",
        "listed-a",
        "listed-b",
        "looked-up",
        "looped",
        "nsenter-x",
        "qemu-x",
        "tabled",
        "via-helper",
        "via-two-helpers",
    ]
    .into();
    assert_eq!(got, want);

    let yaml = r#"
requires: { tools: [req-tool] }
workloads:
  - { id: w, kind: exec, command: [wl-prog, -x] }
steps:
  - exec: { host: a, command: [sh, -c, 'mkdir -p x && cd x; FOO=1 ip link | grep -q y'] }
  - exec: { host: a, command: [sh, -c, 'o=$(flock -x f true 2>&1); case "$o" in *"No"*) exit 0;; *) exit 1;; esac'] }
  - parallel:
      - exec: { host: a, command: ["${var}", x] }
"#;
    let mut found = Found::new();
    let value: serde_json::Value = serde_saphyr::from_str(yaml).unwrap();
    scan_scenario("s.yaml", &value, &mut found);
    let got: BTreeSet<&str> = found.keys().map(String::as_str).collect();
    assert_eq!(
        got,
        ["flock", "grep", "ip", "mkdir", "req-tool", "sh", "wl-prog"].into()
    );
}

#[test]
fn the_setup_package_list_is_read_without_comments() {
    let script = "x=1\npackages=(\n  a b   # c d\n  e\n)\nmissing=()\n";
    assert_eq!(
        setup_packages(script),
        ["a", "b", "e"].map(String::from).into()
    );
}
