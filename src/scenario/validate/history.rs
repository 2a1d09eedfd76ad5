//! The history checkers' references: `mutual_exclusion` names flock
//! workloads on one host locking one file; each of `order`'s events names
//! exactly one thing, with the edge that thing has; `never_resumes` names a
//! step. Workload references in general are checked by the caller.

use super::{Checker, flatten_steps};
use crate::plan::{Edge, NfsVersion, OpEvent};
use crate::scenario::model::*;
use serde_saphyr::Spanned;

pub(super) fn check(c: &mut Checker, s: &Scenario) {
    let all = flatten_steps(&s.steps);
    let steps: Vec<&str> = all.iter().map(|(_, st)| st.id.value.as_str()).collect();
    for (i, e) in s.expect.iter().enumerate() {
        let path = format!("expect[{i}].{}", e.value.name());
        match &e.value {
            Expectation::MutualExclusion { workloads } => {
                mutual_exclusion(c, s, e, workloads, &path);
            }
            Expectation::Order {
                first,
                then,
                at_least,
                at_most,
            } => {
                event(c, s, &all, first, &format!("{path}.first"));
                event(c, s, &all, then, &format!("{path}.then"));
                if let (Some(lo), Some(hi)) = (at_least, at_most)
                    && lo.value.0 > hi.value.0
                {
                    c.at(
                        hi.referenced,
                        format!("{path}.at_most"),
                        format!(
                            "`at_most` ({}) is shorter than `at_least` ({}): no gap passes",
                            humantime::format_duration(hi.value.0),
                            humantime::format_duration(lo.value.0)
                        ),
                        None,
                    );
                }
            }
            Expectation::NeverResumes { after, .. } => {
                c.reference(after, format!("{path}.after"), "step", steps.clone());
            }
            _ => {}
        }
    }
}

fn mutual_exclusion(
    c: &mut Checker,
    s: &Scenario,
    e: &Spanned<Expectation>,
    workloads: &[Ref],
    path: &str,
) {
    let ids: Vec<&str> = s.workloads.iter().map(|w| w.id.value.as_str()).collect();
    let mut locks: Vec<(&Ref, &Workload)> = Vec::new();
    for (j, r) in workloads.iter().enumerate() {
        let at = format!("{path}.workloads[{j}]");
        if !c.reference(r, at.clone(), "workload", ids.iter().copied()) {
            continue;
        }
        if locks.iter().any(|(seen, _)| seen.value == r.value) {
            c.at(
                r.referenced,
                at,
                format!("workload `{}` is listed twice", r.value),
                None,
            );
            continue;
        }
        let w = s
            .workloads
            .iter()
            .find(|w| w.id.value == r.value)
            .expect("referenced above");
        if w.op.value != WorkloadOp::Flock {
            c.at(
                r.referenced,
                at,
                format!(
                    "workload `{}` takes no lock (op `{}`)",
                    r.value,
                    w.op.value.name()
                ),
                Some("mutual_exclusion judges the holds of `op: flock` workloads".into()),
            );
            continue;
        }
        if let Some((other, o)) = locks.first()
            && !same_lock(s, o, w)
        {
            c.at(
                r.referenced,
                at,
                format!(
                    "workload `{}` locks {} on host `{}`, but `{}` locks {} on host `{}`",
                    r.value,
                    path_of(w),
                    w.host.value,
                    other.value,
                    path_of(o),
                    o.host.value
                ),
                Some(
                    "list workloads that lock one file: on one host, or on several through \
                     NFSv4 mounts of one export (over NLM, hosts share the guest's kernel \
                     and its lockd: docs/scenarios.md, \"What hosts share\")"
                        .into(),
                ),
            );
            continue;
        }
        locks.push((r, w));
    }
    if workloads.len() < 2 {
        c.at(
            e.referenced,
            format!("{path}.workloads"),
            "mutual_exclusion needs at least two workloads".into(),
            Some("one workload's ops run one after another: they cannot overlap".into()),
        );
    }
}

