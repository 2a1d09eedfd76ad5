//! A scenario with an `external` server is a staging rehearsal: the server
//! is someone's real machine, reached at its host's `addr`, and nothing is
//! started or changed there. So only client-side faults are allowed, the
//! remote host never gets a namespace, a link, a workload or a command, and
//! every cut says how long it lasts (that becomes the kernel's timeout of
//! its firewall element; see `net::ExpiringFirewall`).

use super::super::model::{Ref, Scenario};
use super::super::steps::{Fault, Step};
use super::Checker;
use crate::plan::{ServerKind, Target};
use std::collections::BTreeSet;

/// What a rehearsal may do, for hints.
const CLIENT_SIDE: &str = "on an external server use client-side faults: net.block or \
    net.reject from the client `toward` the server's host (optionally protocol and port; \
    `percent` for a lossy path, `min_size` for one that drops what exceeds its MTU), \
    or an `exec` step running your own failover command";

/// The hosts of `external` servers: remote machines, not namespaces.
pub(in crate::scenario) fn remote_hosts(s: &Scenario) -> BTreeSet<&str> {
    s.nfs_servers
        .values()
        .filter(|srv| {
            srv.kind
                .as_ref()
                .is_some_and(|k| k.value == ServerKind::External)
        })
        .map(|srv| srv.host.value.as_str())
        .collect()
}

pub(super) fn check(c: &mut Checker, s: &Scenario) {
    let remotes = remote_hosts(s);
    if remotes.is_empty() {
        return;
    }
    for (name, srv) in &s.nfs_servers {
        let Some(kind) = &srv.kind else { continue };
        if kind.value != ServerKind::External {
            if remotes.contains(srv.host.value.as_str()) {
                c.at(
                    srv.host.referenced,
                    format!("nfs_servers.{name}.host"),
                    format!(
                        "`{}` is a remote staging host; nothing is started there",
                        srv.host.value
                    ),
                    Some("a rehearsal's servers are all `kind: external`".into()),
                );
            }
            continue;
        }
        if s.hosts
            .get(&srv.host.value)
            .is_some_and(|h| h.addr.is_none())
        {
            c.at(
                kind.referenced,
                format!("nfs_servers.{name}.host"),
                format!(
                    "host `{}` of external server `{name}` has no `addr`: the rehearsal reaches the server there",
                    srv.host.value
                ),
                Some("give the remote host the server's address, e.g. addr: 192.0.2.10/24".into()),
            );
        }
        if s.requires.target != [Target::Staging] {
            c.at(
                kind.referenced,
                format!("nfs_servers.{name}.kind"),
                "an external server is only reached from `target: staging`".into(),
                Some("add `requires: { target: [staging] }`".into()),
            );
        }
    }
    // The client is the machine stackquake runs on, not a namespace of
    // ours: there is exactly one, and the run starts no daemon on it.
    let local: Vec<&str> = s
        .hosts
        .keys()
        .map(String::as_str)
        .filter(|h| !remotes.contains(h))
        .collect();
    if local.len() != 1 {
        c.at(
            s.id.referenced,
            "hosts".into(),
            format!(
                "a rehearsal runs on one client, the machine stackquake runs on; the hosts \
                 besides the external servers' are [{}]",
                local.join(", ")
            ),
            Some("name exactly one client host, e.g. `client: {}`".into()),
        );
    }
    for name in &local {
        if let Some(statd) = &s.hosts[*name].statd {
            c.at(
                statd.referenced,
                format!("hosts.{name}.statd"),
                "a rehearsal starts no status monitor on the client: the client's own statd \
                 is the one the failover meets"
                    .into(),
                Some("drop `statd:`; mount with `nolock` or rely on the client's own statd".into()),
            );
        }
    }
    let remote = |r: &Ref| remotes.contains(r.value.as_str());
    let not_here = |c: &mut Checker, r: &Ref, path: String, what: &str| {
        if remote(r) {
            c.at(
                r.referenced,
                path,
                format!(
                    "`{}` is the remote staging server; {what} runs on the client",
                    r.value
                ),
                Some("name the client host, the machine stackquake runs on".into()),
            );
        }
    };
    for (i, l) in s.links.iter().enumerate() {
        for (j, end) in l.between.iter().enumerate() {
            if remote(end) {
                c.at(
                    end.referenced,
                    format!("links[{i}].between[{j}]"),
                    format!(
                        "`{}` is a remote staging host: a rehearsal builds no links",
                        end.value
                    ),
                    Some(
                        "the client reaches the server over its real network; drop the link".into(),
                    ),
                );
            }
        }
    }
    for (i, m) in s.mounts.iter().enumerate() {
        not_here(c, &m.host, format!("mounts[{i}].host"), "a mount");
    }
    for (i, img) in s.images.iter().enumerate() {
        not_here(c, &img.host, format!("images[{i}].host"), "an image");
    }
    for (i, w) in s.workloads.iter().enumerate() {
        not_here(c, &w.host, format!("workloads[{i}].host"), "a workload");
    }
    for (i, p) in s.abort.iter().enumerate() {
        if let Some(exec) = &p.exec {
            not_here(c, &exec.host, format!("abort[{i}].exec.host"), "a probe");
        }
    }
    let mut steps: Vec<(String, &Step)> = Vec::new();
    collect(&s.steps, "steps", &mut steps);
    for (path, st) in steps {
        if let Some(exec) = &st.exec {
            not_here(c, &exec.host, format!("{path}.exec.host"), "an exec step");
        }
        let Some(fault) = &st.fault else { continue };
        let kind = fault.value.kind();
        let path = format!("{path}.fault.{kind}");
        match &fault.value {
            Fault::NetBlock(cut) | Fault::NetReject(cut) => {
                if let Some(between) = &cut.between {
                    c.at(
                        between[0].referenced,
                        format!("{path}.between"),
                        "a rehearsal cuts the client's own traffic, not traffic between two hosts"
                            .into(),
                        Some("write { host: client, toward: <server host> }".into()),
                    );
                }
                if let Some(h) = &cut.host {
                    not_here(c, h, format!("{path}.host"), "a cut");
                }
                needs_for(c, st, fault, &path, RULE_EXPIRES);
            }
            Fault::ProcKill { host, .. } => {
                // The client's own daemon: its watchdog brings it back
                // after `for:` even if the run dies, so `for:` is a must.
                not_here(c, host, format!("{path}.host"), "proc.kill");
                needs_for(
                    c,
                    st,
                    fault,
                    &path,
                    "the client's own daemon is started again after it, even if stackquake \
                     is killed",
                );
            }
            Fault::NetDelay(d) if d.toward.is_some() => {
                // Packets wait in a queue of the run's table, whose element
                // expires after `for:`; a dead run's queue is bypassed.
                not_here(c, &d.host, format!("{path}.host"), "a delay");
                needs_for(c, st, fault, &path, RULE_EXPIRES);
            }
            Fault::NetMtu(_) | Fault::NetLoss(_) | Fault::NetDelay(_) => {
                // netem and MTUs change an interface of the client's own,
                // which no kernel timer puts back: a killed run would leave
                // the client's every connection degraded.
                let instead = match &fault.value {
                    Fault::NetMtu(m) => format!(
                        "a path that drops what exceeds an MTU is net.block {{ host: client, \
                         toward: <server host>, min_size: {} }} with `for:`",
                        m.mtu.value + 1
                    ),
                    Fault::NetLoss(l) => format!(
                        "a lossy path toward the server is net.block {{ host: client, \
                         toward: <server host>, percent: {} }} with `for:`",
                        l.percent.value
                    ),
                    _ => "a delay toward the server is net.delay { host: client, toward: \
                          <server host>, delay: … } with `for:` (no `peer`)"
                        .into(),
                };
                c.at(
                    fault.referenced,
                    path,
                    format!(
                        "`{kind}` changes the client's interface, and a staging client's \
                         interface is not the run's to change: nothing would put it back \
                         if stackquake were killed"
                    ),
                    Some(instead),
                );
            }
            other => {
                let on_remote = server_of(other).is_some_and(|srv| {
                    s.nfs_servers
                        .get(&srv.value)
                        .is_some_and(|d| remote(&d.host))
                });
                // Everything but cuts and exec needs the server
                // to be ours, or a namespace, a link or an image of the run.
                let why = if on_remote {
                    format!(
                        "`{kind}` acts inside the NFS server, and an external server is someone's real machine: stackquake starts and changes nothing there"
                    )
                } else {
                    format!("`{kind}` is not a client-side fault a staging rehearsal can make")
                };
                c.at(fault.referenced, path, why, Some(CLIENT_SIDE.into()));
            }
        }
    }
}

