//! Hosts (one network namespace each) and the veth links between them.

use super::{SetupError, World};
use crate::ledger::{Ledger, RunId};
use crate::net::{self, Netns, VethPair};
use crate::scenario::Scenario;

impl World {
    pub(super) fn build_hosts(
        &mut self,
        s: &Scenario,
        run: &RunId,
        ledger: &Ledger,
        note: &mut dyn FnMut(String),
    ) -> Result<(), SetupError> {
        for name in s.hosts.keys() {
            let ns_name = Netns::name_for(run, name);
            let ns = Netns::create(&ns_name, ledger).map_err(|source| SetupError::Net {
                host: name.clone(),
                source,
            })?;
            ns.set_loopback_up().map_err(|source| SetupError::Net {
                host: name.clone(),
                source,
            })?;
            note(format!("host {name}: netns {ns_name}"));
            self.netns.insert(name.clone(), ns);
        }

        Ok(())
    }

    pub(super) fn build_links(
        &mut self,
        s: &Scenario,
        ledger: &Ledger,
        note: &mut dyn FnMut(String),
    ) -> Result<(), SetupError> {
        for link in &s.links {
            let [a, b] = [&link.between[0].value, &link.between[1].value];
            // Inside each namespace the interface is named after its peer.
            let (if_a, if_b) = (format!("to-{b}"), format!("to-{a}"));
            let pair = VethPair::create(
                (&self.netns[a], &if_a),
                (&self.netns[b], &if_b),
                link.mtu,
                ledger,
            )
            .map_err(|source| SetupError::Net {
                host: a.clone(),
                source,
            })?;
            self.links.push(pair);
            for (host, ifname) in [(a, &if_a), (b, &if_b)] {
                let ns = &self.netns[host];
                let net_err = |source| SetupError::Net {
                    host: host.clone(),
                    source,
                };
                if let Some(addr) = &s.hosts[host].addr {
                    net::add_address(ns, ifname, &addr.value).map_err(net_err)?;
                }
                net::set_up(ns, ifname).map_err(|source| SetupError::Net {
                    host: host.clone(),
                    source,
                })?;
            }
            note(format!("link {a} <-> {b} (mtu {:?})", link.mtu));
        }

        Ok(())
    }
}
