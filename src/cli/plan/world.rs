//! `plan`'s "would create" list: every object a run makes, named as the
//! world names it (netns, interfaces, dm volumes, nft tables), so a reader
//! can find each one in `ip`, `dmsetup` or `nft` output while it runs.

use super::super::out::out;
use crate::plan::{
    Link, Plan, SWITCH_BRIDGE, SeedContent, ServerKind, Statd, size_text, veth_ifname, vlan_ifname,
};

pub(super) fn print_world(s: &Plan) {
    out!("  would create:");
    for (name, host) in &s.hosts {
        let addr = host.addr.map(|a| format!(" ({a})")).unwrap_or_default();
        out!("    netns sq-<run>-{name}{addr}");
        if let Some(statd) = host.statd
            && !runs_knfsd(s, name)
        {
            out!("      {}", statd_text(statd));
        }
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
            None => {
                out!("    veth pair {a} <-> {b}{}", link_settings(l, None));
                print_ends(s, l, &[(a, b), (b, a)]);
            }
            Some(sw) => {
                for host in [a, b] {
                    if ports.insert((host, sw)) {
                        let port = format!("bridge port p-{host}");
                        out!(
                            "    veth pair {host} <-> switch {sw}{}",
                            link_settings(l, Some(port))
                        );
                        print_ends(s, l, &[(host, sw)]);
                    }
                }
            }
        }
    }
    for host in s.cut_hosts() {
        out!("    nft table sq_<run> in netns sq-<run>-{host} (for net.block/net.reject)");
    }
    for (name, srv) in &s.nfs_servers {
        let exports: Vec<&str> = srv.exports.iter().map(|e| e.path.as_str()).collect();
        let what = match srv.kind {
            ServerKind::Knfsd => {
                let statd = if s.hosts[&srv.host].statd == Some(Statd::None) {
                    "no rpc.statd"
                } else {
                    "rpc.statd beside it"
                };
                format!("knfsd server {name} ({statd})")
            }
            _ => format!("nfs server {name} (in-process, with portmapper, NLM and NSM)"),
        };
        out!(
            "    {what} on {} exporting {}",
            srv.host,
            exports.join(", ")
        );
        for e in &srv.exports {
            for f in &e.files {
                let content = match &f.content {
                    SeedContent::Zeros(n) => format!("{} of zeros", size_text(*n)),
                    SeedContent::Text(t) => format!("{} bytes of text", t.len()),
                };
                out!(
                    "    file {}/{} ({content}), before any mount",
                    e.path,
                    f.path
                );
            }
        }
    }
    for m in &s.mounts {
        // The engine adds vers=3 when no version is given.
        let options = m
            .options
            .as_deref()
            .map_or("no options: vers=3".to_string(), |o| format!("-o {o}"));
        out!(
            "    nfs mount {} at {} on {} ({options})",
            m.id,
            m.at,
            m.host
        );
    }
    for i in &s.images {
        let dm = if i.dm {
            format!(", dm volume sq-<run>-{} (linear) on it", i.id)
        } else {
            String::new()
        };
        out!(
            "    image {} ({} xfs) on a loop device{dm}, mounted at {}",
            i.id,
            size_text(i.size),
            i.at
        );
    }
    for w in &s.workloads {
        let start = w
            .start
            .as_ref()
            .map_or("with the timeline".to_string(), |s| {
                format!("when step {s} begins")
            });
        let stop = w
            .stop
            .as_ref()
            .map_or("at the end of the run".to_string(), |s| {
                format!("when step {s} ends")
            });
        out!(
            "    workload {} ({}) on {}: starts {start}, stops {stop}",
            w.id,
            w.op.name(),
            w.host
        );
    }
}

/// What a host's `statd:` starts (docs/scenarios.md, "Locking").
fn statd_text(statd: Statd) -> &'static str {
    match statd {
        Statd::System => "statd system: rpcbind and rpc.statd on 127.0.0.1:111",
        Statd::Stackquake => "statd stackquake: stackquake's portmapper and NSM on 127.0.0.1:111",
        Statd::None => "statd none: rpcbind on 127.0.0.1:111, no rpc.statd",
    }
}

/// A knfsd host's statd runs with knfsd (its server line says so).
fn runs_knfsd(s: &Plan, host: &str) -> bool {
    s.nfs_servers
        .values()
        .any(|srv| srv.host == host && srv.kind == ServerKind::Knfsd)
}

fn link_settings(l: &Link, first: Option<String>) -> String {
    let mut parts: Vec<String> = first.into_iter().collect();
    if let Some(m) = l.mtu {
        parts.push(format!("mtu {m}"));
    }
    if l.offloads == Some(false) {
        parts.push("offloads off".to_string());
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

/// Each end's interfaces inside its host: the veth end, then the VLANs
/// stacked on it, outermost first; the address goes on the last.
fn print_ends(s: &Plan, l: &Link, ends: &[(&str, &str)]) {
    for &(host, peer) in ends {
        let mut chain = vec![veth_ifname(peer)];
        chain.extend(l.vlans.iter().map(|&id| vlan_ifname(peer, id)));
        let shown: Vec<String> = chain
            .iter()
            .zip(std::iter::once(None).chain(l.vlans.iter().map(|&id| l.vlan_mtu_of(host, id))))
            .map(|(name, mtu)| match mtu {
                Some(m) => format!("{name} (mtu {m})"),
                None => name.clone(),
            })
            .collect();
        // The link's MTU is on its line; an end of its own says so here.
        let mtu = l
            .ends
            .get(host)
            .and_then(|e| e.mtu)
            .map(|m| format!(", mtu {m}"))
            .unwrap_or_default();
        let addr = s.hosts[host]
            .addr
            .map(|a| format!(", {a} on {}", chain.last().expect("the veth end")))
            .unwrap_or_default();
        out!("      in {host}: {}{mtu}{addr}", shown.join(" > "));
    }
}
