//! `stackquake plan` and `stackquake list`: what a run would do, and what
//! scenarios there are, without touching the machine.

pub(super) mod staging;
mod world;

use super::exit;
use super::out::out;
use super::partition::Partition;
use super::run::load_all;
use crate::engine::{Anchor, Timeline};
use crate::plan::{Action, Expectation, Window};
use std::path::PathBuf;
use std::time::Duration;
use world::print_world;

/// Targets `plan` knows apart: staging prints what a rehearsal changes on
/// the client; the others what a run builds.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PlanTarget {
    Vm,
    Host,
    Staging,
}

/// Prints every object a run would create and the resolved timeline.
pub fn plan(
    paths: &[PathBuf],
    vars: &[(String, String)],
    target: Option<PlanTarget>,
    allow_external: &[std::net::IpAddr],
) -> u8 {
    let scenarios = match load_all(paths, vars) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let staging = target == Some(PlanTarget::Staging);
    let mut code = exit::OK;
    for (file, s) in &scenarios {
        if let Some(why) = staging::mismatch(s.is_rehearsal(), staging) {
            eprintln!("{}: scenario {} {why}", file.display(), s.id);
            code = exit::INVALID_INPUT;
            continue;
        }
        out!("{} ({})", s.id, file.display());
        if let Some(x) = &s.xfail {
            out!("  known failure on {}: {}", x.kernel, x.reason);
        }
        if staging {
            if !staging::print_staging(s, allow_external) {
                code = exit::INVALID_INPUT;
            }
        } else {
            print_world(s);
        }
        let t = Timeline::resolve(s);
        out!("  timeline (scenario timeout {}):", fmt(s.timeout));
        for p in &t.steps {
            let when = match p.anchor {
                Anchor::Start => "at start".to_string(),
                Anchor::EndOf(n) => format!("after {} ends", t.steps[n].step.id),
                Anchor::BeginOf(n) => format!("with group {}", t.steps[n].step.id),
            };
            let offset = if p.step.offset.is_zero() {
                String::new()
            } else {
                format!(" + {}", fmt(p.step.offset))
            };
            let span = format!(
                "{}..{}",
                p.begin.map_or("?".into(), |d| format!("+{}", fmt(d))),
                p.end.map_or("?".into(), |d| format!("+{}", fmt(d)))
            );
            let what = match &p.step.action {
                Action::Fault {
                    fault, kept: true, ..
                } => format!("fault {}, never healed", fault.kind()),
                Action::Fault {
                    fault,
                    heal_after: Some(d),
                    ..
                } => format!("fault {} for {}, then heal", fault.kind(), fmt(*d)),
                Action::Fault { fault, .. } => format!("fault {}, healed at the end", fault.kind()),
                Action::Wait(w) => format!("wait {}", fmt(*w)),
                Action::Exec {
                    host,
                    command,
                    ready,
                } => {
                    let ready = ready
                        .as_ref()
                        .map(|r| format!(" (ready at a line matching /{r}/)"))
                        .unwrap_or_default();
                    format!("exec on {host}: {}{ready}", command.join(" "))
                }
                Action::Parallel(_) => "parallel".into(),
                Action::Pause { message } => format!("pause for the operator: {message}"),
            };
            let timeout = p
                .step
                .timeout
                .map(|d| format!(" (timeout {})", fmt(d)))
                .unwrap_or_default();
            out!(
                "    {:<14} {span:<16} {when}{offset}: {what}{timeout}",
                p.step.id
            );
        }
        if !s.abort.is_empty() {
            out!("  abort when (healing everything at once):");
            for p in &s.abort {
                out!("    {:<14} {}", p.id, abort_probe_text(p));
            }
        }
        out!("  expect:");
        for e in &s.expect {
            out!("    {}", expectation_text(e));
        }
        for w in shared_kernel_log(s) {
            out!("  WARNING: {w}");
        }
    }
    code
}

