//! The `nfs.*` call faults: a rule in the in-process server's FaultHook
//! (delay, stall, drop, close, error), removed on heal; and `nfs.restart`,
//! a reboot with a new write verifier that cannot be undone.

use std::time::Duration;

use super::{Active, FaultError, Targets, server};
use crate::nfs::{FaultRule, RestartOptions};

/// Adds the call fault's rule to its server's hook.
pub(super) fn add_rule(
    world: &dyn Targets,
    kind: &'static str,
    name: &str,
    rule: &FaultRule,
) -> Result<Active, FaultError> {
    let srv = server(world, kind, name)?;
    let rule = srv.hook().add(rule.clone());
    tracing::info!(fault = kind, server = %name, rule = rule.get(), "nfs fault rule added");
    Ok(Active::NfsRule {
        kind,
        server: name.to_string(),
        rule,
    })
}

/// Removes the rule: held calls resume, later calls pass.
pub(super) fn remove_rule(
    world: &dyn Targets,
    kind: &'static str,
    name: &str,
    rule: crate::nfs::RuleId,
) -> Result<(), FaultError> {
    let srv = server(world, kind, name)?;
    srv.hook().remove(rule);
    tracing::info!(fault = kind, server = %name, rule = rule.get(), matched = ?srv.hook().matched(rule), "nfs fault rule healed");
    Ok(())
}

/// Calls the rule acted on (with `nth`, at most one however many matched):
/// the evidence that the fault fired.
pub(super) fn acted(world: &dyn Targets, name: &str, rule: crate::nfs::RuleId) -> Option<u64> {
    Some(world.nfs_server(name)?.hook().counts(rule)?.acted)
}

pub(super) const RESTART: &str = "nfs.restart";
pub(super) const EXPIRE_LEASE: &str = "nfs.expire_lease";

/// `nfs.expire_lease`: the server forgets the clients' leases now.
pub(super) fn expire_lease(
    world: &dyn Targets,
    name: &str,
    client: Option<std::net::IpAddr>,
) -> Result<Active, FaultError> {
    let expired = server(world, EXPIRE_LEASE, name)?.expire_v4_leases(client);
    tracing::info!(server = %name, client = ?client, expired, "nfsv4 leases expired by fault");
    // Like a cut that matched no packet: a fault that did nothing would
    // make every verdict after it meaningless.
    if expired == 0 {
        let from = client.map_or_else(|| "any address".to_string(), |a| a.to_string());
        return Err(FaultError::Lock {
            fault: EXPIRE_LEASE,
            detail: format!("no NFSv4 client holds a lease from {from} (is the mount vers=4.x?)"),
        });
    }
    Ok(Active::Permanent { kind: EXPIRE_LEASE })
}

pub(super) const SEQUENCE_FLAGS: &str = "nfs.sequence_flags";

/// `nfs.sequence_flags`: SEQUENCE replies carry `flags` from now on (0,
/// the heal, stops them).
pub(super) fn sequence_flags(
    world: &dyn Targets,
    name: &str,
    flags: u32,
) -> Result<Active, FaultError> {
    let replies_before = server(world, SEQUENCE_FLAGS, name)?.set_v4_sequence_flags(flags);
    Ok(Active::SequenceFlags {
        server: name.to_string(),
        replies_before,
    })
}

/// SEQUENCE replies that carried the flags since `before`: whether a 4.1
/// client saw them at all.
pub(super) fn flagged_since(world: &dyn Targets, name: &str, before: u64) -> Option<u64> {
    Some(world.nfs_server(name)?.v4_flagged_replies() - before)
}

/// `nfs.restart`: an immediate reboot (no downtime; the timeline's next
/// step runs at once). The write verifier changes, so kernel clients resend
/// their uncommitted writes.
pub(super) fn restart(
    world: &dyn Targets,
    name: &str,
    lose_handles: bool,
) -> Result<Active, FaultError> {
    if let Some(knfsd) = world.knfsd(name) {
        // Validation refuses `lose_handles` here: knfsd's handles name the
        // export's fsid and the inode, which a restart keeps.
        knfsd.restart().map_err(|source| FaultError::Knfsd {
            fault: RESTART,
            source,
        })?;
        tracing::info!(server = %name, "knfsd restarted by fault");
        return Ok(Active::Permanent { kind: RESTART });
    }
    let verf = server(world, RESTART, name)?.restart(RestartOptions {
        keep_handles: !lose_handles,
        downtime: Duration::ZERO,
    });
    tracing::info!(server = %name, lose_handles, verifier = ?verf, "nfs server restarted by fault");
    Ok(Active::Permanent { kind: RESTART })
}
