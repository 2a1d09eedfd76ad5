//! `plan --target staging`: everything a rehearsal would change on the
//! client it runs on — firewall table and elements, mounts, processes,
//! kernel settings — each with when it goes away, and which remote
//! addresses `--allow-external` must name.

use super::super::out::out;
use super::fmt;
use crate::engine::Timeline;
use crate::net::ExpiringFirewall;
use crate::plan::{Action, Fault, Plan, ProbeCheck};
use std::net::IpAddr;

/// Prints the rehearsal's changes; false if a remote address it touches is
/// not in `allowed` (nothing may run then).
pub(super) fn print_staging(s: &Plan, allowed: &[IpAddr]) -> bool {
    let t = Timeline::resolve(s);
    let at = |i: usize| {
        t.steps[i]
            .begin
            .map_or("?".to_string(), |d| format!("+{}", fmt(d)))
    };
    let index = |id: &str| s.steps.iter().position(|st| st.id == id).unwrap_or(0);
    out!("  remote addresses (each must be in --allow-external):");
    let unallowed = s.unallowed(allowed);
    for a in s.remote_addresses() {
        let mark = if unallowed.contains(&a) {
            "NOT ALLOWED"
        } else {
            "allowed"
        };
        out!("    {a} ({mark})");
    }
    out!("  would change on this client (the namespace stackquake runs in):");
    out!(
        "    nft table inet sq_<run>_ttl: sets of timed elements, input and output chains whose rules match only those sets; deleted at teardown; inert once its elements expire"
    );
    for c in s.cuts() {
        let (set, elem) = ExpiringFirewall::element_of(&c.rule)
            .expect("validation allows only cuts toward one remote");
        out!(
            "      element {{ {elem} timeout {} }} in set {set}: added by step {} at {}, expires by itself {} later (healed then, or at once on abort)",
            fmt(c.ttl),
            c.step.id,
            at(index(&c.step.id)),
            fmt(c.ttl)
        );
    }
    if s.cuts()
        .iter()
        .any(|c| matches!(c.rule.action, crate::net::Action::Delay(_)))
    {
        out!(
            "      a thread of stackquake holds what a delay set queues (NFQUEUE, `bypass`): if stackquake dies, those packets pass undelayed"
        );
    }
    for m in &s.mounts {
        let srv = &s.nfs_servers[&m.server];
        let addr = s.hosts[&srv.host]
            .addr
            .map_or("?".to_string(), |a| a.addr().to_string());
        out!(
            "    mount {addr}:{} at <run root>{} (-o {}): unmounted at teardown (forced, then lazy, if the server hangs)",
            m.export,
            m.at,
            m.options.as_deref().unwrap_or("defaults")
        );
    }
    for img in &s.images {
        out!(
            "    image {}: file <run root>{} ({}, mkfs.{}) on a loop device, mounted at <run root>{}: unmounted and detached at teardown, the file removed with the run root",
            img.id,
            img.file,
            crate::plan::size_text(img.size),
            match img.mkfs {
                crate::plan::Mkfs::Xfs => "xfs",
            },
            img.at
        );
    }
    for w in &s.workloads {
        out!(
            "    process: workload {} ({}): killed at teardown, and with stackquake (it dies with its parent)",
            w.id,
            w.op.name()
        );
    }
    for (i, st) in s.steps.iter().enumerate() {
        if let Action::Fault {
            fault: Fault::ProcKill { daemon, .. },
            heal_after,
            ..
        } = &st.action
        {
            let lasts = heal_after.unwrap_or_default();
            out!(
                "    the client's own {} (the one in this network namespace): killed by step {} at {}, started again with its own command line {} later; if stackquake dies, a watchdog left in its namespaces starts it {} after that (refused if systemd manages it)",
                daemon.program(),
                st.id,
                at(i),
                fmt(lasts),
                fmt(crate::process::own_daemon::WATCHDOG_MARGIN)
            );
        }
        if let Action::Exec { command, .. } = &st.action {
            let limit = st.timeout.map_or("the scenario timeout".to_string(), |d| {
                format!("{} (step timeout)", fmt(d))
            });
            out!(
                "    process: exec {} at {}: {}; killed after {limit}",
                st.id,
                at(i),
                command.join(" ")
            );
        }
    }
    for p in &s.abort {
        if let ProbeCheck::Command { command, .. } = &p.check {
            out!(
                "    process: abort probe {} every {}: {}; killed after {}",
                p.id,
                fmt(p.every),
                command.join(" "),
                fmt(p.within)
            );
        }
        if let ProbeCheck::Readable { path } = &p.check {
            out!(
                "    process: abort probe {} every {}: reads the first 64 KiB of <run root>{path}; killed after {}",
                p.id,
                fmt(p.every),
                fmt(p.within)
            );
        }
    }
    if !s.abort.is_empty() {
        out!(
            "    on abort (a probe fails): every cut's element deleted at once, then the teardown above"
        );
    }
    match s.nlm_timeout {
        Some(d) => out!(
            "    kernel setting fs.nfs.nlm_timeout = {}: put back at teardown",
            d.as_secs()
        ),
        None => out!("    kernel settings: none"),
    }
    out!("  on the server: nothing (kind: external)");
    if !unallowed.is_empty() {
        out!("  {}", refusal(&unallowed));
    }
    unallowed.is_empty()
}

/// Why a rehearsal may not run: the remote addresses `--allow-external`
/// did not name. `plan` and `run` say it alike.
pub(in crate::cli) fn refusal(unallowed: &[IpAddr]) -> String {
    let list: Vec<String> = unallowed.iter().map(IpAddr::to_string).collect();
    format!(
        "refused: {} not named by --allow-external; a rehearsal touches no address the operator did not name",
        list.join(", ")
    )
}

/// Why a scenario is not shown (`plan`) or run (`run`) on the target asked
/// for: a rehearsal only on staging, and staging only for rehearsals.
pub(in crate::cli) fn mismatch(is_rehearsal: bool, staging: bool) -> Option<&'static str> {
    match (is_rehearsal, staging) {
        (false, true) => Some("has no `kind: external` server, so it is no staging rehearsal"),
        (true, false) => {
            Some("is a staging rehearsal (an `external` server): show it with --target staging")
        }
        _ => None,
    }
}
