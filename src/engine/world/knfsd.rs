//! `kind: knfsd` servers: the guest kernel's nfsd (`Knfsd`) in the server
//! host's namespace, exporting the same scratch directories an in-process
//! server would. Its lockd is a kernel thread that monitors every client
//! that locks (server side of nsm_monitor): the host's `statd:` decides
//! whether an rpc.statd runs next to it (absent or `system`: yes, in
//! knfsd's own namespaces and rpcbind; `none`: no — the incident's server
//! whose rpc-statd.service was disabled).

use super::{SetupError, World, io};
use crate::ledger::{EntryId, Ledger, LedgerObject};
use crate::nfs::knfsd::{Knfsd, KnfsdConfig, KnfsdExport};
use crate::scenario::{ExportOption, Scenario, ServerKind, Statd};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

/// A knfsd server of the world, its exports by scenario path, and the
/// rpc.statd started beside it.
pub struct KnfsdServer {
    knfsd: Knfsd,
    exports: Vec<(String, PathBuf)>,
    mountd_port: u16,
    statd: Option<(Child, Option<EntryId>)>,
    ledger: Ledger,
}

impl std::fmt::Debug for KnfsdServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KnfsdServer({})", self.knfsd.netns())
    }
}

pub(super) fn is_knfsd(s: &Scenario, server: &str) -> bool {
    s.nfs_servers[server]
        .kind
        .as_ref()
        .is_some_and(|k| k.value == ServerKind::Knfsd)
}

impl World {
    pub(super) fn build_knfsds(
        &mut self,
        s: &Scenario,
        scratch: &Path,
        ledger: &Ledger,
        note: &mut dyn FnMut(String),
    ) -> Result<(), SetupError> {
        for (name, server) in &s.nfs_servers {
            if !is_knfsd(s, name) {
                continue;
            }
            let err = |detail: String| SetupError::Nfs {
                server: name.clone(),
                detail,
            };
            let ns = &self.netns[&server.host.value];
            let config = KnfsdConfig::default();
            let mut knfsd =
                Knfsd::start(ns, &config, Some(ledger)).map_err(|e| err(e.to_string()))?;
            let mut exports = Vec::new();
            for (i, e) in server.exports.iter().enumerate() {
                let dir = scratch
                    .join(format!("server-{name}"))
                    .join(e.path.value.trim_start_matches('/'));
                std::fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
                let rw = if e.options.contains(&ExportOption::Ro) {
                    "ro"
                } else {
                    "rw"
                };
                knfsd
                    .export(&KnfsdExport {
                        dir: dir.clone(),
                        clients: e
                            .clients
                            .as_ref()
                            .map_or_else(|| "*".to_string(), |c| c.value.clone()),
                        // The scratch dir is a tmpfs in the guest: no UUID,
                        // so an explicit fsid; `insecure` because our own
                        // tools may mount from unprivileged ports.
                        options: format!(
                            "{rw},sync,no_root_squash,no_subtree_check,insecure,fsid={}",
                            i + 1
                        ),
                    })
                    .map_err(|e| err(e.to_string()))?;
                exports.push((e.path.value.clone(), dir));
            }
            let wants_statd = s.hosts[&server.host.value]
                .statd
                .as_ref()
                .is_none_or(|k| k.value != Statd::None);
            let statd = if wants_statd {
                Some(start_statd(&knfsd, ledger).map_err(err)?)
            } else {
                None
            };
            note(format!(
                "knfsd server {name} on {} (rpc.statd: {})",
                server.host.value,
                if wants_statd { "yes" } else { "no" }
            ));
            self.knfsds.insert(
                name.clone(),
                KnfsdServer {
                    knfsd,
                    exports,
                    mountd_port: config.mountd_port,
                    statd,
                    ledger: ledger.clone(),
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

    pub(super) fn stop_knfsds(&mut self, done: &mut dyn FnMut(String, Result<(), String>)) {
        for (name, mut k) in std::mem::take(&mut self.knfsds) {
            if let Some((mut child, entry)) = k.statd.take() {
                let _ = child.kill();
                let _ = child.wait();
                if let Some(entry) = entry
                    && let Err(e) = k.ledger.done(entry)
                {
                    tracing::warn!(error = %e, "cannot mark rpc.statd done in the ledger");
                }
            }
            done(
                format!("stop knfsd server {name}"),
                k.knfsd.stop().map_err(|e| e.to_string()),
            );
        }
    }
}

/// rpc.statd in knfsd's namespaces, registered with its rpcbind.
fn start_statd(knfsd: &Knfsd, ledger: &Ledger) -> Result<(Child, Option<EntryId>), String> {
    let mut mkdir = knfsd.command("mkdir").map_err(|e| e.to_string())?;
    mkdir.args(["-p", "/var/lib/nfs/sm", "/var/lib/nfs/sm.bak"]);
    let status = mkdir
        .status()
        .map_err(|e| format!("mkdir for rpc.statd: {e}"))?;
    if !status.success() {
        return Err(format!("mkdir for rpc.statd: {status}"));
    }
    let mut cmd = knfsd.command("rpc.statd").map_err(|e| e.to_string())?;
    cmd.args(["-F", "-L"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start rpc.statd: {e}"))?;
    let pid = child.id();
    let starttime = crate::sys::procstat::read(pid)
        .map(|s| s.starttime)
        .unwrap_or(0);
    let entry = match ledger.record(LedgerObject::Process { pid, starttime }) {
        Ok(e) => Some(e),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("cannot record rpc.statd pid {pid}: {e}"));
        }
    };
    // statd registers with rpcbind within a moment of starting.
    std::thread::sleep(std::time::Duration::from_millis(500));
    Ok((child, entry))
}
