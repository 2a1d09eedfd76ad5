//! Semantic checks the YAML shape cannot express: references resolve, ids are
//! unique, values make sense. One pass reports every problem.

use super::model::*;
use serde_saphyr::{Location, Spanned};
use std::collections::BTreeSet;
use std::fmt;

/// One thing wrong with a scenario, pinned to where it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub line: u64,
    pub column: u64,
    /// Where in the model, e.g. `steps[1].fault.server`.
    pub path: String,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.line, self.column, self.path, self.message
        )?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

struct Checker<'a> {
    file: &'a str,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn at(&mut self, loc: Location, path: String, message: String, hint: Option<String>) {
        self.problems.push(Problem {
            file: self.file.to_string(),
            line: loc.line(),
            column: loc.column(),
            path,
            message,
            hint,
        });
    }

    /// `name` must be one of `known`, which are things of kind `what`.
    fn reference<'k>(
        &mut self,
        name: &Spanned<String>,
        path: String,
        what: &str,
        known: impl IntoIterator<Item = &'k str> + Clone,
    ) -> bool {
        if known.clone().into_iter().any(|k| k == name.value) {
            return true;
        }
        let choices: Vec<&str> = known.clone().into_iter().collect();
        let hint = match closest(&name.value, choices.iter().copied()) {
            Some(c) => Some(format!("did you mean `{c}`?")),
            None if choices.is_empty() => Some(format!("this scenario declares no {what}")),
            None => Some(format!("declared: {}", choices.join(", "))),
        };
        self.at(
            name.referenced,
            path,
            format!("unknown {what} `{}`", name.value),
            hint,
        );
        false
    }

    fn unique<'s>(&mut self, ids: impl IntoIterator<Item = (&'s Spanned<String>, String)>) {
        let mut seen = BTreeSet::new();
        for (id, path) in ids {
            if !seen.insert(id.value.as_str()) {
                self.at(
                    id.referenced,
                    path,
                    format!("duplicate id `{}`", id.value),
                    Some("ids must be unique within their section".into()),
                );
            }
        }
    }

    fn absolute(&mut self, p: &Spanned<String>, path: String) {
        if !p.value.starts_with('/') || p.value.split('/').any(|c| c == "..") {
            self.at(
                p.referenced,
                path,
                format!("`{}` is not an absolute path without `..`", p.value),
                Some("paths are absolute inside the run's private root, e.g. /mnt/share".into()),
            );
        }
    }

    fn cidr(&mut self, c: &Spanned<String>, path: String) {
        if parse_cidr(&c.value).is_none() {
            self.at(
                c.referenced,
                path,
                format!("`{}` is not an IPv4 address with prefix", c.value),
                Some("write e.g. 10.77.0.1/24".into()),
            );
        }
    }
}

/// An IPv4 address and prefix length, e.g. `10.77.0.1/24`.
pub fn parse_cidr(s: &str) -> Option<(std::net::Ipv4Addr, u8)> {
    let (addr, len) = s.split_once('/')?;
    let len: u8 = len.parse().ok().filter(|l| *l <= 32)?;
    Some((addr.parse().ok()?, len))
}