/// A `kmsg` expectation in a world where several client hosts mount one
/// server: hosts share one kernel log, and the client's lines (`nfs:
/// server … not responding`, `lockd: server …`) name the server, not the
/// client, so such a matcher cannot tell which host logged the line.
/// Warned of, not refused: whether a pattern assumes one host cannot be
/// read from it (an XFS line names its loop device, a server-side line
/// its server), and "some client logged it" is a fair expectation.
fn shared_kernel_log(s: &crate::plan::Plan) -> Vec<String> {
    let mut warnings = Vec::new();
    for server in s.nfs_servers.keys() {
        let mut clients: Vec<&str> = s
            .mounts
            .iter()
            .filter(|m| &m.server == server)
            .map(|m| m.host.as_str())
            .collect();
        clients.sort();
        clients.dedup();
        if clients.len() < 2 {
            continue;
        }
        for e in &s.expect {
            if let Expectation::Kmsg {
                pattern,
                absent: false,
                ..
            } = e
            {
                warnings.push(format!(
                    "kmsg `{pattern}` may match a line logged for any of hosts {} (they all \
                     mount {server} and share one kernel log): it cannot tell which host \
                     logged it (docs/scenarios.md, \"What hosts share\")",
                    clients.join(", ")
                ));
            }
        }
    }
    warnings
}

