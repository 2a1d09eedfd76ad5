//! Locking faults: `nlm.down` and `nsm.down` (a server's lock manager or
//! status monitor stops answering, or leaves its portmapper), `nlm.grace`
//! (a forced grace period) and `proc.kill` (a host's statd or rpcbind dies),
//! after incidents/php-fpm-flock-hang-statd-down.
//!
//! These act on the in-process server, whose NLM and NSM are ours. The
//! kernel's server (`kind: knfsd`) runs lockd as a kernel thread: there is
//! nothing of it to stall from user space short of the firewall, which is
//! the network faults' business, so the validator refuses them there.

use super::{FaultError, Targets, server};
use crate::nfs::control::{self, DownMode, Request};
use crate::nfs::{NfsServer, nlm, nsm};
use crate::plan::{Daemon, Fault, LockDownMode};
use std::sync::atomic::AtomicBool;

/// A grace period "until healed": longer than any run.
const GRACE_UNTIL_HEALED_MS: u64 = 24 * 3600 * 1000;

/// An injected locking fault and what its heal needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockFault {
    /// A stall rule in the server's hook (heal: remove it, held calls are
    /// answered), or `rule: None` for leaving the portmapper.
    Down {
        kind: &'static str,
        server: String,
        program: u32,
        rule: Option<u64>,
    },
    Grace {
        server: String,
    },
    Killed {
        host: String,
        daemon: Daemon,
    },
    Crashed {
        host: String,
    },
}

impl LockFault {
    pub fn kind(&self) -> &'static str {
        match self {
            LockFault::Down { kind, .. } => kind,
            LockFault::Grace { .. } => "nlm.grace",
            LockFault::Killed { .. } => "proc.kill",
            LockFault::Crashed { .. } => "host.crash",
        }
    }
}

/// Runs a control request on the server as `nfs fault` would.
fn execute(fault: &'static str, srv: &NfsServer, req: &Request) -> Result<Option<u64>, FaultError> {
    let r = control::execute(srv, req, &AtomicBool::new(false));
    if r.ok {
        Ok(r.id)
    } else {
        Err(FaultError::Lock {
            fault,
            detail: r.error.unwrap_or_else(|| "refused".into()),
        })
    }
}

pub(super) fn inject(
    fault: &Fault,
    lasts: Option<std::time::Duration>,
    world: &dyn Targets,
) -> Result<LockFault, FaultError> {
    let kind = fault.kind();
    match fault {
        Fault::NlmDown { server: name, mode } | Fault::NsmDown { server: name, mode } => {
            let srv = server(world, kind, name)?;
            let mode = match mode {
                LockDownMode::Stall => DownMode::Stall,
                LockDownMode::Unregister => DownMode::Unregister,
            };
            let (req, program) = if matches!(fault, Fault::NlmDown { .. }) {
                (Request::NlmDown { mode }, nlm::PROGRAM)
            } else {
                (Request::NsmDown { mode }, nsm::PROGRAM)
            };
            let rule = execute(kind, srv, &req)?;
            Ok(LockFault::Down {
                kind,
                server: name.clone(),
                program,
                rule,
            })
        }
        Fault::NlmGrace { server: name } => {
            let srv = server(world, kind, name)?;
            execute(
                kind,
                srv,
                &Request::NlmGrace {
                    ms: GRACE_UNTIL_HEALED_MS,
                },
            )?;
            Ok(LockFault::Grace {
                server: name.clone(),
            })
        }
        Fault::ProcKill { host, daemon } => {
            daemons(world, host)?
                .kill(*daemon, lasts)
                .map_err(|source| FaultError::Host {
                    fault: kind,
                    source,
                })?;
            tracing::info!(host = %host, ?daemon, "daemon killed");
            Ok(LockFault::Killed {
                host: host.clone(),
                daemon: *daemon,
            })
        }
        Fault::HostCrash { host } => {
            daemons(world, host)?
                .crash()
                .map_err(|source| FaultError::Host {
                    fault: kind,
                    source,
                })?;
            tracing::info!(host = %host, "host crashed");
            Ok(LockFault::Crashed { host: host.clone() })
        }
        _ => unreachable!("fault::inject routes only locking faults here"),
    }
}

fn daemons<'w>(
    world: &'w dyn Targets,
    host: &str,
) -> Result<&'w dyn super::HostDaemons, FaultError> {
    world
        .host_daemons(host)
        .ok_or_else(|| FaultError::UnknownTarget {
            fault: "proc.kill/host.crash",
            what: "host with a statd",
            name: host.to_string(),
        })
}

pub(super) fn heal(active: &LockFault, world: &dyn Targets) -> Result<(), FaultError> {
    let kind = active.kind();
    match active {
        LockFault::Down {
            server: name,
            program,
            rule,
            ..
        } => {
            let srv = server(world, kind, name)?;
            let req = match (rule, *program) {
                (Some(id), _) => Request::Heal { id: *id },
                (None, nlm::PROGRAM) => Request::NlmUp,
                (None, _) => Request::NsmUp,
            };
            execute(kind, srv, &req).map(drop)
        }
        LockFault::Grace { server: name } => execute(
            kind,
            server(world, kind, name)?,
            &Request::NlmGrace { ms: 0 },
        )
        .map(drop),
        LockFault::Killed { host, daemon } => {
            daemons(world, host)?
                .restart(*daemon)
                .map_err(|source| FaultError::Host {
                    fault: kind,
                    source,
                })
        }
        LockFault::Crashed { host } => {
            daemons(world, host)?
                .reboot()
                .map_err(|source| FaultError::Host {
                    fault: kind,
                    source,
                })
        }
    }
}