pub(super) fn validate(s: &Scenario, file: &str) -> Problems {
    let mut c = Checker {
        file,
        problems: Vec::new(),
    };
    if s.schema_version.value != 1 {
        c.at(
            s.schema_version.referenced,
            "schema_version".into(),
            format!("unsupported schema_version {}", s.schema_version.value),
            Some("this stackquake reads schema_version: 1".into()),
        );
    }
    let hosts: Vec<&str> = s.hosts.keys().map(String::as_str).collect();
    for (name, host) in &s.hosts {
        if let Some(addr) = &host.addr {
            c.cidr(addr, format!("hosts.{name}.addr"));
        }
        if name.len() > 8 || !name.chars().all(|ch| ch.is_ascii_alphanumeric()) {
            // Host names become part of netns and interface names (IFNAMSIZ is 16).
            c.at(
                s.id.referenced,
                format!("hosts.{name}"),
                format!("host name `{name}` must be 1-8 letters or digits"),
                None,
            );
        }
    }
    for (i, link) in s.links.iter().enumerate() {
        for (j, end) in link.between.iter().enumerate() {
            c.reference(
                end,
                format!("links[{i}].between[{j}]"),
                "host",
                hosts.clone(),
            );
        }
        if link.between[0].value == link.between[1].value {
            c.at(
                link.between[1].referenced,
                format!("links[{i}].between"),
                "a link joins two different hosts".into(),
                None,
            );
        }
    }
    for (name, server) in &s.nfs_servers {
        c.reference(
            &server.host,
            format!("nfs_servers.{name}.host"),
            "host",
            hosts.clone(),
        );
        if let Some(kind) = &server.kind
            && kind.value != ServerKind::Inproc
        {
            c.at(
                kind.referenced,
                format!("nfs_servers.{name}.kind"),
                format!("server kind `{:?}` is not supported yet", kind.value).to_lowercase(),
                Some("use kind: inproc".into()),
            );
        }
        for (i, e) in server.exports.iter().enumerate() {
            c.absolute(&e.path, format!("nfs_servers.{name}.exports[{i}].path"));
            if let Some(clients) = &e.clients {
                c.cidr(clients, format!("nfs_servers.{name}.exports[{i}].clients"));
            }
        }
    }
    c.unique(
        s.mounts
            .iter()
            .enumerate()
            .map(|(i, m)| (&m.id, format!("mounts[{i}].id")))
            .chain(
                s.images
                    .iter()
                    .enumerate()
                    .map(|(i, m)| (&m.id, format!("images[{i}].id"))),
            ),
    );
    for (i, m) in s.mounts.iter().enumerate() {
        c.reference(&m.host, format!("mounts[{i}].host"), "host", hosts.clone());
        if c.reference(
            &m.server,
            format!("mounts[{i}].server"),
            "nfs server",
            s.nfs_servers.keys().map(String::as_str),
        ) {
            let exports = s.nfs_servers[&m.server.value]
                .exports
                .iter()
                .map(|e| e.path.value.as_str());
            c.reference(&m.export, format!("mounts[{i}].export"), "export", exports);
        }
        c.absolute(&m.at, format!("mounts[{i}].at"));
    }
    for (i, img) in s.images.iter().enumerate() {
        c.reference(
            &img.host,
            format!("images[{i}].host"),
            "host",
            hosts.clone(),
        );
        c.absolute(&img.file, format!("images[{i}].file"));
        c.absolute(&img.at, format!("images[{i}].at"));
    }
    c.unique(
        s.workloads
            .iter()
            .enumerate()
            .map(|(i, w)| (&w.id, format!("workloads[{i}].id"))),
    );
    for (i, w) in s.workloads.iter().enumerate() {
        c.reference(
            &w.host,
            format!("workloads[{i}].host"),
            "host",
            hosts.clone(),
        );
        c.absolute(&w.path, format!("workloads[{i}].path"));
    }
    check_steps(&mut c, s);
    check_expectations(&mut c, s);
    Problems(c.problems)
}

fn check_steps(c: &mut Checker, s: &Scenario) {
    if s.steps.is_empty() {
        c.at(
            s.id.referenced,
            "steps".into(),
            "a scenario needs at least one step".into(),
            Some("e.g. steps: [{ id: steady, wait: 2s }]".into()),
        );
    }
    c.unique(
        s.steps
            .iter()
            .enumerate()
            .map(|(i, st)| (&st.id, format!("steps[{i}].id"))),
    );
    let images: Vec<&str> = s.images.iter().map(|m| m.id.value.as_str()).collect();
    for (i, st) in s.steps.iter().enumerate() {
        match (&st.wait, &st.fault) {
            (Some(_), None) | (None, Some(_)) => {}
            _ => c.at(
                st.id.referenced,
                format!("steps[{i}]"),
                "a step has exactly one of `wait` or `fault`".into(),
                None,
            ),
        }
        if st.for_.is_some() && st.fault.is_none() {
            c.at(
                st.id.referenced,
                format!("steps[{i}].for"),
                "`for` heals a fault; this step has none".into(),
                Some("use `wait` for a pause".into()),
            );
        }
        let Some(fault) = &st.fault else { continue };
        let path = format!("steps[{i}].fault.{}", fault.value.kind());
        match &fault.value {
            Fault::NfsUnexport { server, export } => {
                if c.reference(
                    server,
                    format!("{path}.server"),
                    "nfs server",
                    s.nfs_servers.keys().map(String::as_str),
                ) {
                    let exports = s.nfs_servers[&server.value]
                        .exports
                        .iter()
                        .map(|e| e.path.value.as_str());
                    c.reference(export, format!("{path}.export"), "export", exports);
                }
            }
            Fault::XfsShutdown { fs } => {
                c.reference(fs, format!("{path}.fs"), "image", images.clone());
            }
        }
    }
}

