//! Hosts (one network namespace each), the links between them — direct veth
//! pairs or through a bridge in a "switch" namespace — with their VLANs
//! (stacked as written), MTUs and offloads, and the run's firewalls and
//! network fault guards.

use super::{SetupError, World};
use crate::fault::{FaultError, NetGuards};
use crate::ledger::{Ledger, RunId};
use crate::net::{self, Bridge, Firewall, Netns, VethPair, Vlan};
use crate::plan::{Link, Plan, veth_ifname, vlan_ifname};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// The bridge's name inside every switch namespace.
const BRIDGE: &str = crate::plan::SWITCH_BRIDGE;

/// What the network layer of a world owns besides hosts and veth links.
#[derive(Default)]
pub(super) struct NetParts {
    /// Switch namespaces and their bridges, by switch name.
    switches: BTreeMap<String, (Netns, Bridge)>,
    /// In creation order (a VLAN after its parent).
    vlans: Vec<Vlan>,
    /// (host, peer, vlan) → interface name; vlan None is the veth end.
    ifaces: BTreeMap<(String, String, Option<u16>), String>,
    /// One firewall per host namespace that needed one, created lazily.
    /// Behind locks: a `parallel` group's faults go in from threads of
    /// their own (engine::live).
    firewalls: Mutex<BTreeMap<String, Arc<Mutex<Firewall>>>>,
    guards: Mutex<NetGuards>,
    ledger: Option<Ledger>,
}

fn net_err(host: &str) -> impl FnOnce(net::NetError) -> SetupError + '_ {
    move |source| SetupError::Net {
        host: host.to_string(),
        source,
    }
}

impl World {
    pub(super) fn build_hosts(
        &mut self,
        s: &Plan,
        run: &RunId,
        ledger: &Ledger,
        note: &mut dyn FnMut(String),
    ) -> Result<(), SetupError> {
        self.net.ledger = Some(ledger.clone());
        for name in s.hosts.keys() {
            let ns_name = Netns::name_for(run, name);
            let ns = Netns::create(&ns_name, ledger).map_err(net_err(name))?;
            ns.set_loopback_up().map_err(net_err(name))?;
            note(format!("host {name}: netns {ns_name}"));
            self.netns.insert(name.clone(), ns);
        }
        for link in &s.links {
            let Some(sw) = &link.switch else { continue };
            if self.net.switches.contains_key(sw) {
                continue;
            }
            let ns_name = Netns::name_for(run, sw);
            let ns = Netns::create(&ns_name, ledger).map_err(net_err(sw))?;
            let bridge = match Bridge::create(&ns, BRIDGE, ledger) {
                Ok(b) => b,
                Err(e) => {
                    let _ = ns.delete();
                    return Err(net_err(sw)(e));
                }
            };
            note(format!("switch {}: bridge {BRIDGE} in netns {ns_name}", sw));
            self.net.switches.insert(sw.clone(), (ns, bridge));
        }

        Ok(())
    }

    pub(super) fn build_links(
        &mut self,
        s: &Plan,
        ledger: &Ledger,
        note: &mut dyn FnMut(String),
    ) -> Result<(), SetupError> {
        for link in &s.links {
            let [a, b] = &link.between;
            // Inside each namespace the interface is named after its peer.
            let (if_a, if_b) = (veth_ifname(b), veth_ifname(a));
            match &link.switch {
                None => {
                    let pair = VethPair::create(
                        (&self.netns[a], &if_a),
                        (&self.netns[b], &if_b),
                        link.mtu,
                        ledger,
                    )
                    .map_err(net_err(a))?;
                    self.links.push(pair);
                    for (host, peer, ifname) in [(a, b, &if_a), (b, a, &if_b)] {
                        self.build_end(s, link, (host, peer, ifname), link.mtu_of(host), ledger)?;
                    }
                }
                Some(sw) => {
                    // A host joins a switch once, however many links it has
                    // through it (validation makes those links agree): one
                    // port, its VLANs and address, as on a real switch.
                    for (host, peer) in [(a, b), (b, a)] {
                        let key = (host.to_string(), sw.clone(), None);
                        if !self.net.ifaces.contains_key(&key) {
                            let ifname = veth_ifname(sw);
                            let (sw_ns, bridge) = &self.net.switches[sw];
                            let port = format!("p-{host}");
                            let pair = bridge
                                .connect(sw_ns, &self.netns[host], &ifname, &port, link.mtu, ledger)
                                .map_err(net_err(sw))?;
                            self.links.push(pair);
                            if link.offloads == Some(false) {
                                net::set_offloads(sw_ns, &port, false).map_err(net_err(sw))?;
                            }
                            self.build_end(
                                s,
                                link,
                                (host, sw, &ifname),
                                link.mtu_of(host),
                                ledger,
                            )?;
                        }
                        // Faults name the peer; they get the switch port's interfaces.
                        let via: Vec<_> = self
                            .net
                            .ifaces
                            .iter()
                            .filter(|((h, p, _), _)| h == host && p == sw)
                            .map(|((_, _, v), n)| (*v, n.clone()))
                            .collect();
                        for (vlan, name) in via {
                            self.net
                                .ifaces
                                .insert((host.to_string(), peer.to_string(), vlan), name);
                        }
                    }
                }
            }
            note(link_note(link));
        }

        Ok(())
    }

