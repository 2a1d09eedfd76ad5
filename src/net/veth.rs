//! `VethPair`: a veth link whose two ends live in two namespaces.

use super::ip::ip_in;
use super::{NetError, Netns};
use crate::ledger::{EntryId, Ledger, LedgerObject, RunId};

/// IFNAMSIZ is 16 including the terminating NUL.
pub const IFNAMSIZ_MAX: usize = 15;

/// Interface name for end `end` ('a' or 'b') of link number `link` of a run:
/// `sq<run>l<link><end>`, 13–14 bytes, so `ip link` anywhere shows which run
/// made it.
pub fn link_ifname(run: &RunId, link: u8, end: char) -> String {
    format!("sq{run}l{link}{end}")
}

pub(crate) fn check_ifname(name: &str) -> Result<(), NetError> {
    let ok = (1..=IFNAMSIZ_MAX).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(NetError::BadIfname {
            name: name.to_string(),
        })
    }
}

#[derive(Debug)]
pub struct VethPair {
    a: (String, String),
    b: (String, String),
    ledger: Ledger,
    entry: EntryId,
    deleted: bool,
}

impl VethPair {
    /// Creates end `a` directly inside its namespace with its peer directly
    /// inside the other, so neither end ever appears in the host namespace
    /// (no name clash there, nothing to leak there).
    pub fn create(
        a: (&Netns, &str),
        b: (&Netns, &str),
        mtu: Option<u32>,
        ledger: &Ledger,
    ) -> Result<VethPair, NetError> {
        check_ifname(a.1)?;
        check_ifname(b.1)?;
        let entry = ledger
            .record(LedgerObject::Veth {
                netns: a.0.name().to_string(),
                ifname: a.1.to_string(),
            })
            .map_err(|source| NetError::Ledger {
                what: format!("veth {}", a.1),
                source,
            })?;
        let mtu = mtu.map(|m| m.to_string());
        let mut args = vec!["link", "add", a.1];
        if let Some(m) = &mtu {
            args.extend(["mtu", m.as_str()]);
        }
        args.extend(["type", "veth", "peer", "name", b.1, "netns", b.0.name()]);
        if let Some(m) = &mtu {
            args.extend(["mtu", m.as_str()]);
        }
        if let Err(e) = ip_in(a.0.name(), &args) {
            let _ = ledger.done(entry);
            return Err(e);
        }
        tracing::info!(
            a = a.1,
            a_netns = a.0.name(),
            b = b.1,
            b_netns = b.0.name(),
            "created veth pair"
        );
        Ok(VethPair {
            a: (a.0.name().to_string(), a.1.to_string()),
            b: (b.0.name().to_string(), b.1.to_string()),
            ledger: ledger.clone(),
            entry,
            deleted: false,
        })
    }

    /// (netns name, interface name) of end a.
    pub fn a(&self) -> (&str, &str) {
        (&self.a.0, &self.a.1)
    }

    pub fn b(&self) -> (&str, &str) {
        (&self.b.0, &self.b.1)
    }

    pub fn delete(mut self) -> Result<(), NetError> {
        self.remove()
    }

    fn remove(&mut self) -> Result<(), NetError> {
        if self.deleted {
            return Ok(());
        }
        self.deleted = true;
        // Deleting one end deletes its peer.
        super::delete_link(&self.a.0, &self.a.1)?;
        if let Err(e) = self.ledger.done(self.entry) {
            tracing::warn!(veth = %self.a.1, error = %e, "cannot mark veth done in ledger");
        }
        Ok(())
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            tracing::error!(veth = %self.a.1, netns = %self.a.0, error = %e, "veth left behind");
        }
    }
}
