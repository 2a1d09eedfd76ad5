//! The `nfs.*` call faults: a rule in the in-process server's FaultHook
//! (delay, stall, drop, close, error), removed on heal; and `nfs.restart`,
//! a reboot with a new write verifier that cannot be undone.

use std::time::Duration;

use super::{Active, FaultError, Targets, server};
use crate::nfs::control::names;
use crate::nfs::export::Cidr;
use crate::nfs::{CallMatch, FaultAction, FaultRule, RestartOptions};
use crate::scenario::{Fault, NfsCallMatch};

/// The scenario's `match:` as the hook's matcher. Validation has checked
/// every name; a name that still does not resolve is an error, never a
/// silently wider match.
pub(super) fn call_match(
    fault: &'static str,
    m: &NfsCallMatch,
) -> Result<(CallMatch, Option<u64>), FaultError> {
    let bad = |what: String| FaultError::BadMatch { fault, what };
    let mut prog = match &m.program {
        Some(p) => {
            Some(names::program(&p.value).ok_or_else(|| bad(format!("program `{}`", p.value)))?)
        }
        None => None,
    };
    let proc_ = match (&m.procedure, prog) {
        (Some(p), Some(prog)) => Some(
            names::procedure(prog, &p.value)
                .ok_or_else(|| bad(format!("procedure `{}`", p.value)))?,
        ),
        (Some(p), None) => {
            let (pg, pc) = names::procedure_any(&p.value)
                .ok_or_else(|| bad(format!("procedure `{}`", p.value)))?;
            prog = Some(pg);
            Some(pc)
        }
        (None, _) => None,
    };
    let client = match &m.client {
        Some(c) => Some(Cidr::parse(&c.value).map_err(|_| bad(format!("client `{}`", c.value)))?),
        None => None,
    };
    Ok((
        CallMatch {
            prog,
            vers: m.version.as_ref().map(|v| v.value),
            proc_,
            export: m
                .export
                .as_ref()
                .map(|e| crate::nfs::export::normalize_name(&e.value)),
            client,
        },
        m.nth.as_ref().map(|n| n.value),
    ))
}

/// The hook action a call fault asks for.
fn action(f: &Fault) -> Result<FaultAction, FaultError> {
    Ok(match f {
        Fault::NfsDelay { delay, .. } => FaultAction::Delay(delay.0),
        Fault::NfsStall { .. } => FaultAction::StallUntilHealed,
        Fault::NfsDrop { .. } => FaultAction::DropReply,
        Fault::NfsClose { .. } => FaultAction::CloseConnection,
        Fault::NfsError { status, .. } => {
            FaultAction::ReplyStatus(names::status(&status.value).ok_or_else(|| {
                FaultError::BadMatch {
                    fault: f.kind(),
                    what: format!("status `{}`", status.value),
                }
            })?)
        }
        _ => unreachable!("not a call fault: {}", f.kind()),
    })
}

/// Adds the call fault's rule to its server's hook.
pub(super) fn add_rule(f: &Fault, world: &dyn Targets) -> Result<Active, FaultError> {
    let kind = f.kind();
    let (name, m) = f.nfs_call().expect("a call fault");
    let srv = server(world, kind, &name.value)?;
    let (matcher, nth) = call_match(kind, m)?;
    let action = action(f)?;
    let rule = srv.hook().add(FaultRule {
        matcher,
        action,
        nth,
    });
    tracing::info!(fault = kind, server = %name.value, rule = rule.get(), "nfs fault rule added");
    Ok(Active::NfsRule {
        kind,
        server: name.value.clone(),
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

/// `nfs.restart`: an immediate reboot (no downtime; the timeline's next
/// step runs at once). The write verifier changes, so kernel clients resend
/// their uncommitted writes.
pub(super) fn restart(
    world: &dyn Targets,
    name: &str,
    lose_handles: bool,
) -> Result<Active, FaultError> {
    const KIND: &str = "nfs.restart";
    let verf = server(world, KIND, name)?.restart(RestartOptions {
        keep_handles: !lose_handles,
        downtime: Duration::ZERO,
    });
    tracing::info!(server = %name, lose_handles, verifier = ?verf, "nfs server restarted by fault");
    Ok(Active::Permanent { kind: KIND })
}