/// Whether two flock workloads contend for one lock: the same file on one
/// host, or one file of one export locked at an NFSv4 server from several
/// hosts (each host is its own NFSv4 client; over NLM the hosts would
/// share one lockd, so that is not offered).
fn same_lock(s: &Scenario, a: &Workload, b: &Workload) -> bool {
    if a.host.value == b.host.value {
        return path_of(a) == path_of(b);
    }
    match (v4_server_file(s, a), v4_server_file(s, b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// The file a workload locks as an NFSv4 server knows it (server, export,
/// path below the export), if its path lies on a v4 mount whose locks go
/// to the server (not `local_lock=all` or `flock`).
fn v4_server_file<'s>(
    s: &'s Scenario,
    w: &Workload,
) -> Option<(&'s str, &'s str, std::path::PathBuf)> {
    let path = std::path::Path::new(path_of(w));
    let m = s
        .mounts
        .iter()
        .filter(|m| m.host.value == w.host.value && path.starts_with(&m.at.value))
        .max_by_key(|m| m.at.value.len())?;
    let options = m.options.as_ref().map(|o| o.value.as_str());
    let local = options
        .unwrap_or("")
        .split(',')
        .any(|o| matches!(o.trim(), "local_lock=all" | "local_lock=flock"));
    let v4 = NfsVersion::from_options(options).is_ok_and(|v| v.is_v4());
    let below = path.strip_prefix(&m.at.value).ok()?.to_path_buf();
    (v4 && !local).then_some((m.server.value.as_str(), m.export.value.as_str(), below))
}

fn path_of(w: &Workload) -> &str {
    w.path.as_ref().map_or("", |p| p.value.as_str())
}

fn event(
    c: &mut Checker,
    s: &Scenario,
    all: &[(String, &crate::scenario::steps::Step)],
    r: &Spanned<EventRef>,
    path: &str,
) {
    let v = &r.value;
    let named = [v.workload.is_some(), v.step.is_some(), v.fault.is_some()];
    if named.iter().filter(|n| **n).count() != 1 {
        c.at(
            r.referenced,
            path.into(),
            "an event names exactly one of `workload`, `step` or `fault`".into(),
            Some(
                "write `{ workload: w, op: acquired|released|succeeded|failed }`, \
                 `{ step: s, at: begin|end }` or `{ fault: s, at: injected|healed }`"
                    .into(),
            ),
        );
        return;
    }
    let steps: Vec<&str> = all.iter().map(|(_, st)| st.id.value.as_str()).collect();
    if let Some(w) = &v.workload {
        if let Some(at) = &v.at {
            c.at(
                at.referenced,
                format!("{path}.at"),
                "a workload's event is chosen with `op`, not `at`".into(),
                Some("op: acquired, released, succeeded or failed".into()),
            );
        }
        let Some(op) = &v.op else {
            c.at(
                w.referenced,
                format!("{path}.op"),
                format!("which event of workload `{}`? `op` is missing", w.value),
                Some("op: acquired, released, succeeded or failed".into()),
            );
            return;
        };
        let ids: Vec<&str> = s.workloads.iter().map(|w| w.id.value.as_str()).collect();
        if c.reference(w, format!("{path}.workload"), "workload", ids)
            && matches!(op.value, OpEvent::Acquired | OpEvent::Released)
            && let Some(d) = s.workloads.iter().find(|d| d.id.value == w.value)
            && d.op.value != WorkloadOp::Flock
        {
            c.at(
                op.referenced,
                format!("{path}.op"),
                format!(
                    "workload `{}` takes no lock (op `{}`): it is never {}",
                    w.value,
                    d.op.value.name(),
                    op.value.word()
                ),
                Some("for any workload: op: succeeded or failed".into()),
            );
        }
        return;
    }
    if let Some(op) = &v.op {
        c.at(
            op.referenced,
            format!("{path}.op"),
            "`op` belongs to a workload's event".into(),
            None,
        );
    }
    let (name, key, edges, hint) = match (&v.step, &v.fault) {
        (Some(st), _) => (
            st,
            "step",
            &[Edge::Begin, Edge::End, Edge::Ready][..],
            "at: begin or end (or ready, for an exec step with `ready:`)",
        ),
        (_, Some(f)) => (
            f,
            "fault",
            &[Edge::Injected, Edge::Healed][..],
            "at: injected or healed",
        ),
        _ => unreachable!("exactly one is named"),
    };
    let Some(at) = &v.at else {
        c.at(
            name.referenced,
            format!("{path}.at"),
            format!("which edge of {key} `{}`? `at` is missing", name.value),
            Some(hint.into()),
        );
        return;
    };
    if !edges.contains(&at.value) {
        c.at(
            at.referenced,
            format!("{path}.at"),
            format!("a {key} has no edge `{}`", at.value.word()),
            Some(hint.into()),
        );
    }
    if !c.reference(name, format!("{path}.{key}"), "step", steps) {
        return;
    }
    let step = all
        .iter()
        .find(|(_, st)| st.id.value == name.value)
        .map(|(_, st)| st)
        .expect("referenced above");
    if key == "step" {
        if at.value == Edge::Ready && step.exec.as_ref().is_none_or(|e| e.ready.is_none()) {
            c.at(
                at.referenced,
                format!("{path}.at"),
                format!(
                    "step `{}` has no `ready` moment: only an exec step with `ready:` has one",
                    name.value
                ),
                Some("exec: { host: h, command: [sh, -c, 'take it; echo ready; hold it'], ready: '^ready$' }".into()),
            );
        }
        return;
    }
    if step.fault.is_none() {
        c.at(
            name.referenced,
            format!("{path}.fault"),
            format!("step `{}` injects no fault", name.value),
            Some(format!(
                "for its edges write `{{ step: {}, at: begin|end }}`",
                name.value
            )),
        );
    } else if at.value == Edge::Healed && step.heal.as_ref().is_some_and(|h| !h.value) {
        c.at(
            at.referenced,
            format!("{path}.at"),
            format!(
                "the fault of step `{}` is never healed (`heal: false`)",
                name.value
            ),
            None,
        );
    }
}
