//! `stackquake plan` and `stackquake list`: what a run would do, and what
//! scenarios there are, without touching the machine.

use super::exit;
use super::run::load_all;
use crate::engine::{Anchor, Timeline};
use crate::scenario::{SWITCH_BRIDGE, Scenario};
use std::path::PathBuf;
use std::time::Duration;

/// Prints every object a run would create and the resolved timeline.
pub fn plan(paths: &[PathBuf], vars: &[(String, String)]) -> u8 {
    let scenarios = match load_all(paths, vars) {
        Ok(s) => s,
        Err(code) => return code,
    };
    for (file, s) in &scenarios {
        println!("{} ({})", s.id.value, file.display());
        print_world(s);
        let t = Timeline::resolve(s);
        println!("  timeline (scenario timeout {}):", s.timeout);
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
            let mut what = p.action.to_string();
            if let Some(f) = &p.step.fault {
                what = format!("fault {}", f.value.kind());
                if let Some(d) = p.step.for_ {
                    what.push_str(&format!(" for {d}, then heal"));
                } else {
                    what.push_str(", healed at the end");
                }
            } else if let Some(w) = p.step.wait {
                what = format!("wait {w}");
            } else if let Some(e) = &p.step.exec {
                what = format!("exec on {}: {}", e.host.value, e.command.value.join(" "));
            }
            let timeout = p
                .timeout
                .map(|d| format!(" (timeout {})", fmt(d)))
                .unwrap_or_default();
            println!(
                "    {:<14} {span:<16} {when}{offset}: {what}{timeout}",
                p.id
            );
        }
        println!("  expect:");
        for e in &s.expect {
            println!("    {}", e.value.name());
        }
    }
    exit::OK
}

fn print_world(s: &Scenario) {
    println!("  would create:");
    for name in s.hosts.keys() {
        println!("    netns sq-<run>-{name}");
    }
    // A switch is a namespace of its own with a bridge; each host joins it
    // once, by one veth pair to a bridge port, however many links it has.
    let mut switches = std::collections::BTreeSet::new();
    for sw in s.links.iter().filter_map(|l| l.switch.as_ref()) {
        if switches.insert(sw.value.as_str()) {
            println!("    netns sq-<run>-{} (switch {0})", sw.value);
            println!(
                "    bridge {SWITCH_BRIDGE} in netns sq-<run>-{} (switch {0})",
                sw.value
            );
        }
    }
    let mut ports = std::collections::BTreeSet::new();
    for l in &s.links {
        let [a, b] = [&l.between[0].value, &l.between[1].value];
        match &l.switch {
            None => println!("    veth pair {a} <-> {b}"),
            Some(sw) => {
                for host in [a, b] {
                    if ports.insert((host, &sw.value)) {
                        println!("    veth pair {host} <-> switch {} (bridge port)", sw.value);
                    }
                }
            }
        }
    }
    for (name, srv) in &s.nfs_servers {
        let exports: Vec<&str> = srv.exports.iter().map(|e| e.path.value.as_str()).collect();
        println!(
            "    nfs server {name} on {} exporting {}",
            srv.host.value,
            exports.join(", ")
        );
    }
    for m in &s.mounts {
        println!(
            "    nfs mount {} at {} on {}",
            m.id.value, m.at.value, m.host.value
        );
    }
    for i in &s.images {
        println!(
            "    image {} ({} xfs) on a loop device, mounted at {}",
            i.id.value, i.size, i.at.value
        );
    }
    for w in &s.workloads {
        println!(
            "    workload {} ({}) on {}",
            w.id.value,
            w.op.value.name(),
            w.host.value
        );
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
        let targets: Vec<String> = s.requires.target.iter().map(|t| t.to_string()).collect();
        let targets = if targets.is_empty() {
            "any".into()
        } else {
            targets.join("/")
        };
        let xfail = if s.xfail.is_some() { " [xfail]" } else { "" };
        println!(
            "{:<40} {:<8} {}{xfail}  ({})  [{}]",
            s.id.value,
            targets,
            s.title,
            file.display(),
            s.tags.join(", ")
        );
    }
    exit::OK
}
