//! NFS servers inside their hosts' namespaces, and the kernel client's
//! mounts of them from the clients' namespaces.

use super::{SetupError, World, io};
use crate::block::{BlockError, Mount};
use crate::ledger::Ledger;
use crate::nfs::{ExportSpec, NfsServer, ServerConfig};
use crate::plan::{NfsVersion, Plan, ServerKind};
use crate::tools::Input;
use nix::mount::MsFlags;
use std::path::Path;
use std::process::Command;

/// Where a network namespace's NFS client takes its uniquifier from.
const NFS_CLIENT_IDENTIFIER: &str = "/sys/fs/nfs/net/nfs_client/identifier";

/// The port the in-process server listens on inside its own namespace.
const NFS_PORT: u16 = 2049;

impl World {
    pub(super) fn build_servers(
        &mut self,
        s: &Plan,
        scratch: &Path,
        note: &mut dyn FnMut(String),
    ) -> Result<(), SetupError> {
        for (name, server) in &s.nfs_servers {
            match server.kind {
                ServerKind::Knfsd => continue, // build_knfsds
                // Someone's real server: nothing is started for it.
                ServerKind::External => continue,
                ServerKind::Inproc => {}
            }
            let nfs_err = |detail: String| SetupError::Nfs {
                server: name.clone(),
                detail,
            };
            let mut exports = Vec::new();
            for e in &server.exports {
                let dir = scratch
                    .join(format!("server-{name}"))
                    .join(e.path.trim_start_matches('/'));
                std::fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
                super::seed::seed(&dir, &e.files)?;
                exports.push(ExportSpec {
                    name: e.path.clone(),
                    dir,
                    clients: e.clients.iter().map(ToString::to_string).collect(),
                    read_only: e.read_only,
                    squash: e.squash,
                });
            }
            let ns = &self.netns[&server.host];
            // With NLM, NSM and a portmapper on 111: kernel clients lock.
            let listeners = super::locking::server_listeners(ns, NFS_PORT)
                .map_err(|e| nfs_err(format!("listen on ports {NFS_PORT} and 111: {e}")))?;
            let addr = s.hosts[&server.host].addr.and_then(|a| a.ipv4());
            // Started from inside the namespace: the threads it spawns stay
            // there, so its callbacks (GRANTED, SM_NOTIFY) leave from it.
            let srv = ns
                .run(|| {
                    NfsServer::start_with_locking(
                        ServerConfig {
                            exports,
                            ..ServerConfig::default()
                        },
                        listeners,
                        super::locking::server_lock_config(addr),
                    )
                })
                .map_err(|e| nfs_err(e.to_string()))?;
            note(format!("nfs server {name} on {}:{NFS_PORT}", server.host));
            self.servers.insert(name.clone(), srv);
        }

        Ok(())
    }

    /// Gives each host's NFS client an identity of its own. Hosts share
    /// the kernel, and with it the UTS nodename that NFSv4.1+ builds its
    /// client owner from ("Linux NFSv4.1 <uniquifier>/<nodename>"), so two
    /// hosts mounting one server would present one client owner with two
    /// boot verifiers: the server takes each EXCHANGE_ID as the other
    /// client rebooting and drops its opens and locks. The kernel takes
    /// the uniquifier from the mounting network namespace's
    /// /sys/fs/nfs/net/nfs_client/identifier (fs/nfs/nfs4proc.c
    /// nfs4_get_uniquifier), which is what nfs-utils sets per container;
    /// `ip netns exec` mounts that namespace's own sysfs to write it. It
    /// ends with the namespace. Without the nfs module there is no NFS
    /// client to name (host-target worlds without mounts).
    pub(super) fn name_nfs_clients(&self, note: &mut dyn FnMut(String)) -> Result<(), SetupError> {
        if !Path::new(NFS_CLIENT_IDENTIFIER).exists() {
            return Ok(());
        }
        for (host, ns) in &self.netns {
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", ns.name(), "tee", NFS_CLIENT_IDENTIFIER]);
            let id = format!("stackquake-{}", ns.name());
            crate::tools::output_with(
                cmd,
                Input {
                    stdin: Some(&id),
                    place: None,
                },
            )
            .map_err(|source| SetupError::NfsClientName {
                host: host.clone(),
                source,
            })?;
            note(format!("host {host}: NFS client identifier {id}"));
        }
        Ok(())
    }

