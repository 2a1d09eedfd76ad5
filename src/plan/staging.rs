//! What a staging rehearsal reaches and cuts: the remote addresses it
//! touches (each must be named by `--allow-external`) and its cuts with
//! their time to live, read off a validated plan.

use super::{Action, Fault, Plan, ServerKind, Step};
use crate::net::Rule;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

impl Plan {
    /// A plan with an `external` server is a staging rehearsal.
    pub fn is_rehearsal(&self) -> bool {
        self.nfs_servers
            .values()
            .any(|s| s.kind == ServerKind::External)
    }

    /// The hosts of external servers: remote machines, not namespaces.
    pub fn remote_hosts(&self) -> BTreeSet<&str> {
        self.nfs_servers
            .values()
            .filter(|s| s.kind == ServerKind::External)
            .map(|s| s.host.as_str())
            .collect()
    }

    /// Every remote address the rehearsal touches: its servers' and every
    /// address a cut names.
    pub fn remote_addresses(&self) -> BTreeSet<IpAddr> {
        let servers = self
            .remote_hosts()
            .into_iter()
            .filter_map(|h| self.hosts[h].addr.map(|a| a.addr()));
        let cuts = self
            .cuts()
            .into_iter()
            .filter_map(|c| crate::net::ExpiringFirewall::remote(&c.rule));
        servers.chain(cuts).collect()
    }

    /// The remote addresses `allowed` does not name; empty means the
    /// rehearsal may run.
    pub fn unallowed(&self, allowed: &[IpAddr]) -> Vec<IpAddr> {
        self.remote_addresses()
            .into_iter()
            .filter(|a| !allowed.contains(a))
            .collect()
    }

    /// Every `net.block`/`net.reject` step (and `net.delay` toward a
    /// remote) with the rule it adds and its time to live (the step's
    /// `for:`; validation makes it present).
    pub fn cuts(&self) -> Vec<Cut<'_>> {
        self.steps
            .iter()
            .filter_map(|step| match &step.action {
                Action::Fault {
                    fault:
                        Fault::DelayToward {
                            matching, delay, ..
                        },
                    heal_after,
                    ..
                } => Some(Cut {
                    step,
                    rule: Rule {
                        matching: matching.clone(),
                        action: crate::net::Action::Delay(*delay),
                    },
                    ttl: heal_after.unwrap_or_default(),
                }),
                Action::Fault {
                    fault:
                        Fault::NetCut {
                            reject, matching, ..
                        },
                    heal_after,
                    ..
                } => Some(Cut {
                    step,
                    rule: Rule {
                        matching: matching.clone(),
                        action: if *reject {
                            crate::net::Action::Reject
                        } else {
                            crate::net::Action::Drop
                        },
                    },
                    ttl: heal_after.unwrap_or_default(),
                }),
                _ => None,
            })
            .collect()
    }
}

/// One cut of a rehearsal.
#[derive(Debug, Clone)]
pub struct Cut<'p> {
    pub step: &'p Step,
    pub rule: Rule,
    pub ttl: Duration,
}
