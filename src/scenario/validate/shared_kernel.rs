//! Worlds whose outcome would depend on per-host kernel state, refused:
//! every host of a run is a network namespace on one kernel, so the hosts
//! share one lockd (one list of blocked NLM locks), one page cache and one
//! kernel log (docs/scenarios.md, "What hosts share").

use super::Checker;
use super::setup::takes_nlm_locks;
use crate::scenario::model::*;
use std::path::Path;

/// Lock workloads on two hosts that wait for the same NLM lock. The
/// kernel's lockd keeps one blocked-lock list for every namespace and
/// matches a GRANTED callback on server address, svid, file handle and
/// range (fs/lockd/clntlock.c nlmclnt_grant); each host's lockd numbers
/// its lock owners from the same start, so one callback wakes a waiter on
/// each host and both hold the lock (issue 13). A mutual-exclusion check
/// between such hosts passes or fails for a reason real machines lack.
pub(super) fn check(c: &mut Checker, s: &Scenario) {
    // (server, export) → the first flock workload locking through it.
    let mut first: Vec<(&str, &str, &Workload)> = Vec::new();
    for (i, w) in s.workloads.iter().enumerate() {
        if w.op.value != WorkloadOp::Flock {
            continue;
        }
        let Some(m) = nlm_mount_of(s, w) else {
            continue;
        };
        let key = (m.server.value.as_str(), m.export.value.as_str());
        match first.iter().find(|(srv, exp, _)| (*srv, *exp) == key) {
            Some((_, _, other)) if other.host.value != w.host.value => c.at(
                w.host.referenced,
                format!("workloads[{i}].host"),
                format!(
                    "flock workloads `{}` (host `{}`) and `{}` (host `{}`) both lock over NLM \
                     through export {} of `{}`, but hosts share the guest's kernel and its \
                     lockd: one GRANTED callback wakes a waiter on each host, so both get \
                     the lock",
                    other.id.value, other.host.value, w.id.value, w.host.value, key.1, key.0
                ),
                Some(
                    "contend from one host (its processes get distinct lock owners), or \
                     hold the lock on the other host with an `exec` step, as \
                     scenarios/client-crash-lock-freed-by-notify.yaml does"
                        .into(),
                ),
            ),
            Some(_) => {}
            None => first.push((key.0, key.1, w)),
        }
    }
}

/// The NFS mount of `w`'s host under which its path lies, if that mount
/// locks over NLM.
fn nlm_mount_of<'s>(s: &'s Scenario, w: &Workload) -> Option<&'s NfsMount> {
    let path = Path::new(&w.path.as_ref()?.value);
    s.mounts
        .iter()
        .filter(|m| m.host.value == w.host.value && path.starts_with(&m.at.value))
        .max_by_key(|m| m.at.value.len())
        .filter(|m| takes_nlm_locks(m.options.as_ref().map(|o| o.value.as_str())))
}

#[cfg(test)]
mod tests {
    /// Two flock workloads on web1 and `second` (a host), mounts with `opts`.
    fn scenario(second: &str, opts: &str) -> String {
        format!(
            "schema_version: 1\nid: t\ntitle: t
hosts:
  server: {{ addr: 10.77.0.1/24 }}
  web1: {{ addr: 10.77.0.2/24, statd: stackquake }}
  web2: {{ addr: 10.77.0.3/24, statd: stackquake }}
links:
  - {{ between: [server, web1] }}
  - {{ between: [server, web2] }}
nfs_servers:
  fs1: {{ host: server, exports: [{{ path: /export, clients: 10.77.0.0/24 }}] }}
mounts:
  - {{ id: m1, host: web1, server: fs1, export: /export, at: /mnt/a, options: '{opts}' }}
  - {{ id: m2, host: web2, server: fs1, export: /export, at: /mnt/a, options: '{opts}' }}
workloads:
  - {{ id: one, host: web1, op: flock, lock: ex, path: /mnt/a/f, every: 300ms }}
  - {{ id: two, host: {second}, op: flock, lock: ex, path: /mnt/a/f, every: 300ms }}
steps:
  - {{ id: s, wait: 1s }}
"
        )
    }

    fn problems(text: &str) -> String {
        match crate::scenario::load_str(text, "t.yaml") {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn waiters_for_one_nlm_lock_on_two_hosts_are_refused_on_one_host_not() {
        let two_hosts = problems(&scenario("web2", "vers=3"));
        assert!(
            two_hosts.contains("workloads[1].host: flock workloads `one` (host `web1`) and `two`"),
            "{two_hosts}"
        );
        assert_eq!(problems(&scenario("web1", "vers=3")), "");
        // Without NLM (local locks, or NFSv4's own) the hosts share no lockd list.
        assert_eq!(problems(&scenario("web2", "vers=3,nolock")), "");
        assert_eq!(problems(&scenario("web2", "vers=4.1")), "");
    }
}