    pub(super) fn build_mounts(
        &mut self,
        s: &Plan,
        ledger: &Ledger,
        note: &mut dyn FnMut(String),
    ) -> Result<(), SetupError> {
        for m in &s.mounts {
            let server = &s.nfs_servers[&m.server];
            let addr = s.hosts[&server.host]
                .addr
                .and_then(|a| a.ipv4())
                .ok_or_else(|| SetupError::Nfs {
                    server: m.server.clone(),
                    detail: format!("host {} has no address to mount from", server.host),
                })?;
            let target = self.path(&m.at);
            std::fs::create_dir_all(&target).map_err(io(format!("create {}", target.display())))?;
            // A real server's ports are its own business: its rpcbind
            // says where NFS and MOUNT listen, and the kernel asks it when
            // no port is given, as for mount.nfs's options.
            let port = (server.kind != ServerKind::External).then_some(NFS_PORT);
            let mut data = nfs_mount_data(m.options.as_deref(), m.version, addr, port);
            let mut source = format!("{addr}:{}", m.export);
            if !m.version.is_v4()
                && let Some((dir, mountd)) = self.knfsd_target(&m.server, &m.export)
            {
                // knfsd exports the directory itself; its mountd has a port of its own.
                source = format!("{addr}:{dir}");
                data = data.replace(
                    &format!("mountport={NFS_PORT}"),
                    &format!("mountport={mountd}"),
                );
            }
            // The kernel NFS client uses the mounting task's network namespace.
            let mount_it =
                || Mount::mount(&source, &target, "nfs", MsFlags::empty(), &data, ledger);
            let mounted = match self.place(&m.host) {
                Some(ns) => ns.run(mount_it),
                None => mount_it(),
            };
            let mount = match mounted {
                Ok(mount) => mount,
                // Expected (`mount_fails`): recorded, and the run goes on.
                Err(e @ BlockError::Mount { source: errno, .. }) if m.must_fail => {
                    note(format!("mount {} refused, as expected: {e}", m.id));
                    self.refused_mounts
                        .push((m.id.clone(), errno as i32, e.to_string()));
                    continue;
                }
                Err(source) => {
                    return Err(SetupError::Block {
                        what: format!("mount {} at {}", m.id, target.display()),
                        source,
                    });
                }
            };
            note(format!(
                "mount {}: {source} at {} ({data})",
                m.id,
                target.display()
            ));
            self.nfs_mounts.insert(m.id.clone(), mount);
            self.sources
                .insert(m.id.clone(), (source.clone(), "nfs".into(), data.clone()));
        }

        Ok(())
    }
}

/// The option string for the kernel's NFS mount(2): no mount.nfs helper runs,
/// so the address and ports it would have found through the portmapper are
/// spelled out. NFSv4 has no MOUNT protocol: only its address and port.
/// Without `port` (an external server) only the address is given and the
/// kernel asks the server's rpcbind for both ports.
fn nfs_mount_data(
    options: Option<&str>,
    version: NfsVersion,
    addr: std::net::Ipv4Addr,
    port: Option<u16>,
) -> String {
    let mut parts: Vec<String> = options
        .unwrap_or("")
        .split(',')
        .filter(|o| !o.is_empty())
        .map(str::to_string)
        .collect();
    if !parts
        .iter()
        .any(|o| o.starts_with("vers=") || o.starts_with("nfsvers="))
    {
        parts.push("vers=3".into());
    }
    parts.push(format!("addr={addr}"));
    let Some(port) = port else {
        return parts.join(",");
    };
    parts.push(format!("port={port}"));
    if version.is_v4() {
        return parts.join(",");
    }
    parts.extend([
        format!("mountaddr={addr}"),
        format!("mountport={port}"),
        "mountproto=tcp".into(),
        "mountvers=3".into(),
    ]);
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nfs_mount_data_names_address_and_ports() {
        let d = nfs_mount_data(
            Some("vers=3,proto=tcp,hard"),
            NfsVersion::V3,
            "10.77.0.1".parse().unwrap(),
            Some(2049),
        );
        assert_eq!(
            d,
            "vers=3,proto=tcp,hard,addr=10.77.0.1,port=2049,mountaddr=10.77.0.1,\
             mountport=2049,mountproto=tcp,mountvers=3"
        );
        assert!(
            nfs_mount_data(
                None,
                NfsVersion::V3,
                "10.0.0.1".parse().unwrap(),
                Some(2049)
            )
            .starts_with("vers=3,")
        );
    }

    #[test]
    fn nfs4_mount_data_has_no_mount_protocol() {
        let d = nfs_mount_data(
            Some("vers=4.1,hard"),
            NfsVersion::V4(Some(1)),
            "10.77.0.1".parse().unwrap(),
            Some(2049),
        );
        assert_eq!(d, "vers=4.1,hard,addr=10.77.0.1,port=2049");
    }

    // A real server's mountd listens wherever its rpcbind says: a fixed
    // mountport=2049 would send MOUNT calls to nfsd.
    #[test]
    fn an_external_servers_ports_are_left_to_its_rpcbind() {
        let d = nfs_mount_data(
            Some("vers=3,proto=tcp,hard"),
            NfsVersion::V3,
            "192.0.2.10".parse().unwrap(),
            None,
        );
        assert_eq!(d, "vers=3,proto=tcp,hard,addr=192.0.2.10");
    }
}
