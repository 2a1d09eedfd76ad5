//! `Firewall`: one run's packet filter inside one namespace — an nftables
//! table, or an iptables chain where nft is missing — added to and healed
//! rule by rule, with per-rule packet counters.
//!
//! Never touches what the run did not create: no flush of a global ruleset
//! (the nfstest/Jepsen `iptables -F` habit the style guide warns about),
//! only our own table or chain, recorded in the ledger before it exists.

mod delayer;
mod expiring;
mod iptables;
mod nft;
mod rule;

use std::fs::File;
use std::process::Command;

pub use delayer::Delayer;
pub use expiring::{Element, ExpiringFirewall, parse_elements as parse_expiring_elements};
pub use iptables::remove_chain as remove_iptables_chain;
pub use nft::delete_table as delete_nft_table;
pub use rule::{Action, Match, Protocol, Rule, RuleId};

use super::{NetError, Netns};
use crate::ledger::{EntryId, Ledger, LedgerObject, RunId};
use crate::sys;

/// Which kernel interface holds the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirewallBackend {
    /// `nft -f -` with a table `inet sq_<run>`.
    Nft,
    /// `iptables-restore`/`ip6tables-restore --noflush` with a chain
    /// `sq-<run>` jumped to from INPUT, OUTPUT and FORWARD.
    Iptables,
}

impl FirewallBackend {
    /// nft when it is installed, iptables otherwise.
    pub fn detect() -> FirewallBackend {
        if crate::tools::which("nft").is_some() {
            FirewallBackend::Nft
        } else {
            FirewallBackend::Iptables
        }
    }
}

#[derive(Debug)]
struct Installed {
    id: RuleId,
    rule: Rule,
    /// iptables only: (is IPv6, rule spec) as added, needed to delete them.
    specs: Vec<(bool, String)>,
}

/// The run's filter in one namespace; dropping it deletes the table (or
/// chain) and every rule in it.
#[derive(Debug)]
pub struct Firewall {
    backend: FirewallBackend,
    netns: String,
    ns_file: File,
    /// nft table name or iptables chain name.
    name: String,
    rules: Vec<Installed>,
    next_id: u32,
    ledger: Ledger,
    entry: EntryId,
    deleted: bool,
}

impl Firewall {
    /// nft table name of a run: `sq_<run>` (nft names may not contain '-').
    pub fn table_name(run: &RunId) -> String {
        format!("sq_{run}")
    }

    /// iptables chain name of a run: `sq-<run>` (11 of 28 allowed bytes).
    pub fn chain_name(run: &RunId) -> String {
        format!("sq-{run}")
    }

    /// Creates the run's table (or chain) in `ns` with the detected backend.
    pub fn create(ns: &Netns, run: &RunId, ledger: &Ledger) -> Result<Firewall, NetError> {
        Self::create_with(ns, run, FirewallBackend::detect(), ledger)
    }

    pub fn create_with(
        ns: &Netns,
        run: &RunId,
        backend: FirewallBackend,
        ledger: &Ledger,
    ) -> Result<Firewall, NetError> {
        let (name, object) = match backend {
            FirewallBackend::Nft => {
                let name = Self::table_name(run);
                let object = LedgerObject::NftTable {
                    netns: Some(ns.name().to_string()),
                    family: nft::FAMILY.to_string(),
                    name: name.clone(),
                };
                (name, object)
            }
            FirewallBackend::Iptables => {
                let name = Self::chain_name(run);
                let object = LedgerObject::IptablesChain {
                    netns: Some(ns.name().to_string()),
                    chain: name.clone(),
                };
                (name, object)
            }
        };
        let what = object.to_string();
        let entry = ledger
            .record(object)
            .map_err(|source| NetError::Ledger { what, source })?;
        let mut fw = Firewall {
            backend,
            netns: ns.name().to_string(),
            ns_file: ns.file()?,
            name,
            rules: Vec::new(),
            next_id: 1,
            ledger: ledger.clone(),
            entry,
            deleted: false,
        };
        let created = match backend {
            FirewallBackend::Nft => nft::create_table(&fw),
            FirewallBackend::Iptables => iptables::create_chain(&fw),
        };
        if let Err(e) = created {
            // Nothing of ours exists (an existing table/chain of that name
            // makes creation fail before anything is added): never delete it.
            fw.deleted = true;
            let _ = fw.ledger.done(fw.entry);
            return Err(e);
        }
        tracing::info!(netns = %fw.netns, name = %fw.name, ?backend, "created firewall");
        Ok(fw)
    }

    pub fn backend(&self) -> FirewallBackend {
        self.backend
    }