/// An expectation with what it is about and when: `no_errors writer
/// during failover..after`, so two of one kind can be told apart.
fn expectation_text(e: &Expectation) -> String {
    let window = |w: &Window| match (&w.during, &w.after) {
        (Some((a, b)), _) if a == b => format!(" during {a}"),
        (Some((a, b)), _) => format!(" during {a}..{b}"),
        (None, Some(a)) => format!(" after {a}"),
        (None, None) => String::new(),
    };
    let at = |at: &Option<String>| {
        at.as_ref()
            .map_or(" when the last step ends".to_string(), |a| {
                format!(" when {a} ends")
            })
    };
    let what = match e {
        Expectation::Errno {
            workload,
            errno,
            window: w,
        } => format!("{workload} {}{}", crate::errno::name(*errno), window(w)),
        Expectation::NoErrors {
            workload,
            window: w,
        }
        | Expectation::Hang {
            workload,
            window: w,
            ..
        }
        | Expectation::NoHang {
            workload,
            window: w,
        } => format!("{workload}{}", window(w)),
        Expectation::StallsAtLeast {
            workload,
            duration,
            window: w,
        } => format!("{workload} {}{}", fmt(*duration), window(w)),
        Expectation::ResumesWithin {
            workload,
            duration,
            after,
        } => format!("{workload} {} after {after}", fmt(*duration)),
        Expectation::Data { workload, .. } => workload.clone(),
        Expectation::ExitCode { step, code } => format!("{step} {code}"),
        Expectation::MountFails { mount, errno } => match errno {
            Some(e) => format!("{mount} {}", crate::errno::name(*e)),
            None => mount.clone(),
        },
        Expectation::Kmsg {
            pattern,
            absent,
            window: w,
        } => format!(
            "/{}/{}{}",
            pattern.as_str(),
            if *absent { " absent" } else { "" },
            window(w)
        ),
        Expectation::FsState {
            image,
            state,
            at: a,
        } => format!("{image} {}{}", crate::expect::fs_state_word(*state), at(a)),
        Expectation::Mounted {
            mount,
            present,
            at: a,
        } => format!(
            "{mount} {}{}",
            if *present { "listed" } else { "not listed" },
            at(a)
        ),
        Expectation::MutualExclusion { workloads } => workloads
            .iter()
            .map(|(w, mode)| {
                format!(
                    "{w} ({})",
                    if *mode == crate::plan::LockMode::Sh {
                        "sh"
                    } else {
                        "ex"
                    }
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
        Expectation::Order {
            first,
            then,
            at_least,
            at_most,
        } => format!(
            "{first} → {then}{}{}",
            at_least.map_or(String::new(), |d| format!(" at least {}", fmt(d))),
            at_most.map_or(String::new(), |d| format!(" at most {}", fmt(d)))
        ),
        Expectation::NeverResumes { workload, after } => format!("{workload} after {after}"),
    };
    format!("{} {what}", e.name())
}

fn fmt(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListFormat {
    Human,
    Json,
}

/// One case of `list --format json`: what a CI matrix needs to name a job.
#[derive(serde::Serialize)]
struct ListedCase<'p> {
    id: &'p str,
    title: &'p str,
    file: String,
    /// Where it may run; empty means anywhere.
    targets: Vec<String>,
    tags: &'p [String],
    xfail: bool,
}

/// One line per scenario (and matrix case): id, where it runs, title; or
/// all of them as one JSON array.
pub fn list(
    paths: &[PathBuf],
    vars: &[(String, String)],
    partition: Option<Partition>,
    format: ListFormat,
) -> u8 {
    let scenarios = match load_all(paths, vars) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let scenarios = match partition {
        Some(p) => p.select(scenarios),
        None => scenarios,
    };
    if format == ListFormat::Json {
        let cases: Vec<ListedCase> = scenarios
            .iter()
            .map(|(file, s)| ListedCase {
                id: &s.id,
                title: &s.title,
                file: file.display().to_string(),
                targets: s.requires.targets.iter().map(|t| t.to_string()).collect(),
                tags: &s.tags,
                xfail: s.xfail.is_some(),
            })
            .collect();
        out!(
            "{}",
            serde_json::to_string_pretty(&cases).expect("a list serializes")
        );
        return exit::OK;
    }
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

/// What an abort probe checks, and how often.
fn abort_probe_text(p: &crate::plan::AbortProbe) -> String {
    use crate::plan::ProbeCheck;
    let every = humantime::format_duration(p.every);
    let within = humantime::format_duration(p.within);
    match &p.check {
        ProbeCheck::Command { host, command } => format!(
            "exec on {host} every {every} fails (non-zero, or no exit within {within}): {}",
            command.join(" ")
        ),
        ProbeCheck::Readable { path } => {
            format!("{path} cannot be read within {within} (checked every {every})")
        }
        ProbeCheck::OpLatency { workload } => {
            format!("an op of workload {workload} takes longer than {within}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::expectation_text;

    #[test]
    fn history_checkers_print_what_they_relate() {
        let text = "schema_version: 1\nid: t\ntitle: t\nhosts: { a: {} }
workloads:
  - { id: p1, host: a, op: flock, lock: ex, path: /l, every: 20ms }
  - { id: p2, host: a, op: flock, lock: sh, path: /l, every: 20ms }
  - { id: w, host: a, op: append, path: /f, every: 20ms }
steps:
  - { id: cut, fault: { xfs.shutdown: { fs: v } } }
images:
  - { id: v, host: a, file: /v.img, size: 512M, mkfs: xfs, at: /mnt/v }
expect:
  - mutual_exclusion: { workloads: [p1, p2] }
  - order: { first: { workload: p1, op: released }, then: { workload: p2, op: acquired }, at_least: 8s, at_most: 30s }
  - order: { first: { fault: cut, at: injected }, then: { step: cut, at: end } }
  - never_resumes: { workload: w, after: cut }
";
        let plan = crate::scenario::load_str(text, "t.yaml").unwrap_or_else(|e| panic!("{e}"));
        let printed: Vec<String> = plan.expect.iter().map(expectation_text).collect();
        assert_eq!(
            printed,
            [
                "mutual_exclusion p1 (ex), p2 (sh)",
                "order p1 released → p2 acquired at least 8s at most 30s",
                "order fault cut injected → step cut end",
                "never_resumes w after cut",
            ]
        );
    }
}
