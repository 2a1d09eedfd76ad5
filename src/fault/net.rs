//! `net.block`, `net.reject`, `net.mtu`, `net.delay`, `net.loss`: the
//! network faults, each with its undo and its proof that it fired (firewall
//! rule counters, netem qdisc counters).
//!
//! The blackhole mitigation in incidents/storage-failover-stale-handles-xfs-on-loop
//! ("temporarily activate some firewalling rules to block all traffic from
//! and to the fileservers") is `net.block`; a block that never matched a
//! packet proves nothing, hence [`fired`](super::fired).

use super::{Active, FaultError, Targets};
use crate::net::{Action, Match, MtuChange, Netem, NetemSpec, Rule};
use crate::plan::NetLink;
use std::collections::BTreeMap;
use std::time::Duration;

pub(super) const BLOCK: &str = "net.block";
pub(super) const REJECT: &str = "net.reject";
pub(super) const MTU: &str = "net.mtu";
pub(super) const DELAY: &str = "net.delay";
pub(super) const LOSS: &str = "net.loss";

/// The undo guards of active `net.mtu` / `net.delay` / `net.loss` faults,
/// kept by the world (an [`Active`] only names them by number). Dropping
/// it undoes whatever is still applied.
#[derive(Debug, Default)]
pub struct NetGuards {
    next: u32,
    mtu: BTreeMap<u32, MtuChange>,
    netem: BTreeMap<u32, Netem>,
}

impl NetGuards {
    fn take_number(&mut self) -> u32 {
        self.next += 1;
        self.next
    }

    /// How many guards still hold a change (zero once every fault healed).
    pub fn active(&self) -> usize {
        self.mtu.len() + self.netem.len()
    }
}

fn net_err(fault: &'static str) -> impl FnOnce(crate::net::NetError) -> FaultError {
    move |source| FaultError::Net { fault, source }
}

fn unknown(fault: &'static str, what: &'static str, name: &str) -> FaultError {
    FaultError::UnknownTarget {
        fault,
        what,
        name: name.to_string(),
    }
}

/// A firewall rule in `host`'s namespace that drops (or rejects) what
/// `matching` matches; on a staging client, an element of the run's
/// expiring firewall that lasts `lasts` even if nobody heals it.
pub(super) fn cut(
    world: &dyn Targets,
    host: &str,
    matching: &Match,
    reject: bool,
    lasts: Option<Duration>,
) -> Result<Active, FaultError> {
    let (kind, action) = if reject {
        (REJECT, Action::Reject)
    } else {
        (BLOCK, Action::Drop)
    };
    let rule = Rule {
        matching: matching.clone(),
        action,
    };
    if world.expiring_firewall(host).is_some() {
        return expiring_cut(world, kind, host, rule, lasts);
    }
    let fw = world.firewall(host)?;
    let id = fw
        .lock()
        .expect("firewall lock")
        .add(&rule)
        .map_err(net_err(kind))?;
    Ok(Active::NetRule {
        kind,
        host: host.to_string(),
        rule: id,
    })
}

/// An element of a staging client's expiring firewall, for `lasts`.
fn expiring_cut(
    world: &dyn Targets,
    kind: &'static str,
    host: &str,
    rule: Rule,
    lasts: Option<Duration>,
) -> Result<Active, FaultError> {
    let fw = expiring(world, kind, host)?;
    let ttl = lasts.ok_or(FaultError::Unbounded { fault: kind })?;
    let packets_before = fw.packets(&rule).map_err(net_err(kind))?;
    fw.cut(&rule, ttl).map_err(net_err(kind))?;
    Ok(Active::ExpiringCut {
        kind,
        host: host.to_string(),
        rule,
        packets_before,
    })
}

/// What a staging client sends that `matching` matches waits `delay`:
/// an element of its expiring firewall's delay set, whose queue a
/// thread of ours holds.
pub(super) fn delay_toward(
    world: &dyn Targets,
    host: &str,
    matching: &Match,
    delay: Duration,
    lasts: Option<Duration>,
) -> Result<Active, FaultError> {
    let rule = Rule {
        matching: matching.clone(),
        action: Action::Delay(delay),
    };
    expiring_cut(world, DELAY, host, rule, lasts)
}

fn expiring<'w>(
    world: &'w dyn Targets,
    fault: &'static str,
    host: &str,
) -> Result<&'w crate::net::ExpiringFirewall, FaultError> {
    world
        .expiring_firewall(host)
        .ok_or_else(|| unknown(fault, "expiring firewall of host", host))
}

fn iface(
    world: &dyn Targets,
    fault: &'static str,
    link: &NetLink,
) -> Result<(String, String), FaultError> {
    let NetLink { host, peer, vlan } = link;
    let ifname = world
        .link_iface(host, peer, *vlan)
        .ok_or_else(|| unknown(fault, "link", &format!("{host} -> {peer}")))?;
    Ok((host.to_string(), ifname))
}