fn check_expectations(c: &mut Checker, s: &Scenario) {
    let steps: Vec<&str> = s.steps.iter().map(|st| st.id.value.as_str()).collect();
    let workloads: Vec<&str> = s.workloads.iter().map(|w| w.id.value.as_str()).collect();
    let images: Vec<&str> = s.images.iter().map(|m| m.id.value.as_str()).collect();
    let mounts: Vec<&str> = s
        .images
        .iter()
        .map(|m| m.id.value.as_str())
        .chain(s.mounts.iter().map(|m| m.id.value.as_str()))
        .collect();
    for (i, e) in s.expect.iter().enumerate() {
        let during = |c: &mut Checker, during: &During, path: String| {
            for (j, step) in during.iter().flatten().enumerate() {
                c.reference(step, format!("{path}.during[{j}]"), "step", steps.clone());
            }
        };
        let at = |c: &mut Checker, at: &Option<Ref>, path: String| {
            if let Some(step) = at {
                c.reference(step, format!("{path}.at"), "step", steps.clone());
            }
        };
        match &e.value {
            Expectation::Errno {
                workload,
                errno,
                during: d,
            } => {
                let path = format!("expect[{i}].errno");
                c.reference(
                    workload,
                    format!("{path}.workload"),
                    "workload",
                    workloads.clone(),
                );
                if errno_by_name(&errno.value).is_none() {
                    c.at(
                        errno.referenced,
                        format!("{path}.errno"),
                        format!("unknown errno `{}`", errno.value),
                        closest(&errno.value, ERRNO_NAMES.iter().copied())
                            .map(|n| format!("did you mean `{n}`?")),
                    );
                }
                during(c, d, path);
            }
            Expectation::Kmsg { pattern, during: d } => {
                let path = format!("expect[{i}].kmsg");
                if let Err(err) = regex::Regex::new(&pattern.value) {
                    c.at(
                        pattern.referenced,
                        format!("{path}.pattern"),
                        format!("invalid regular expression: {err}"),
                        Some("in YAML double quotes a backslash is written \\\\".into()),
                    );
                }
                during(c, d, path);
            }
            Expectation::FsState { fs, at: a, .. } => {
                let path = format!("expect[{i}].fs_state");
                c.reference(fs, format!("{path}.fs"), "image", images.clone());
                at(c, a, path);
            }
            Expectation::Mounted { mount, at: a, .. } => {
                let path = format!("expect[{i}].mounted");
                c.reference(
                    mount,
                    format!("{path}.mount"),
                    "mount or image",
                    mounts.clone(),
                );
                at(c, a, path);
            }
        }
    }
}

/// The errno names scenarios may use, as the kernel spells them.
const ERRNO_NAMES: &[&str] = &[
    "EPERM",
    "ENOENT",
    "EINTR",
    "EIO",
    "ENXIO",
    "EBADF",
    "EAGAIN",
    "ENOMEM",
    "EACCES",
    "EBUSY",
    "EEXIST",
    "ENODEV",
    "ENOTDIR",
    "EISDIR",
    "EINVAL",
    "EFBIG",
    "ENOSPC",
    "EROFS",
    "EDEADLK",
    "ENOLCK",
    "ENOTEMPTY",
    "ENOTCONN",
    "ETIMEDOUT",
    "ECONNREFUSED",
    "EHOSTUNREACH",
    "ESTALE",
    "EREMOTEIO",
    "EDQUOT",
    "EOPNOTSUPP",
    "EUCLEAN",
];

/// The errno number for a name such as `EIO`.
pub fn errno_by_name(name: &str) -> Option<i32> {
    if !ERRNO_NAMES.contains(&name) {
        return None;
    }
    (1..200).find(|n| errno_name(*n) == name)
}

/// The kernel's name for an errno number, e.g. `EIO`.
pub fn errno_name(n: i32) -> String {
    format!("{:?}", nix::errno::Errno::from_raw(n))
}

/// The choice within a small edit distance of `wrong`, if there is one.
pub fn closest<'a>(wrong: &str, choices: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let wrong = wrong.to_ascii_lowercase();
    choices
        .map(|c| (edit_distance(&wrong, &c.to_ascii_lowercase()), c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diag + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_names_map_to_linux_numbers() {
        assert_eq!(errno_by_name("EIO"), Some(libc::EIO));
        assert_eq!(errno_by_name("ESTALE"), Some(libc::ESTALE));
        assert_eq!(errno_by_name("EFOO"), None);
        for name in ERRNO_NAMES {
            assert!(errno_by_name(name).is_some(), "{name} has no number");
        }
    }

    #[test]
    fn closest_picks_small_edits_only() {
        let choices = ["failover", "steady", "after"];
        assert_eq!(
            closest("failovr", choices.iter().copied()),
            Some("failover")
        );
        assert_eq!(closest("zzzzzz", choices.iter().copied()), None);
    }

    #[test]
    fn cidr_needs_address_and_prefix() {
        assert!(parse_cidr("10.77.0.1/24").is_some());
        assert!(parse_cidr("10.77.0.1").is_none());
        assert!(parse_cidr("10.77.0.1/33").is_none());
    }
}
