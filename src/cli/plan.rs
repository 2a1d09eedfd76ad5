//! `stackquake plan` and `stackquake list`: what a run would do, and what
//! scenarios there are, without touching the machine.

use super::exit;
use super::out::out;
use super::run::load_all;
use crate::engine::{Anchor, Timeline};
use crate::plan::{Action, Plan, SWITCH_BRIDGE, size_text};
use std::path::PathBuf;
use std::time::Duration;

/// Prints every object a run would create and the resolved timeline.
pub fn plan(paths: &[PathBuf], vars: &[(String, String)]) -> u8 {
    let scenarios = match load_all(paths, vars) {
        Ok(s) => s,
        Err(code) => return code,
    };
    for (file, s) in &scenarios {
        out!("{} ({})", s.id, file.display());
        print_world(s);
        let t = Timeline::resolve(s);
        out!("  timeline (scenario timeout {}):", fmt(s.timeout));
        for p in &t.steps {
            let when = match p.anchor {
                Anchor::Start => "at start".to_string(),
                Anchor::EndOf(n) => format!("after {} ends", t.steps[n].id),
                Anchor::BeginOf(n) => format!("with group {}", t.steps[n].id),
            };
            let offset = if p.offset.is_zero() {
                String::new()
            } else {
                format!(" + {}", fmt(p.offset))
            };
            let span = format!(
                "{}..{}",
                p.begin.map_or("?".into(), |d| format!("+{}", fmt(d))),
                p.end.map_or("?".into(), |d| format!("+{}", fmt(d)))
            );
            let what = match p.action {
                Action::Fault {
                    fault,
                    heal_after: Some(d),
                } => format!("fault {} for {}, then heal", fault.kind(), fmt(*d)),
                Action::Fault { fault, .. } => format!("fault {}, healed at the end", fault.kind()),
                Action::Wait(w) => format!("wait {}", fmt(*w)),
                Action::Exec { host, command } => format!("exec on {host}: {}", command.join(" ")),
                Action::Parallel(_) => "parallel".into(),
            };
            let timeout = p
                .timeout
                .map(|d| format!(" (timeout {})", fmt(d)))
                .unwrap_or_default();
            out!(
                "    {:<14} {span:<16} {when}{offset}: {what}{timeout}",
                p.id
            );
        }
        out!("  expect:");
        for e in &s.expect {
            out!("    {}", e.name());
        }
    }
    exit::OK
}

fn print_world(s: &Plan) {
    out!("  would create:");
    for name in s.hosts.keys() {
        out!("    netns sq-<run>-{name}");
    }
    // A switch is a namespace of its own with a bridge; each host joins it
    // once, by one veth pair to a bridge port, however many links it has.
    let mut switches = std::collections::BTreeSet::new();
    for sw in s.links.iter().filter_map(|l| l.switch.as_ref()) {
        if switches.insert(sw.as_str()) {
            out!("    netns sq-<run>-{sw} (switch {sw})");
            out!("    bridge {SWITCH_BRIDGE} in netns sq-<run>-{sw} (switch {sw})");
        }
    }
    let mut ports = std::collections::BTreeSet::new();
    for l in &s.links {
        let [a, b] = &l.between;
        match &l.switch {
            None => out!("    veth pair {a} <-> {b}"),
            Some(sw) => {
                for host in [a, b] {
                    if ports.insert((host, sw)) {
                        out!("    veth pair {host} <-> switch {sw} (bridge port)");
                    }
                }
            }
        }
    }
    for (name, srv) in &s.nfs_servers {
        let exports: Vec<&str> = srv.exports.iter().map(|e| e.path.as_str()).collect();
        out!(
            "    nfs server {name} on {} exporting {}",
            srv.host,
            exports.join(", ")
        );
    }
    for m in &s.mounts {
        out!("    nfs mount {} at {} on {}", m.id, m.at, m.host);
    }
    for i in &s.images {
        out!(
            "    image {} ({} xfs) on a loop device, mounted at {}",
            i.id,
            size_text(i.size),
            i.at
        );
    }
    for w in &s.workloads {
        out!("    workload {} ({}) on {}", w.id, w.op.name(), w.host);
    }
}

fn fmt(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// One line per scenario (and matrix case): id, where it runs, title.
pub fn list(paths: &[PathBuf], vars: &[(String, String)]) -> u8 {
    let scenarios = match load_all(paths, vars) {
        Ok(s) => s,
        Err(code) => return code,
    };
    for (file, s) in &scenarios {
        let targets: Vec<String> = s.requires.targets.iter().map(|t| t.to_string()).collect();
        let targets = if targets.is_empty() {
            "any".into()
        } else {
            targets.join("/")
        };
        let xfail = if s.xfail.is_some() { " [xfail]" } else { "" };
        out!(
            "{:<40} {:<8} {}{xfail}  ({})  [{}]",
            s.id,
            targets,
            s.title,
            file.display(),
            s.tags.join(", ")
        );
    }
    exit::OK
}