fn guards<'w>(
    world: &'w dyn Targets,
    fault: &'static str,
) -> Result<std::sync::MutexGuard<'w, NetGuards>, FaultError> {
    world
        .net_guards()
        .ok_or_else(|| unknown(fault, "network", "world"))
}

pub(super) fn mtu(world: &dyn Targets, link: &NetLink, mtu: u32) -> Result<Active, FaultError> {
    let (host, ifname) = iface(world, MTU, link)?;
    let ns = world
        .host_netns(&host)
        .ok_or_else(|| unknown(MTU, "host", &host))?;
    let change = MtuChange::apply(ns, &ifname, mtu).map_err(net_err(MTU))?;
    let mut g = guards(world, MTU)?;
    let guard = g.take_number();
    g.mtu.insert(guard, change);
    Ok(Active::NetMtu {
        host,
        ifname,
        guard,
    })
}

fn netem(
    world: &dyn Targets,
    kind: &'static str,
    link: &NetLink,
    spec: NetemSpec,
) -> Result<Active, FaultError> {
    let (host, ifname) = iface(world, kind, link)?;
    let ns = world
        .host_netns(&host)
        .ok_or_else(|| unknown(kind, "host", &host))?;
    let qdisc = Netem::add(ns, &ifname, &spec).map_err(net_err(kind))?;
    let mut g = guards(world, kind)?;
    let guard = g.take_number();
    g.netem.insert(guard, qdisc);
    Ok(Active::Netem {
        kind,
        host,
        ifname,
        guard,
    })
}

pub(super) fn delay(
    world: &dyn Targets,
    link: &NetLink,
    delay: Duration,
    jitter: Option<Duration>,
) -> Result<Active, FaultError> {
    let spec = NetemSpec {
        delay: Some(delay),
        jitter,
        loss_percent: None,
    };
    netem(world, DELAY, link, spec)
}

pub(super) fn loss(
    world: &dyn Targets,
    link: &NetLink,
    percent: f64,
) -> Result<Active, FaultError> {
    let spec = NetemSpec {
        delay: None,
        jitter: None,
        loss_percent: Some(percent),
    };
    netem(world, LOSS, link, spec)
}

/// Removes the rule, or restores the MTU, or removes the qdisc.
pub(super) fn heal(active: &Active, world: &dyn Targets) -> Result<(), FaultError> {
    match active {
        Active::NetRule { kind, host, rule } => world
            .firewall(host)?
            .lock()
            .expect("firewall lock")
            .remove(*rule)
            .map(drop)
            .map_err(net_err(kind)),
        // Already expired (the kernel's timeout and the `for:` end at the
        // same moment) is healed too.
        Active::ExpiringCut {
            kind, host, rule, ..
        } => expiring(world, kind, host)?
            .heal(rule)
            .map(drop)
            .map_err(net_err(kind)),
        // Taken out first, so the lock is not held while `ip` runs.
        Active::NetMtu { guard, .. } => {
            let change = guards(world, MTU)?.mtu.remove(guard);
            change.map_or(Ok(()), |c| c.restore().map_err(net_err(MTU)))
        }
        Active::Netem { kind, guard, .. } => {
            let qdisc = guards(world, kind)?.netem.remove(guard);
            qdisc.map_or(Ok(()), |q| q.remove().map_err(net_err(kind)))
        }
        _ => Ok(()),
    }
}

/// Packets the fault acted on: a rule's matches (both directions), the
/// packets netem delayed, the packets netem dropped. None for `net.mtu`,
/// whose effect (a frame too big) no counter of ours attributes to it.
pub(super) fn fired(active: &Active, world: &dyn Targets) -> Option<Result<u64, FaultError>> {
    match active {
        Active::NetRule { kind, host, rule } => Some(world.firewall(host).and_then(|fw| {
            let fw = fw.lock().expect("firewall lock");
            fw.packets(*rule).map_err(net_err(kind))
        })),
        Active::ExpiringCut {
            kind,
            host,
            rule,
            packets_before,
        } => Some(expiring(world, kind, host).and_then(|fw| {
            let now = fw.packets(rule).map_err(net_err(kind))?;
            Ok(now.saturating_sub(*packets_before))
        })),
        Active::Netem { kind, guard, .. } => Some((|| {
            let g = guards(world, kind)?;
            let q = g
                .netem
                .get(guard)
                .ok_or_else(|| unknown(kind, "qdisc", &guard.to_string()))?;
            let stats = q.stats().map_err(net_err(kind))?;
            Ok(if *kind == LOSS {
                stats.drops
            } else {
                stats.packets
            })
        })()),
        _ => None,
    }
}
