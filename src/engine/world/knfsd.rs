//! `kind: knfsd` servers: the guest kernel's nfsd (`Knfsd`) in the server
//! host's namespace, exporting the same scratch directories an in-process
//! server would. Its lockd is a kernel thread that monitors every client
//! that locks (server side of nsm_monitor): the host's `statd:` decides
//! whether an rpc.statd runs next to it (absent or `system`: yes, in
//! knfsd's own namespaces and rpcbind; `none`: no — the incident's server
//! whose rpc-statd.service was disabled).

use super::{SetupError, World, io};
use crate::ledger::Ledger;
use crate::nfs::export::Squash;
use crate::nfs::knfsd::{Knfsd, KnfsdConfig, KnfsdExport, NLM_PORT};
use crate::plan::{Plan, ServerKind, Statd};
use std::path::{Path, PathBuf};

/// A knfsd server of the world and its exports by scenario path.
pub struct KnfsdServer {
    knfsd: Knfsd,
    exports: Vec<(String, PathBuf)>,
    mountd_port: u16,
}

impl std::fmt::Debug for KnfsdServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KnfsdServer({})", self.knfsd.netns())
    }
}

impl World {
    pub(super) fn build_knfsds(
        &mut self,
        s: &Plan,
        scratch: &Path,
        ledger: &Ledger,
        note: &mut dyn FnMut(String),
    ) -> Result<(), SetupError> {
        for (name, server) in &s.nfs_servers {
            if server.kind != ServerKind::Knfsd {
                continue;
            }
            let err = |detail: String| SetupError::Nfs {
                server: name.clone(),
                detail,
            };
            let ns = &self.netns[&server.host];
            // A known NLM port: `net.block … port: 4045` cuts lockd off
            // while NFS keeps answering.
            let config = KnfsdConfig {
                nlm_port: Some(NLM_PORT),
                ..KnfsdConfig::default()
            };
            let mut knfsd =
                Knfsd::start(ns, &config, Some(ledger)).map_err(|e| err(e.to_string()))?;
            let mut exports = Vec::new();
            for (i, e) in server.exports.iter().enumerate() {
                let dir = scratch
                    .join(format!("server-{name}"))
                    .join(e.path.trim_start_matches('/'));
                std::fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
                super::seed::seed(&dir, &e.files)?;
                let rw = if e.read_only { "ro" } else { "rw" };
                let squash = match e.squash {
                    Squash::Root => "root_squash",
                    Squash::NoRootSquash => "no_root_squash",
                    Squash::All => "all_squash",
                };
                knfsd
                    .export(&KnfsdExport {
                        dir: dir.clone(),
                        clients: e
                            .clients
                            .as_ref()
                            .map_or_else(|| "*".to_string(), ToString::to_string),
                        // The scratch dir is a tmpfs in the guest: no UUID,
                        // so an explicit fsid; `insecure` because our own
                        // tools may mount from unprivileged ports.
                        options: format!(
                            "{rw},sync,{squash},no_subtree_check,insecure,fsid={}",
                            i + 1
                        ),
                    })
                    .map_err(|e| err(e.to_string()))?;
                exports.push((e.path.clone(), dir));
            }
            let wants_statd = s.hosts[&server.host].statd != Some(Statd::None);
            if wants_statd {
                knfsd.start_statd().map_err(|e| err(e.to_string()))?;
            }
            note(format!(
                "knfsd server {name} on {} (rpc.statd: {})",
                server.host,
                if wants_statd { "yes" } else { "no" }
            ));
            self.knfsds.insert(
                name.clone(),
                KnfsdServer {
                    knfsd,
                    exports,
                    mountd_port: config.mountd_port,
                },
            );
        }
        Ok(())
    }

    /// What a mount of `server`'s `export` names: the exported directory
    /// and mountd's port for knfsd; `None` for an in-process server.
    pub(super) fn knfsd_target(&self, server: &str, export: &str) -> Option<(String, u16)> {
        let k = self.knfsds.get(server)?;
        let dir = k.exports.iter().find(|(p, _)| p == export)?.1.clone();
        Some((dir.display().to_string(), k.mountd_port))
    }

    /// rpc.statd beside each knfsd whose host had none (see `heal_statds`).
    pub(super) fn heal_knfsd_statds(&mut self) {
        for (name, k) in &mut self.knfsds {
            if !k.knfsd.has_statd()
                && let Err(e) = k.knfsd.start_statd()
            {
                tracing::warn!(server = %name, error = %e, "cannot start rpc.statd for knfsd's stop");
            }
        }
    }

    pub(super) fn stop_knfsds(&mut self, log: &mut super::TeardownLog) {
        for (name, k) in std::mem::take(&mut self.knfsds) {
            log.record(format!("stop knfsd server {name}"), k.knfsd.stop());
        }
    }
}
