//! Semantic checks the YAML shape cannot express: references resolve, ids are
//! unique, values make sense. One pass reports every problem.

use super::model::*;
use serde_saphyr::{Location, Spanned};
use std::collections::BTreeSet;
use std::fmt;

mod abort;
mod cases;
mod history;
mod lock_faults;
mod mount_fails;
mod nfs_faults;
mod seed_files;
mod setup;
mod shared_kernel;
mod staging;

pub(in crate::scenario) use staging::remote_hosts;

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
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        write!(f, "{}", self.message)?;
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

pub(super) struct Checker<'a> {
    file: &'a str,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    pub(super) fn at(
        &mut self,
        loc: Location,
        path: String,
        message: String,
        hint: Option<String>,
    ) {
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
    pub(super) fn reference<'k>(
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

    /// An `exec` (a step's or a probe's): a known host, at least a program.
    fn exec(&mut self, exec: &Exec, path: &str, hosts: &[&str]) {
        self.reference(
            &exec.host,
            format!("{path}.exec.host"),
            "host",
            hosts.iter().copied(),
        );
        if exec.command.value.is_empty() {
            self.at(
                exec.command.referenced,
                format!("{path}.exec.command"),
                "`command` needs at least the program".into(),
                Some("e.g. command: [sh, -c, 'ls /mnt/share']".into()),
            );
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

/// An IPv4 address with its prefix length, e.g. `10.77.0.1/24`: how a
/// scenario writes host addresses and export client networks.
pub(super) fn parse_cidr(s: &str) -> Option<crate::addr::Cidr> {
    let (addr, _) = s.split_once('/')?;
    addr.parse::<std::net::Ipv4Addr>().ok()?;
    crate::addr::Cidr::parse(s).ok()
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
    if let Some(t) = &s.kernel.nlm_timeout {
        let whole = t.value.0.subsec_nanos() == 0;
        if !whole || !(3..=20).contains(&t.value.0.as_secs()) {
            c.at(
                t.referenced,
                "kernel.nlm_timeout".into(),
                format!(
                    "{} is not a whole number of seconds from 3s to 20s",
                    t.value
                ),
                Some("the kernel's fs.nfs.nlm_timeout sysctl takes 3 to 20 seconds".into()),
            );
        }
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
        for (i, e) in server.exports.iter().enumerate() {
            let path = format!("nfs_servers.{name}.exports[{i}].path");
            c.absolute(&e.path, path.clone());
            check_export_confined(&mut c, s, &e.path, path);
            if let Some(clients) = &e.clients {
                c.cidr(clients, format!("nfs_servers.{name}.exports[{i}].clients"));
            }
            seed_files::check(
                &mut c,
                &e.files,
                &format!("nfs_servers.{name}.exports[{i}]"),
            );
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
    setup::check(&mut c, s);
    staging::check(&mut c, s);
    cases::check(&mut c, s);
    mount_fails::check(&mut c, s);
    shared_kernel::check(&mut c, s);
    super::network::check_links(&mut c, s);
    check_workloads(&mut c, s, &hosts);
    check_steps(&mut c, s);
    check_expectations(&mut c, s);
    history::check(&mut c, s);
    abort::check(&mut c, s);
    check_xfail(&mut c, s);
    Problems(c.problems)
}

/// An export is a directory of the run's private root; exporting the root
/// itself (`/`, `//`, `/.`) or a directory holding a mountpoint would hand
/// clients the run's other objects, the client's own mount included.
fn check_export_confined(c: &mut Checker, s: &Scenario, export: &Spanned<String>, path: String) {
    if !export.value.starts_with('/') || export.value.split('/').any(|p| p == "..") {
        return; // `absolute` has said so
    }
    let parts = path_parts(&export.value);
    if parts.is_empty() {
        c.at(
            export.referenced,
            path,
            format!(
                "export `{}` is the whole run root, every mountpoint included",
                export.value
            ),
            Some("export a directory of its own, e.g. /export".into()),
        );
        return;
    }
    let mountpoints = s
        .mounts
        .iter()
        .map(|m| ("mount", &m.id.value, &m.at.value))
        .chain(s.images.iter().map(|m| ("image", &m.id.value, &m.at.value)));
    for (what, id, at) in mountpoints {
        if path_parts(at).starts_with(&parts) {
            c.at(
                export.referenced,
                path,
                format!(
                    "export `{}` contains {what} `{id}`'s mountpoint {at}",
                    export.value
                ),
                Some("export a directory that holds no mountpoint, e.g. /export".into()),
            );
            return;
        }
    }
}

/// The components of an absolute path, without empty and `.` ones.
fn path_parts(p: &str) -> Vec<&str> {
    p.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect()
}

/// Every step with its path (`steps[2].parallel[0]`), in declaration order.
pub(super) fn flatten_steps(steps: &[Step]) -> Vec<(String, &Step)> {
    fn walk<'s>(steps: &'s [Step], prefix: &str, out: &mut Vec<(String, &'s Step)>) {
        for (i, st) in steps.iter().enumerate() {
            let path = if prefix.is_empty() {
                format!("steps[{i}]")
            } else {
                format!("{prefix}.parallel[{i}]")
            };
            out.push((path.clone(), st));
            if let Some(children) = &st.parallel {
                walk(children, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(steps, "", &mut out);
    out
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
    let all = flatten_steps(&s.steps);
    c.unique(all.iter().map(|(path, st)| (&st.id, format!("{path}.id"))));
    let in_group: BTreeSet<&str> = all
        .iter()
        .filter_map(|(_, st)| st.parallel.as_ref())
        .flatten()
        .map(|st| st.id.value.as_str())
        .collect();
    let images: Vec<&str> = s.images.iter().map(|m| m.id.value.as_str()).collect();
    let hosts: Vec<&str> = s.hosts.keys().map(String::as_str).collect();
    for (i, (path, st)) in all.iter().enumerate() {
        let actions = [
            st.wait.is_some(),
            st.fault.is_some(),
            st.exec.is_some(),
            st.parallel.is_some(),
            st.pause.is_some(),
        ];
        if actions.iter().filter(|a| **a).count() != 1 {
            c.at(
                st.id.referenced,
                path.clone(),
                "a step has exactly one of `wait`, `fault`, `exec`, `pause` or `parallel`".into(),
                None,
            );
        }
        check_heal(c, st, path);
        if st.for_.is_some() && st.fault.is_none() {
            c.at(
                st.id.referenced,
                format!("{path}.for"),
                "`for` heals a fault; this step has none".into(),
                Some("use `wait` for a pause".into()),
            );
        }
        if let Some(after) = &st.after {
            let earlier: Vec<&str> = all[..i].iter().map(|(_, e)| e.id.value.as_str()).collect();
            if in_group.contains(st.id.value.as_str()) {
                c.at(
                    after.referenced,
                    format!("{path}.after"),
                    "steps in a `parallel` group begin with the group".into(),
                    Some("use `offset` to start later within the group".into()),
                );
            } else if all.iter().any(|(_, e)| e.id.value == after.value)
                && !earlier.contains(&after.value.as_str())
            {
                c.at(
                    after.referenced,
                    format!("{path}.after"),
                    format!(
                        "`after` names `{}`, which is not declared before this step",
                        after.value
                    ),
                    Some("a step may only wait for steps written above it".into()),
                );
            } else {
                c.reference(after, format!("{path}.after"), "step", earlier);
            }
        }
        if let Some(timeout) = &st.timeout {
            let fixed = st.wait.or(st.for_);
            if timeout.value.0.is_zero() {
                c.at(
                    timeout.referenced,
                    format!("{path}.timeout"),
                    "a step's `timeout` must be longer than zero".into(),
                    Some("leave it out for no limit, or write e.g. `30s`".into()),
                );
            } else if let Some(d) = fixed
                && d.0 >= timeout.value.0
            {
                c.at(
                    timeout.referenced,
                    format!("{path}.timeout"),
                    format!(
                        "timeout {} is not longer than the step itself ({d})",
                        timeout.value
                    ),
                    Some("a step's timeout bounds how long it may take; make it longer".into()),
                );
            }
        }
        if let Some(children) = &st.parallel
            && children.is_empty()
        {
            c.at(
                st.id.referenced,
                format!("{path}.parallel"),
                "a `parallel` group needs at least one step".into(),
                None,
            );
        }
        if let Some(message) = &st.pause
            && message.value.trim().is_empty()
        {
            c.at(
                message.referenced,
                format!("{path}.pause"),
                "a pause needs a message: it is what the operator is asked to do".into(),
                Some("e.g. pause: 'fail the filer over now, then confirm'".into()),
            );
        }
        if let Some(exec) = &st.exec {
            c.exec(exec, path, &hosts);
            if let Some(ready) = &exec.ready {
                check_regex(c, ready, format!("{path}.exec.ready"));
            }
        }
        let Some(fault) = &st.fault else { continue };
        let path = format!("{path}.fault.{}", fault.value.kind());
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
            Fault::NetBlock(cut) | Fault::NetReject(cut) => {
                super::network::check_cut(c, s, cut, &path, fault.referenced)
            }
            Fault::NetMtu(f) => super::network::check_mtu_fault(c, s, f, &path),
            Fault::NetDelay(f) => super::network::check_delay(c, s, f, &path),
            Fault::NetLoss(f) => super::network::check_loss(c, s, f, &path),
            Fault::BlockDetach { .. }
            | Fault::BlockError { .. }
            | Fault::BlockDelay { .. }
            | Fault::BlockFlakey { .. } => check_block_fault(c, s, &fault.value, &path),
            Fault::NfsDelay { .. }
            | Fault::NfsStall { .. }
            | Fault::NfsDrop { .. }
            | Fault::NfsClose { .. }
            | Fault::NfsError { .. }
            | Fault::NfsRestart { .. }
            | Fault::NfsExpireLease { .. }
            | Fault::NfsSequenceFlags { .. } => nfs_faults::check(c, s, &fault.value, &path),
            Fault::NlmDown { .. }
            | Fault::NsmDown { .. }
            | Fault::NlmGrace { .. }
            | Fault::HostCrash { .. }
            | Fault::ProcKill { .. } => lock_faults::check(c, s, &fault.value, &path),
        }
    }
}

/// A `block.*` fault names an image that sits on a dm volume, and asks for
/// what dm targets can do (sector ranges inside the volume, whole
/// milliseconds for dm-delay, whole seconds for dm-flakey).
/// `heal: false` keeps a fault past the run's end, which only a fault
/// living in the run's namespaces can do without leaving anything behind.
fn check_heal(c: &mut Checker, st: &Step, path: &str) {
    const KEEPABLE: [&str; 5] = [
        "net.block",
        "net.reject",
        "net.mtu",
        "net.delay",
        "net.loss",
    ];
    let Some(heal) = st.heal.as_ref().filter(|h| !h.value) else {
        return;
    };
    let at = |c: &mut Checker, message: String, hint: String| {
        c.at(heal.referenced, format!("{path}.heal"), message, Some(hint));
    };
    match &st.fault {
        None => at(
            c,
            "`heal` is about a fault; this step has none".into(),
            "leave `heal` out".into(),
        ),
        Some(f) if !KEEPABLE.contains(&f.value.kind()) => at(
            c,
            format!("{} cannot be left unhealed", f.value.kind()),
            format!(
                "only faults inside the run's namespaces go with them at teardown: {}",
                KEEPABLE.join(", ")
            ),
        ),
        Some(_) if st.for_.is_some() => at(
            c,
            "`heal: false` and `for` contradict each other".into(),
            "`for` heals the fault after that long; leave one out".into(),
        ),
        Some(_) => {}
    }
}

fn check_block_fault(c: &mut Checker, s: &Scenario, fault: &Fault, path: &str) {
    let Some(image) = fault.block_image() else {
        return;
    };
    let images = s.images.iter().map(|m| m.id.value.as_str());
    if !c.reference(image, format!("{path}.image"), "image", images) {
        return;
    }
    let (i, img) = s
        .images
        .iter()
        .enumerate()
        .find(|(_, m)| m.id.value == image.value)
        .expect("reference resolved");
    if !img.dm {
        c.at(
            image.referenced,
            format!("{path}.image"),
            format!(
                "image `{}` has no device-mapper volume for a block fault to act on",
                image.value
            ),
            Some(format!("add `dm: true` to images[{i}]")),
        );
    }
    let volume_sectors = img.size.value.0 / 512;
    match fault {
        Fault::BlockError { start, sectors, .. } => {
            let first = start.as_ref().map_or(0, |s| s.value);
            if let Some(st) = start
                && st.value >= volume_sectors
            {
                c.at(
                    st.referenced,
                    format!("{path}.start"),
                    format!(
                        "sector {} is past the end of image `{}` ({volume_sectors} sectors)",
                        st.value, image.value
                    ),
                    None,
                );
            } else if let Some(n) = sectors {
                if n.value == 0 {
                    c.at(
                        n.referenced,
                        format!("{path}.sectors"),
                        "`sectors` must be at least 1".into(),
                        Some("leave `start` and `sectors` out to fail the whole volume".into()),
                    );
                } else if first.saturating_add(n.value) > volume_sectors {
                    c.at(
                        n.referenced,
                        format!("{path}.sectors"),
                        format!(
                            "sectors {first}..{} run past the end of image `{}` ({volume_sectors} sectors)",
                            first.saturating_add(n.value),
                            image.value
                        ),
                        None,
                    );
                }
            }
        }
        Fault::BlockDelay {
            delay, write_delay, ..
        } => {
            if delay.value.0.is_zero() && write_delay.as_ref().is_none_or(|w| w.value.0.is_zero()) {
                c.at(
                    delay.referenced,
                    format!("{path}.delay"),
                    "`delay` and `write_delay` are both zero: the fault does nothing".into(),
                    Some("make one of them at least 1ms".into()),
                );
            }
            for (d, field) in [
                (Some(delay), "delay"),
                (write_delay.as_ref(), "write_delay"),
            ] {
                if let Some(d) = d
                    && d.value.0.subsec_nanos() % 1_000_000 != 0
                {
                    c.at(
                        d.referenced,
                        format!("{path}.{field}"),
                        format!("{} is not a whole number of milliseconds", d.value),
                        Some("dm-delay counts whole milliseconds".into()),
                    );
                }
            }
        }
        Fault::BlockFlakey { up, down, .. } => {
            for (d, field) in [(up, "up"), (down, "down")] {
                if d.value.0.subsec_nanos() != 0 || d.value.0.as_secs() == 0 {
                    c.at(
                        d.referenced,
                        format!("{path}.{field}"),
                        format!("{} is not a whole number of seconds (at least 1s)", d.value),
                        Some("dm-flakey counts whole seconds".into()),
                    );
                }
            }
        }
        _ => {}
    }
}

fn check_workloads(c: &mut Checker, s: &Scenario, hosts: &[&str]) {
    c.unique(
        s.workloads
            .iter()
            .enumerate()
            .map(|(i, w)| (&w.id, format!("workloads[{i}].id"))),
    );
    let mounts: Vec<&str> = mount_ids(s);
    let all = flatten_steps(&s.steps);
    let steps: Vec<&str> = all.iter().map(|(_, st)| st.id.value.as_str()).collect();
    for (i, w) in s.workloads.iter().enumerate() {
        let path = format!("workloads[{i}]");
        for (edge, field) in [(&w.start, "start"), (&w.stop, "stop")] {
            if let Some(step) = edge {
                c.reference(step, format!("{path}.{field}"), "step", steps.clone());
            }
        }
        c.reference(
            &w.host,
            format!("{path}.host"),
            "host",
            hosts.iter().copied(),
        );
        let op = w.op.value;
        let needs = |field: &str| -> String { format!("op `{}` needs `{field}`", op.name()) };
        let misplaced =
            |field: &str| -> String { format!("`{field}` does not apply to op `{}`", op.name()) };
        match (&w.path, op) {
            (Some(p), WorkloadOp::Exec | WorkloadOp::MountStorm) => c.at(
                p.referenced,
                format!("{path}.path"),
                misplaced("path"),
                None,
            ),
            (Some(p), _) => c.absolute(p, format!("{path}.path")),
            (None, WorkloadOp::Exec | WorkloadOp::MountStorm) => {}
            (None, _) => c.at(w.op.referenced, format!("{path}.path"), needs("path"), None),
        }
        let want = |c: &mut Checker, present: bool, wanted: bool, field: &str| {
            if present && !wanted {
                c.at(
                    w.op.referenced,
                    format!("{path}.{field}"),
                    misplaced(field),
                    None,
                );
            } else if !present && wanted {
                c.at(
                    w.op.referenced,
                    format!("{path}.{field}"),
                    needs(field),
                    None,
                );
            }
        };
        want(c, w.lock.is_some(), op == WorkloadOp::Flock, "lock");
        if w.hold.is_some() && op != WorkloadOp::Flock {
            c.at(
                w.op.referenced,
                format!("{path}.hold"),
                misplaced("hold"),
                None,
            );
        }
        want(c, w.command.is_some(), op == WorkloadOp::Exec, "command");
        want(c, w.mount.is_some(), op == WorkloadOp::MountStorm, "mount");
        if w.parallel.is_some() && op != WorkloadOp::MountStorm {
            c.at(
                w.op.referenced,
                format!("{path}.parallel"),
                misplaced("parallel"),
                None,
            );
        }
        if w.hold_open && op != WorkloadOp::Read {
            c.at(
                w.op.referenced,
                format!("{path}.hold_open"),
                misplaced("hold_open"),
                None,
            );
        }
        if w.fsync && !matches!(op, WorkloadOp::Append | WorkloadOp::Write) {
            c.at(
                w.op.referenced,
                format!("{path}.fsync"),
                misplaced("fsync"),
                None,
            );
        }
        if let Some(command) = &w.command
            && command.is_empty()
        {
            c.at(
                w.op.referenced,
                format!("{path}.command"),
                "`command` needs at least the program".into(),
                None,
            );
        }
        if let Some(m) = &w.mount {
            c.reference(m, format!("{path}.mount"), "mount or image", mounts.clone());
        }
    }
}

fn mount_ids(s: &Scenario) -> Vec<&str> {
    s.images
        .iter()
        .map(|m| m.id.value.as_str())
        .chain(s.mounts.iter().map(|m| m.id.value.as_str()))
        .collect()
}

fn check_regex(c: &mut Checker, pattern: &Spanned<String>, path: String) {
    if let Err(err) = regex::Regex::new(&pattern.value) {
        c.at(
            pattern.referenced,
            path,
            format!(
                "invalid regular expression: {}",
                err.to_string().lines().last().unwrap_or("")
            ),
            Some("in YAML double quotes a backslash is written \\\\; single quotes keep it".into()),
        );
    }
}

fn check_xfail(c: &mut Checker, s: &Scenario) {
    for (i, p) in s.kmsg_allow.iter().enumerate() {
        check_regex(c, p, format!("kmsg_allow[{i}]"));
    }
    if let Some(range) = s.xfail.as_ref().and_then(|x| x.kernel.as_ref()) {
        check_kernel_range(c, range, "xfail.kernel");
    }
}

/// An errno named as the kernel's headers spell it (`EIO`, `EACCES`).
fn check_errno(c: &mut Checker, errno: &Spanned<String>, path: &str) {
    if crate::errno::by_name(&errno.value).is_none() {
        c.at(
            errno.referenced,
            format!("{path}.errno"),
            format!("unknown errno `{}`", errno.value),
            closest(&errno.value, crate::errno::NAMES.iter().copied())
                .map(|n| format!("did you mean `{n}`?")),
        );
    }
}

fn check_kernel_range(c: &mut Checker, range: &crate::scenario::model::KernelRange, path: &str) {
    for (v, field) in [(&range.from, "from"), (&range.until, "until")] {
        if let Some(v) = v
            && crate::plan::KernelVersion::of(&v.value).0.is_empty()
        {
            c.at(
                v.referenced,
                format!("{path}.{field}"),
                format!("`{}` is not a kernel version", v.value),
                Some("write e.g. \"6.1\" or \"6.9.2\"".into()),
            );
        }
    }
}

fn check_expectations(c: &mut Checker, s: &Scenario) {
    let all = flatten_steps(&s.steps);
    let steps: Vec<&str> = all.iter().map(|(_, st)| st.id.value.as_str()).collect();
    let workloads: Vec<&str> = s.workloads.iter().map(|w| w.id.value.as_str()).collect();
    let images: Vec<&str> = s.images.iter().map(|m| m.id.value.as_str()).collect();
    let mounts = mount_ids(s);
    for (i, e) in s.expect.iter().enumerate() {
        let path = format!("expect[{i}].{}", e.value.name());
        if let Some(w) = e.value.workload() {
            c.reference(w, format!("{path}.workload"), "workload", workloads.clone());
        }
        if let Some((during, after)) = e.value.window() {
            for (j, step) in during.iter().flatten().enumerate() {
                c.reference(step, format!("{path}.during[{j}]"), "step", steps.clone());
            }
            if let Some(a) = after {
                c.reference(a, format!("{path}.after"), "step", steps.clone());
                if during.is_some() {
                    c.at(
                        a.referenced,
                        format!("{path}.after"),
                        "a matcher has `during` or `after`, not both".into(),
                        None,
                    );
                }
            }
            if during.as_ref().is_some_and(Vec::is_empty) {
                c.at(
                    e.referenced,
                    format!("{path}.during"),
                    "`during` needs one step, or two for a range".into(),
                    Some("leave `during` out to look at the whole run".into()),
                );
            }
        }
        let at = |c: &mut Checker, at: &Option<Ref>, path: &str| {
            if let Some(step) = at {
                c.reference(step, format!("{path}.at"), "step", steps.clone());
            }
        };
        match &e.value {
            Expectation::Errno { errno, .. } => check_errno(c, errno, &path),
            Expectation::Kmsg { pattern, .. } => check_regex(c, pattern, format!("{path}.pattern")),
            Expectation::Hang {
                wchan,
                stack,
                kernel,
                ..
            } => {
                if let Some(w) = wchan {
                    check_regex(c, w, format!("{path}.wchan"));
                }
                if let Some(k) = stack {
                    check_regex(c, k, format!("{path}.stack"));
                }
                if let Some(range) = kernel {
                    check_kernel_range(c, range, &format!("{path}.kernel"));
                }
            }
            Expectation::ResumesWithin { after, .. } => {
                c.reference(after, format!("{path}.after"), "step", steps.clone());
            }
            Expectation::Data { workload, .. } => {
                if let Some(w) = s.workloads.iter().find(|w| w.id.value == workload.value)
                    && !matches!(w.op.value, WorkloadOp::Append | WorkloadOp::Write)
                {
                    c.at(
                        workload.referenced,
                        format!("{path}.workload"),
                        format!(
                            "workload `{}` writes no records (op `{}`)",
                            workload.value,
                            w.op.value.name()
                        ),
                        Some("data verification needs an append or write workload".into()),
                    );
                }
            }
            Expectation::ExitCode { step, .. } => {
                if c.reference(step, format!("{path}.step"), "step", steps.clone())
                    && let Some((_, st)) = all.iter().find(|(_, st)| st.id.value == step.value)
                    && st.exec.is_none()
                {
                    c.at(
                        step.referenced,
                        format!("{path}.step"),
                        format!("step `{}` runs no command", step.value),
                        Some("exit_code looks at a step with `exec`".into()),
                    );
                }
            }
            Expectation::FsState { fs, at: a, .. } => {
                c.reference(fs, format!("{path}.fs"), "image", images.clone());
                at(c, a, &path);
            }
            Expectation::Mounted { mount, at: a, .. } => {
                c.reference(
                    mount,
                    format!("{path}.mount"),
                    "mount or image",
                    mounts.clone(),
                );
                at(c, a, &path);
            }
            _ => {}
        }
    }
    if let Some(when) = &s.data_check
        && !s
            .expect
            .iter()
            .any(|e| matches!(e.value, Expectation::Data { .. }))
    {
        c.at(
            when.referenced,
            "data_check".into(),
            "`data_check` says when `data` expectations read files back, but there is none".into(),
            Some(
                "add `- data: { workload: …, verify: all_acknowledged }` to `expect`, \
                 or leave `data_check` out"
                    .into(),
            ),
        );
    }
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