    /// One host's end of a link (`peer`: the far host, or the switch): its
    /// MTU and offloads, its VLANs stacked outermost first, the host's
    /// address on the innermost interface.
    fn build_end(
        &mut self,
        s: &Plan,
        link: &Link,
        (host, peer, ifname): (&str, &str, &str),
        mtu: Option<u32>,
        ledger: &Ledger,
    ) -> Result<(), SetupError> {
        let ns = &self.netns[host];
        if mtu != link.mtu
            && let Some(m) = mtu
        {
            net::set_mtu(ns, ifname, m).map_err(net_err(host))?;
        }
        if link.offloads == Some(false) {
            net::set_offloads(ns, ifname, false).map_err(net_err(host))?;
        }
        net::set_up(ns, ifname).map_err(net_err(host))?;
        self.net
            .ifaces
            .insert((host.into(), peer.into(), None), ifname.to_string());
        let mut top = ifname.to_string();
        for &id in &link.vlans {
            let name = vlan_ifname(peer, id);
            let vlan = Vlan::create(ns, &top, &name, id, ledger).map_err(net_err(host))?;
            self.net.vlans.push(vlan);
            if let Some(m) = link.vlan_mtu_of(host, id) {
                net::set_mtu(ns, &name, m).map_err(net_err(host))?;
            }
            net::set_up(ns, &name).map_err(net_err(host))?;
            self.net
                .ifaces
                .insert((host.into(), peer.into(), Some(id)), name.clone());
            top = name;
        }
        if let Some(addr) = &s.hosts[host].addr {
            net::add_address(ns, &top, &addr.to_string()).map_err(net_err(host))?;
        }
        Ok(())
    }

    pub(super) fn link_iface_of(
        &self,
        host: &str,
        peer: &str,
        vlan: Option<u16>,
    ) -> Option<String> {
        self.net
            .ifaces
            .get(&(host.to_string(), peer.to_string(), vlan))
            .cloned()
    }

    /// The firewall of every host a `net.block`/`net.reject` step cuts,
    /// made before the timeline: in a loaded emulated guest one `nft` run
    /// takes seconds, and a table made at the first cut held that fault
    /// back a run longer.
    pub(super) fn build_firewalls(
        &mut self,
        s: &Plan,
        note: &mut dyn FnMut(String),
    ) -> Result<(), SetupError> {
        for host in s.cut_hosts() {
            let (Some(ns), Some(ledger)) = (self.netns.get(host), self.net.ledger.as_ref()) else {
                continue; // validation names every host; the cut reports it
            };
            let fw =
                Firewall::create(ns, ledger.run(), ledger).map_err(|source| SetupError::Net {
                    host: host.to_string(),
                    source,
                })?;
            note(format!("firewall {} in {host}", fw.name()));
            let all = self.net.firewalls.get_mut().expect("firewall map lock");
            all.insert(host.to_string(), Arc::new(Mutex::new(fw)));
        }
        Ok(())
    }

    /// The firewall a cut in `host` adds its rule to (made at setup; made
    /// now for a world built without the plan's cuts, as tests build it).
    pub(super) fn firewall_of(&self, host: &str) -> Result<Arc<Mutex<Firewall>>, FaultError> {
        let unknown = || FaultError::UnknownTarget {
            fault: "net.block",
            what: "host",
            name: host.to_string(),
        };
        let mut all = self.net.firewalls.lock().expect("firewall map lock");
        if !all.contains_key(host) {
            let ns = self.netns.get(host).ok_or_else(unknown)?;
            let ledger = self.net.ledger.as_ref().ok_or_else(unknown)?;
            let fw =
                Firewall::create(ns, ledger.run(), ledger).map_err(|source| FaultError::Net {
                    fault: "net.block",
                    source,
                })?;
            all.insert(host.to_string(), Arc::new(Mutex::new(fw)));
        }
        Ok(Arc::clone(&all[host]))
    }

