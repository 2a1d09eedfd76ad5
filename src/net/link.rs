//! Links other than veth pairs: a bridge ("switch") and 802.1Q VLANs
//! (including a VLAN on a VLAN), each owned, ledger-recorded, deleted on drop.

use std::process::Command;

use super::ip::ip_in;
use super::veth::check_ifname;
use super::{NetError, Netns, VethPair};
use crate::ledger::{EntryId, Ledger, LedgerObject};

/// A link inside a namespace, deleted with `ip link del` on drop.
#[derive(Debug)]
struct OwnedLink {
    netns: String,
    ifname: String,
    ledger: Ledger,
    entry: EntryId,
    deleted: bool,
}

impl OwnedLink {
    /// Records the link, then runs `ip -n <ns> link add <ifname> <args…>`.
    fn create(ns: &Netns, ifname: &str, args: &[&str], ledger: &Ledger) -> Result<Self, NetError> {
        check_ifname(ifname)?;
        let entry = ledger
            .record(LedgerObject::Link {
                netns: ns.name().to_string(),
                ifname: ifname.to_string(),
            })
            .map_err(|source| NetError::Ledger {
                what: format!("link {ifname}"),
                source,
            })?;
        let mut full = vec!["link", "add"];
        // `ip link add link <parent> name <n> …` wants the parent first.
        if args.first() == Some(&"link") {
            full.extend(&args[..2]);
            full.extend(["name", ifname]);
            full.extend(&args[2..]);
        } else {
            full.push(ifname);
            full.extend(args);
        }
        if let Err(e) = ip_in(ns.name(), &full) {
            let _ = ledger.done(entry);
            return Err(e);
        }
        Ok(OwnedLink {
            netns: ns.name().to_string(),
            ifname: ifname.to_string(),
            ledger: ledger.clone(),
            entry,
            deleted: false,
        })
    }

    fn remove(&mut self) -> Result<(), NetError> {
        if self.deleted {
            return Ok(());
        }
        self.deleted = true;
        delete_link(&self.netns, &self.ifname)?;
        if let Err(e) = self.ledger.done(self.entry) {
            tracing::warn!(link = %self.ifname, error = %e, "cannot mark link done in ledger");
        }
        Ok(())
    }
}

impl Drop for OwnedLink {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            tracing::error!(link = %self.ifname, netns = %self.netns, error = %e, "link left behind");
        }
    }
}

/// Deletes link `ifname` in `netns` (the one removal of a veth, bridge or
/// VLAN: their drops and `stackquake cleanup` use it). Ok(false): it was
/// already gone — with its namespace, with its veth peer, or with the
/// parent a VLAN sat on.
pub fn delete_link(netns: &str, ifname: &str) -> Result<bool, NetError> {
    if !crate::sys::ns::netns_path(netns).exists() {
        return Ok(false);
    }
    let mut cmd = Command::new("ip");
    cmd.args(["-n", netns, "link", "del", "dev", ifname]);
    Ok(crate::tools::remove(cmd, &["Cannot find device"])?)
}

/// A Linux bridge in its own "switch" namespace; hosts join it through
/// veth pairs whose switch end is a bridge port.
#[derive(Debug)]
pub struct Bridge {
    link: OwnedLink,
}

impl Bridge {
    /// Creates bridge `ifname` in `switch` and sets it up.
    pub fn create(switch: &Netns, ifname: &str, ledger: &Ledger) -> Result<Bridge, NetError> {
        let link = OwnedLink::create(switch, ifname, &["type", "bridge"], ledger)?;
        ip_in(switch.name(), &["link", "set", "dev", ifname, "up"])?;
        tracing::info!(bridge = ifname, netns = switch.name(), "created bridge");
        Ok(Bridge { link })
    }

    pub fn ifname(&self) -> &str {
        &self.link.ifname
    }

    pub fn netns(&self) -> &str {
        &self.link.netns
    }

    /// Makes `port` (a link already in the switch namespace) a bridge port, up.
    pub fn attach(&self, port: &str) -> Result<(), NetError> {
        ip_in(
            &self.link.netns,
            &[
                "link",
                "set",
                "dev",
                port,
                "master",
                &self.link.ifname,
                "up",
            ],
        )
    }

    /// Connects `host` to the switch: a veth with `host_ifname` in the host
    /// and `port_ifname` on the bridge (up; the host end is left down for
    /// the caller to address).
    pub fn connect(
        &self,
        switch: &Netns,
        host: &Netns,
        host_ifname: &str,
        port_ifname: &str,
        mtu: Option<u32>,
        ledger: &Ledger,
    ) -> Result<VethPair, NetError> {
        let veth = VethPair::create((host, host_ifname), (switch, port_ifname), mtu, ledger)?;
        self.attach(port_ifname)?;
        Ok(veth)
    }

    pub fn delete(mut self) -> Result<(), NetError> {
        self.link.remove()
    }
}

/// An 802.1Q VLAN link. Its parent may itself be a VLAN (a stacked VLAN:
/// two inline tags, 8 bytes of a 1500-byte frame — the incident in
/// scenario-format.md).
#[derive(Debug)]
pub struct Vlan {
    link: OwnedLink,
    id: u16,
}

impl Vlan {
    /// `ip link add link <parent> name <ifname> type vlan id <id>` in `ns`.
    /// The kernel needs the 8021q module (absent on the dev hosts: test in
    /// a guest).
    pub fn create(
        ns: &Netns,
        parent: &str,
        ifname: &str,
        id: u16,
        ledger: &Ledger,
    ) -> Result<Vlan, NetError> {
        let id_text = id.to_string();
        let link = OwnedLink::create(
            ns,
            ifname,
            &["link", parent, "type", "vlan", "id", &id_text],
            ledger,
        )?;
        tracing::info!(vlan = ifname, parent, id, netns = ns.name(), "created vlan");
        Ok(Vlan { link, id })
    }

    pub fn ifname(&self) -> &str {
        &self.link.ifname
    }

    pub fn id(&self) -> u16 {
        self.id
    }

    pub fn delete(mut self) -> Result<(), NetError> {
        self.link.remove()
    }
}
