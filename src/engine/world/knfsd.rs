//! `kind: knfsd` servers: the guest kernel's nfsd (`Knfsd`) in the server
//! host's namespace, exporting the same scratch directories an in-process
//! server would. Its lockd is a kernel thread that monitors every client
//! that locks (server side of nsm_monitor): the host's `statd:` decides
//! whether an rpc.statd runs next to it (absent or `system`: yes, in
//! knfsd's own namespaces and rpcbind; `none`: no — the incident's server
//! whose rpc-statd.service was disabled).

use super::{SetupError, World, io};
use crate::fault::KernelNfsd;
use crate::ledger::Ledger;
use crate::nfs::export::Squash;
use crate::nfs::knfsd::{Knfsd, KnfsdConfig, KnfsdError, KnfsdExport, NLM_PORT};
use crate::plan::{Plan, ServerKind, Statd};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

/// A knfsd server of the world and its exports by scenario path.
pub struct KnfsdServer {
    /// In a cell: faults reach the world through `&self`.
    /// Behind a lock: faults are injected from threads of their own.
    knfsd: Mutex<Knfsd>,
    exports: Vec<(String, KnfsdExport)>,
    mountd_port: u16,
}

impl KernelNfsd for KnfsdServer {
    fn set_exported(&self, export: &str, exported: bool) -> Result<(), KnfsdError> {
        let (_, e) = self
            .exports
            .iter()
            .find(|(path, _)| path == export)
            .ok_or_else(|| KnfsdError::UnknownExport {
                target: export.to_string(),
            })?;
        let mut knfsd = self.knfsd();
        if exported {
            knfsd.export(e)
        } else {
            knfsd.unexport(&e.clients, &e.dir)
        }
    }

    fn restart(&self) -> Result<(), KnfsdError> {
        self.knfsd().restart()
    }
}

impl KnfsdServer {
    /// The daemon; a panic while it was held leaves it as it was, still
    /// usable for teardown.
    fn knfsd(&self) -> MutexGuard<'_, Knfsd> {
        self.knfsd.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Debug for KnfsdServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KnfsdServer({})", self.knfsd().netns())
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
            // NFSv4 (and nfsdcld for its client records) only when a mount
            // asks for it: v3 scenarios keep the server they were measured on.
            let nfsv4 = s
                .mounts
                .iter()
                .any(|m| &m.server == name && m.version.is_v4());
            let config = KnfsdConfig {
                nlm_port: Some(NLM_PORT),
                nfsv4,
                ..KnfsdConfig::default()
            };
            let mut knfsd =
                Knfsd::start(ns, &config, Some(ledger)).map_err(|e| err(e.to_string()))?;
            let root = scratch.join(format!("server-{name}"));
            let mut exports = Vec::new();
            for (i, e) in server.exports.iter().enumerate() {
                let dir = root.join(e.path.trim_start_matches('/'));
                std::fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
                if nfsv4 {
                    knfsd
                        .make_mount_point(&dir)
                        .map_err(|e| err(e.to_string()))?;
                }
                super::seed::seed(&dir, &e.files)?;
                let rw = if e.read_only { "ro" } else { "rw" };
                let squash = match e.squash {
                    Squash::Root => "root_squash",
                    Squash::NoRootSquash => "no_root_squash",
                    Squash::All => "all_squash",
                };
                let export = KnfsdExport {
                    dir,
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
                };
                knfsd.export(&export).map_err(|e| err(e.to_string()))?;
                exports.push((e.path.clone(), export));
            }
            if nfsv4 {
                // NFSv4 clients start at the server's root. nfs-utils would
                // make a pseudo root of `/`, which in the guest is 9p and
                // cannot be exported; so the directory holding the exports
                // is the root (`fsid=0`), read-only, and `crossmnt` takes
                // a lookup into each export (a mount point, above), under
                // that export's own options and handles. A client that one
                // export refuses would see that directory through the root
                // instead, so validation requires one `clients:` for all.
                let clients = server
                    .exports
                    .first()
                    .and_then(|e| e.clients.as_ref())
                    .map_or_else(|| "*".to_string(), ToString::to_string);
                knfsd
                    .export(&KnfsdExport {
                        dir: root,
                        clients,
                        options: "ro,sync,root_squash,no_subtree_check,insecure,fsid=0,crossmnt"
                            .into(),
                    })
                    .map_err(|e| err(e.to_string()))?;
            }
            let wants_statd = s.hosts[&server.host].statd != Some(Statd::None);
            if wants_statd {
                knfsd.start_statd().map_err(|e| err(e.to_string()))?;
            }
            note(format!(
                "knfsd server {name} on {} (rpc.statd: {}, NFSv4: {})",
                server.host,
                if wants_statd { "yes" } else { "no" },
                if nfsv4 { "yes, with nfsdcld" } else { "no" }
            ));
            self.knfsds.insert(
                name.clone(),
                KnfsdServer {
                    knfsd: Mutex::new(knfsd),
                    exports,
                    mountd_port: config.mountd_port,
                },
            );
        }
        Ok(())
    }

    /// What an NFSv3 mount of `server`'s `export` names: the exported
    /// directory and mountd's port for knfsd; `None` for an in-process
    /// server. (NFSv4 mounts name the export under the root, as for ours.)
    pub(super) fn knfsd_target(&self, server: &str, export: &str) -> Option<(String, u16)> {
        let k = self.knfsds.get(server)?;
        let (_, e) = k.exports.iter().find(|(p, _)| p == export)?;
        Some((e.dir.display().to_string(), k.mountd_port))
    }

    /// rpc.statd beside each knfsd whose host had none (see `heal_statds`).
    pub(super) fn heal_knfsd_statds(&mut self) {
        for (name, k) in &mut self.knfsds {
            let knfsd = k.knfsd.get_mut().unwrap_or_else(|e| e.into_inner());
            if !knfsd.has_statd()
                && let Err(e) = knfsd.start_statd()
            {
                tracing::warn!(server = %name, error = %e, "cannot start rpc.statd for knfsd's stop");
            }
        }
    }

    pub(super) fn stop_knfsds(&mut self, log: &mut super::TeardownLog) {
        for (name, k) in std::mem::take(&mut self.knfsds) {
            log.record(
                format!("stop knfsd server {name}"),
                k.knfsd
                    .into_inner()
                    .unwrap_or_else(|e| e.into_inner())
                    .stop(),
            );
        }
    }
}