    pub(super) fn net_guards_of(&self) -> MutexGuard<'_, NetGuards> {
        self.net.guards.lock().expect("network guards lock")
    }

    /// Undoes leftover MTU/netem changes, deletes firewalls and VLANs
    /// (innermost first): everything that must go before the veth links.
    pub(super) fn teardown_net_before_links(&mut self, log: &mut super::TeardownLog) {
        let guards = std::mem::take(self.net.guards.get_mut().expect("network guards lock"));
        if guards.active() > 0 {
            // Their Drop restores and logs; healing normally emptied them.
            log.done(format!("undo {} network change(s)", guards.active()));
        }
        drop(guards);
        let firewalls = self.net.firewalls.get_mut().expect("firewall map lock");
        for (host, fw) in std::mem::take(firewalls) {
            // The faults that used it are healed; theirs were the only clones.
            let fw = Arc::into_inner(fw)
                .expect("no fault holds a firewall at teardown")
                .into_inner()
                .expect("firewall lock");
            let what = format!("delete firewall {} of {host}", fw.name());
            log.record(what, fw.delete());
        }
        for vlan in self.net.vlans.drain(..).rev() {
            let what = format!("delete vlan {}", vlan.ifname());
            log.record(what, vlan.delete());
        }
    }

    /// Deletes bridges and switch namespaces, after the links into them.
    pub(super) fn teardown_switches(&mut self, log: &mut super::TeardownLog) {
        for (name, (ns, bridge)) in std::mem::take(&mut self.net.switches) {
            log.record(format!("delete bridge of switch {name}"), bridge.delete());
            log.record(format!("delete netns of switch {name}"), ns.delete());
        }
    }
}

impl World {
    /// A host with links to several peers on separate interfaces (a server
    /// with two clients, each on its own veth) has its one address on each,
    /// and with it the same subnet route on each: replies to the second
    /// client would leave through the first. A /32 route to every peer
    /// through the interface that carries the link's address fixes that.
    /// Peers behind one switch share an interface and need nothing.
    pub(super) fn build_peer_routes(
        &mut self,
        s: &Plan,
        note: &mut dyn FnMut(String),
    ) -> Result<(), SetupError> {
        for name in s.hosts.keys() {
            let mut routes: Vec<(String, String)> = Vec::new();
            for link in &s.links {
                let Some(peer) = link.peer_of(name) else {
                    continue;
                };
                let innermost = link.vlans.last().copied();
                let (Some(dev), Some(peer_addr)) = (
                    self.link_iface_of(name, peer, innermost),
                    s.hosts[peer].addr,
                ) else {
                    continue;
                };
                routes.push((format!("{}/32", peer_addr.addr()), dev));
            }
            let mut devs: Vec<&str> = routes.iter().map(|(_, d)| d.as_str()).collect();
            devs.sort_unstable();
            devs.dedup();
            if devs.len() < 2 {
                continue;
            }
            for (dst, dev) in &routes {
                net::route_via(&self.netns[name], dst, dev).map_err(|source| SetupError::Net {
                    host: name.clone(),
                    source,
                })?;
                note(format!("host {name}: route {dst} via {dev}"));
            }
        }
        Ok(())
    }
}

/// The setup note for a link, in the scenario's words (`mtu 1500`, not
/// Rust's `Some(1500)`; an unset MTU is the kernel's default).
fn link_note(link: &crate::plan::Link) -> String {
    let [a, b] = &link.between;
    let mut parts = vec![match link.mtu {
        Some(m) => format!("mtu {m}"),
        None => "default mtu".to_string(),
    }];
    for (host, end) in &link.ends {
        if let Some(m) = end.mtu {
            parts.push(format!("{host}'s end mtu {m}"));
        }
    }
    if !link.vlans.is_empty() {
        let vlans: Vec<String> = link.vlans.iter().map(u16::to_string).collect();
        parts.push(format!("vlans {} outermost first", vlans.join("/")));
    }
    for (id, m) in &link.vlan_mtu {
        parts.push(format!("vlan {id} mtu {m}"));
    }
    for (host, end) in &link.ends {
        for (id, m) in &end.vlan_mtu {
            parts.push(format!("{host}'s vlan {id} mtu {m}"));
        }
    }
    if link.offloads == Some(false) {
        parts.push("offloads off".into());
    }
    let via = link
        .switch
        .as_ref()
        .map(|s| format!(" via switch {s}"))
        .unwrap_or_default();
    format!("link {a} <-> {b}{via} ({})", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::link_note;
    use crate::plan::{Link, LinkEnd};

    // Issue 13: the journal said `(mtu None)` and `mtu Some(1500)`.
    #[test]
    fn a_link_note_has_no_rust_debug_text() {
        let mut link = Link {
            between: ["server".into(), "client".into()],
            mtu: None,
            switch: None,
            vlans: Vec::new(),
            offloads: None,
            ends: Default::default(),
            vlan_mtu: Default::default(),
        };
        assert_eq!(link_note(&link), "link server <-> client (default mtu)");
        link.mtu = Some(1500);
        link.vlans = vec![20, 100];
        link.offloads = Some(false);
        link.switch = Some("sw".into());
        link.ends.insert(
            "client".into(),
            LinkEnd {
                mtu: Some(1400),
                vlan_mtu: Default::default(),
            },
        );
        assert_eq!(
            link_note(&link),
            "link server <-> client via switch sw (mtu 1500, client's end mtu 1400, \
             vlans 20/100 outermost first, offloads off)"
        );
    }
}