/// Why a rule of the run's table needs `for:`.
const RULE_EXPIRES: &str = "the duration becomes the kernel's timeout of the rule, so it ends even if stackquake is killed";

/// A staging fault must say how long it lasts: that is how it ends when
/// nobody is left to heal it (`what_then`).
fn needs_for(
    c: &mut Checker,
    st: &Step,
    fault: &serde_saphyr::Spanned<Fault>,
    path: &str,
    what_then: &str,
) {
    if st.for_.is_none() {
        c.at(
            fault.referenced,
            path.to_string(),
            format!("`{}` on staging needs `for:`", fault.value.kind()),
            Some(format!("{what_then}; e.g. for: 30s")),
        );
    }
}

/// The server a server-side fault names.
fn server_of(f: &Fault) -> Option<&Ref> {
    match f {
        Fault::NfsUnexport { server, .. }
        | Fault::NfsDelay { server, .. }
        | Fault::NfsStall { server, .. }
        | Fault::NfsDrop { server, .. }
        | Fault::NfsClose { server, .. }
        | Fault::NfsError { server, .. }
        | Fault::NfsRestart { server, .. }
        | Fault::NfsExpireLease { server, .. }
        | Fault::NfsSequenceFlags { server, .. }
        | Fault::NlmDown { server, .. }
        | Fault::NsmDown { server, .. }
        | Fault::NlmGrace { server } => Some(server),
        _ => None,
    }
}

/// Every step with its path, group members after their group.
fn collect<'s>(steps: &'s [Step], prefix: &str, out: &mut Vec<(String, &'s Step)>) {
    for (i, st) in steps.iter().enumerate() {
        let path = format!("{prefix}[{i}]");
        if let Some(children) = &st.parallel {
            collect(children, &format!("{path}.parallel"), out);
        }
        out.push((path, st));
    }
}
