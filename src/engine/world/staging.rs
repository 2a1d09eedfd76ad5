//! The world of a staging rehearsal (`run --target staging`), which is
//! not built: the client is the namespace stackquake runs in, the server
//! is someone's real machine (`kind: external`) where nothing is started.
//! What the run adds on the client is what `plan --target staging` lists:
//! one expiring firewall (`net::ExpiringFirewall`) when a step cuts, the
//! mounts of the server's exports, and the run's processes.

use super::{SetupError, TeardownLog, World};
use crate::fault::{HostDaemons, HostError};
use crate::ledger::{Ledger, RunId};
use crate::net::{ExpiringFirewall, Netns};
use crate::plan::{Daemon, Plan};
use crate::process::own_daemon::{self, Stopped};
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

/// What a rehearsal's world holds instead of namespaces and links.
#[derive(Default)]
pub(super) struct StagingParts {
    /// The scenario's local host: it runs here, in no namespace of ours.
    here: BTreeSet<String>,
    /// The run's table of timed cuts, on the client (created when a step cuts).
    firewall: Option<ExpiringFirewall>,
    /// The client's own daemons `proc.kill` stopped, until healed.
    stopped: Mutex<Vec<(Daemon, Stopped)>>,
}

impl HostDaemons for StagingParts {
    /// Stops the client's own daemon (see `process::own_daemon`); its
    /// watchdog brings it back `lasts` (the step's `for:`, which
    /// validation makes present) plus a margin from now if we die.
    fn kill(&self, daemon: Daemon, lasts: Option<Duration>) -> Result<(), HostError> {
        let stopped = own_daemon::stop(daemon.program(), lasts.unwrap_or_default())?;
        self.stopped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((daemon, stopped));
        Ok(())
    }

    fn restart(&self, daemon: Daemon) -> Result<(), HostError> {
        let mut stopped = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        let Some(k) = stopped.iter().position(|(d, _)| *d == daemon) else {
            return Err(HostError::Unsupported(
                "that daemon was not stopped by this run",
            ));
        };
        let (_, s) = stopped.remove(k);
        Ok(s.restart()?)
    }
}

impl World {
    /// Takes the rehearsal's one local host as this namespace, and creates
    /// the expiring firewall there if any step cuts. Validation made sure
    /// nothing needs a world of ours on the client: one local host, no
    /// links, no statd of our own (scenario/validate/staging.rs).
    pub(super) fn build_staging(
        &mut self,
        s: &Plan,
        run: &RunId,
        ledger: &Ledger,
        note: &mut dyn FnMut(String),
    ) -> Result<(), SetupError> {
        let remote = s.remote_hosts();
        let local: Vec<&String> = s
            .hosts
            .keys()
            .filter(|h| !remote.contains(h.as_str()))
            .collect();
        let [client] = local.as_slice() else {
            panic!("validation lets a rehearsal have one local host, not {local:?}");
        };
        self.staging.here.insert((*client).clone());
        note(format!(
            "host {client}: the namespace stackquake runs in (staging client)"
        ));
        let rules: Vec<crate::net::Rule> = s.cuts().into_iter().map(|c| c.rule).collect();
        if !rules.is_empty() {
            let fw = ExpiringFirewall::create(None, run, ledger, &rules).map_err(|source| {
                SetupError::Net {
                    host: (*client).clone(),
                    source,
                }
            })?;
            note(format!(
                "host {client}: nft table inet {} for timed cuts",
                fw.name()
            ));
            self.staging.firewall = Some(fw);
        }
        Ok(())
    }

    /// Where `host` runs: its namespace, or None for the namespace
    /// stackquake runs in (a rehearsal's client).
    pub fn place(&self, host: &str) -> Option<&Netns> {
        if self.staging.here.contains(host) {
            return None;
        }
        Some(
            self.netns
                .get(host)
                .expect("validated host has a namespace"),
        )
    }

    /// A rehearsal's client, whose daemons are the machine's own.
    pub(super) fn staging_client(&self, host: &str) -> Option<&dyn HostDaemons> {
        self.staging
            .here
            .contains(host)
            .then_some(&self.staging as &dyn HostDaemons)
    }

    pub(super) fn expiring_firewall_of(&self, host: &str) -> Option<&ExpiringFirewall> {
        self.staging
            .firewall
            .as_ref()
            .filter(|_| self.staging.here.contains(host))
    }

    /// Deletes the expiring firewall, first of all: a cut still in force (a
    /// kept one) toward the real server would make its unmount wait on it.
    /// Then the client's own daemons a heal did not bring back are started.
    pub(super) fn teardown_staging(&mut self, log: &mut TeardownLog) {
        if let Some(fw) = self.staging.firewall.take() {
            let what = format!("delete firewall {}", fw.name());
            log.record(what, fw.delete());
        }
        let stopped = std::mem::take(
            &mut *self
                .staging
                .stopped
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for (daemon, s) in stopped {
            log.record(
                format!("start the client's own {}", daemon.program()),
                s.restart(),
            );
        }
    }
}
