//! Abort probes: each does exactly one thing, names what exists, and has a
//! bound it can be held to.

use super::Checker;
use crate::scenario::model::*;
use std::time::Duration as StdDuration;

/// Below this a probe would run its command or read back to back, and its
/// own load would be part of what it measures.
pub(super) const EVERY_MIN: StdDuration = StdDuration::from_millis(100);

pub(super) fn check(c: &mut Checker, s: &Scenario) {
    c.unique(
        s.abort
            .iter()
            .enumerate()
            .map(|(i, p)| (&p.id, format!("abort[{i}].id"))),
    );
    let hosts: Vec<&str> = s.hosts.keys().map(String::as_str).collect();
    let workloads: Vec<&str> = s.workloads.iter().map(|w| w.id.value.as_str()).collect();
    for (i, p) in s.abort.iter().enumerate() {
        let path = format!("abort[{i}]");
        let kinds = [p.exec.is_some(), p.readable.is_some(), p.workload.is_some()];
        if kinds.iter().filter(|k| **k).count() != 1 {
            c.at(
                p.id.referenced,
                path.clone(),
                "an abort probe has exactly one of `exec`, `readable` or `workload`".into(),
                Some(
                    "e.g. { id: app, exec: { host: client, command: [curl, -fs, http://app/] }, \
                     within: 5s }"
                        .into(),
                ),
            );
        }
        if let Some(exec) = &p.exec {
            c.exec(exec, &path, &hosts);
            if let Some(ready) = &exec.ready {
                c.at(
                    ready.referenced,
                    format!("{path}.exec.ready"),
                    "a probe's command is judged by its exit code; `ready` belongs to a step's"
                        .into(),
                    None,
                );
            }
        }
        if let Some(file) = &p.readable {
            c.absolute(file, format!("{path}.readable"));
        }
        if let Some(w) = &p.workload {
            c.reference(w, format!("{path}.workload"), "workload", workloads.clone());
            if let Some(every) = &p.every {
                c.at(
                    every.referenced,
                    format!("{path}.every"),
                    "a workload probe watches every op as it runs; it has no `every`".into(),
                    Some("leave `every` out; `within` bounds each op".into()),
                );
            }
        }
        if let Some(every) = &p.every
            && every.value.0 < EVERY_MIN
        {
            c.at(
                every.referenced,
                format!("{path}.every"),
                format!("`every: {}` is shorter than 100ms", every.value),
                Some("a probe that runs back to back loads what it measures; write e.g. 1s".into()),
            );
        }
        if p.within.value.0.is_zero() {
            c.at(
                p.within.referenced,
                format!("{path}.within"),
                "`within` must be longer than zero".into(),
                Some("the longest a probe (or an op) may take, e.g. 5s".into()),
            );
        }
    }
}