    /// The nft table or iptables chain name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// Installs `rule` atomically (all of its kernel rules or none).
    pub fn add(&mut self, rule: &Rule) -> Result<RuleId, NetError> {
        if let Action::Delay(_) = rule.action {
            return Err(NetError::BadRule {
                rule: format!("{rule:?}"),
                why: "a run's firewall drops or rejects; delays are netem's, or a staging \
                      client's expiring firewall's"
                    .into(),
            });
        }
        let selectors = rule.selectors()?;
        let id = RuleId(self.next_id);
        self.next_id += 1;
        let specs = match self.backend {
            FirewallBackend::Nft => {
                nft::add_rules(self, id, rule.action, &selectors)?;
                Vec::new()
            }
            FirewallBackend::Iptables => iptables::add_rules(self, id, rule.action, &selectors)?,
        };
        tracing::info!(netns = %self.netns, ?id, ?rule, "firewall rule added");
        self.rules.push(Installed {
            id,
            rule: rule.clone(),
            specs,
        });
        Ok(id)
    }

    /// The rules currently installed.
    pub fn rules(&self) -> Vec<(RuleId, Rule)> {
        self.rules.iter().map(|r| (r.id, r.rule.clone())).collect()
    }

    /// Packets the rule has dropped or rejected so far (summed over
    /// directions and hooks): zero means the fault never hit anything.
    pub fn packets(&self, id: RuleId) -> Result<u64, NetError> {
        self.installed(id)?;
        match self.backend {
            FirewallBackend::Nft => nft::packets(self, id),
            FirewallBackend::Iptables => iptables::packets(self, id),
        }
    }

    /// Removes one rule (heal) and returns its final packet count.
    pub fn remove(&mut self, id: RuleId) -> Result<u64, NetError> {
        let at = self.installed(id)?;
        let packets = self.packets(id)?;
        match self.backend {
            FirewallBackend::Nft => nft::remove_rules(self, id)?,
            FirewallBackend::Iptables => iptables::remove_rules(self, &self.rules[at])?,
        }
        self.rules.remove(at);
        tracing::info!(netns = %self.netns, ?id, packets, "firewall rule removed");
        Ok(packets)
    }

    /// Deletes the table (or chain) now; drop does the same but only logs.
    pub fn delete(mut self) -> Result<(), NetError> {
        self.teardown()
    }

    fn installed(&self, id: RuleId) -> Result<usize, NetError> {
        self.rules
            .iter()
            .position(|r| r.id == id)
            .ok_or_else(|| NetError::UnknownRule {
                netns: self.netns.clone(),
                rule: id.0,
            })
    }

    fn teardown(&mut self) -> Result<(), NetError> {
        if self.deleted {
            return Ok(());
        }
        self.deleted = true;
        match self.backend {
            FirewallBackend::Nft => delete_nft_table(Some(&self.netns), nft::FAMILY, &self.name)?,
            FirewallBackend::Iptables => remove_iptables_chain(Some(&self.netns), &self.name)?,
        };
        if let Err(e) = self.ledger.done(self.entry) {
            tracing::warn!(name = %self.name, error = %e, "cannot mark firewall done in ledger");
        }
        tracing::info!(netns = %self.netns, name = %self.name, "deleted firewall");
        Ok(())
    }

    /// Runs `program args…` inside the namespace with `stdin`, returning stdout.
    fn exec(&self, program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, NetError> {
        let fd = self
            .ns_file
            .try_clone()
            .map_err(|source| NetError::OpenNetns {
                path: sys::ns::netns_path(&self.netns),
                source,
            })?;
        let mut cmd = Command::new(program);
        cmd.args(args);
        sys::ns::command_in_netns(&mut cmd, fd.into());
        let place = format!("netns {}", self.netns);
        let input = crate::tools::Input {
            stdin,
            place: Some(&place),
        };
        Ok(crate::tools::output_with(cmd, input)?)
    }
}

/// `program` set to run in netns `netns` (None: the current one), entered
/// between fork and exec, with where it runs for messages; None when that
/// namespace is gone, which took its tables and chains with it. The removals
/// use it: they know a namespace by name only.
fn command_in_named(
    netns: Option<&str>,
    program: &str,
) -> Result<Option<(Command, String)>, NetError> {
    let mut cmd = Command::new(program);
    let Some(name) = netns else {
        return Ok(Some((cmd, "the current netns".into())));
    };
    let path = sys::ns::netns_path(name);
    let file = match sys::ns::open_netns(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(NetError::OpenNetns { path, source }),
    };
    sys::ns::command_in_netns(&mut cmd, file.into());
    Ok(Some((cmd, format!("netns {name}"))))
}

impl Drop for Firewall {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            tracing::error!(netns = %self.netns, name = %self.name, error = %e, "firewall left behind");
        }
    }
}
