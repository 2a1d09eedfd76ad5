//! Checks of the locking faults (`nlm.down`, `nsm.down`, `nlm.grace`,
//! `host.crash`, `proc.kill`) against the world they act on: which server
//! kinds have a lock manager stackquake can stall, which hosts run which
//! status monitor.

use super::Checker;
use crate::scenario::model::*;

pub(super) fn check(c: &mut Checker, s: &Scenario, fault: &Fault, path: &str) {
    match fault {
        Fault::NlmDown { server, .. }
        | Fault::NsmDown { server, .. }
        | Fault::NlmGrace { server } => {
            if c.reference(
                server,
                format!("{path}.server"),
                "nfs server",
                s.nfs_servers.keys().map(String::as_str),
            ) && let Some(kind) = &s.nfs_servers[&server.value].kind
                && kind.value != ServerKind::Inproc
            {
                // knfsd's lockd is a kernel thread: nothing to stall from
                // user space. Its port is pinned (nfs::knfsd::NLM_PORT), so
                // a firewall rule toward it is the equivalent.
                c.at(
                    server.referenced,
                    format!("{path}.server"),
                    format!(
                        "`{}` acts on the in-process server's lock manager; `{}` is kind {}",
                        fault.kind(),
                        server.value,
                        kind.value.name()
                    ),
                    Some(format!(
                        "cut knfsd's lockd off with net.block toward its host, \
                         protocol: tcp, port: {}",
                        crate::nfs::knfsd::NLM_PORT
                    )),
                );
            }
        }
        Fault::HostCrash { host } => check_crash(c, s, host, path),
        Fault::ProcKill { host, daemon } => check_kill(c, s, host, *daemon, path),
        _ => {}
    }
}

/// `host.crash` reboots through stackquake's statd, which sends SM_NOTIFY.
fn check_crash(c: &mut Checker, s: &Scenario, host: &Ref, path: &str) {
    let hosts = s.hosts.keys().map(String::as_str);
    if c.reference(host, format!("{path}.host"), "host", hosts)
        && s.hosts[&host.value].statd.as_ref().map(|k| k.value) != Some(Statd::Stackquake)
    {
        c.at(
            host.referenced,
            format!("{path}.host"),
            format!(
                "`host.crash` reboots `{}` through stackquake's statd",
                host.value
            ),
            Some(format!("give it hosts.{}.statd: stackquake", host.value)),
        );
    }
}

/// `proc.kill` needs a daemon the host really runs, and not one that a
/// knfsd server owns. A staging rehearsal's client runs its own, which
/// validate cannot see (scenario/validate/staging.rs has its rules).
fn check_kill(c: &mut Checker, s: &Scenario, host: &Ref, daemon: Daemon, path: &str) {
    let hosts = s.hosts.keys().map(String::as_str);
    if !c.reference(host, format!("{path}.host"), "host", hosts) {
        return;
    }
    if !super::staging::remote_hosts(s).is_empty() {
        return;
    }
    let statd = s.hosts[&host.value].statd.as_ref().map(|k| k.value);
    let knfsd_host = s.nfs_servers.values().any(|srv| {
        srv.host.value == host.value
            && srv
                .kind
                .as_ref()
                .is_some_and(|k| k.value == ServerKind::Knfsd)
    });
    match (statd, daemon) {
        _ if knfsd_host => c.at(
            host.referenced,
            format!("{path}.host"),
            format!(
                "host `{}` runs a knfsd server, whose statd and rpcbind \
                             belong to it",
                host.value
            ),
            Some("kill a client host's statd".into()),
        ),
        (None, _) => c.at(
            host.referenced,
            format!("{path}.host"),
            format!("host `{}` runs no statd to kill", host.value),
            Some(format!(
                "give it one: hosts.{}.statd: system|stackquake|none",
                host.value
            )),
        ),
        (Some(Statd::Stackquake), Daemon::Rpcbind) => c.at(
            host.referenced,
            format!("{path}.daemon"),
            format!(
                "host `{}` has statd: stackquake, whose portmapper and statd \
                             are one; only statd: system|none run the system's rpcbind",
                host.value
            ),
            Some("kill `statd` instead".into()),
        ),
        (Some(Statd::None), Daemon::Statd) => c.at(
            host.referenced,
            format!("{path}.daemon"),
            format!("host `{}` has statd: none: no statd to kill", host.value),
            Some("kill `rpcbind`, or give it statd: system".into()),
        ),
        _ => {}
    }
}
