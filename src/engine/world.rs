//! Building a scenario's world from its description, and tearing it down in
//! the order that copes with hung I/O (architecture.md, "The world inside one
//! run"): image mounts → loop devices → NFS mounts → servers → links → netns.
//! Every object is recorded in the ledger by the layer that creates it,
//! before it exists, so `stackquake cleanup` can finish a killed run's work.

use crate::block::{self, ImageFile, LoopDevice, Mount};
use crate::fault::Targets;
use crate::journal::Event;
use crate::ledger::{Ledger, RunId};
use crate::net::{self, Netns, VethPair};
use crate::nfs::{ExportSpec, NfsServer, ServerConfig};
use crate::scenario::{ExportOption, Scenario, parse_cidr};
use nix::mount::MsFlags;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The port the in-process server listens on inside its own namespace.
const NFS_PORT: u16 = 2049;

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("host {host}: {source}")]
    Net {
        host: String,
        source: crate::net::NetError,
    },
    #[error("nfs server {server}: {detail}")]
    Nfs { server: String, detail: String },
    #[error("{what}: {source}")]
    Block {
        what: String,
        source: crate::block::BlockError,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

/// Everything a run created, owned, in creation order per kind.
#[derive(Default)]
pub struct World {
    /// The run's private root: scenario paths such as /mnt/share live below it.
    pub root: PathBuf,
    netns: BTreeMap<String, Netns>,
    links: Vec<VethPair>,
    servers: BTreeMap<String, NfsServer>,
    nfs_mounts: BTreeMap<String, Mount>,
    loops: Vec<LoopDevice>,
    images: Vec<ImageFile>,
    image_mounts: BTreeMap<String, Mount>,
}

impl Targets for World {
    fn nfs_server(&self, name: &str) -> Option<&NfsServer> {
        self.servers.get(name)
    }

    fn image_mountpoint(&self, image: &str) -> Option<&Path> {
        self.image_mounts.get(image).map(Mount::target)
    }
}

impl World {
    pub fn netns(&self, host: &str) -> Option<&Netns> {
        self.netns.get(host)
    }

    /// A scenario path (absolute, no `..`; validated) inside the private root.
    pub fn path(&self, scenario_path: &str) -> PathBuf {
        self.root.join(scenario_path.trim_start_matches('/'))
    }

    /// Where a mount id (image or NFS mount) is mounted.
    pub fn mountpoint(&self, id: &str) -> Option<&Path> {
        self.image_mounts
            .get(id)
            .or_else(|| self.nfs_mounts.get(id))
            .map(Mount::target)
    }

    /// Builds the world into `self`; on error, what was built stays in `self`
    /// for [`World::teardown`].
    pub fn build(
        &mut self,
        s: &Scenario,
        run: &RunId,
        scratch: &Path,
        ledger: &Ledger,
        events: &mut Vec<Event>,
    ) -> Result<(), SetupError> {
        let io = |what: String| move |source| SetupError::Io { what, source };
        self.root = scratch.join("root");
        std::fs::create_dir_all(&self.root)
            .map_err(io(format!("create {}", self.root.display())))?;
        let mut note = |what: String| {
            tracing::info!("{what}");
            events.push(Event::Setup { what, t_ns: 0 });
        };

        for name in s.hosts.keys() {
            let ns_name = Netns::name_for(run, name);
            let ns = Netns::create(&ns_name, ledger).map_err(|source| SetupError::Net {
                host: name.clone(),
                source,
            })?;
            ns.set_loopback_up().map_err(|source| SetupError::Net {
                host: name.clone(),
                source,
            })?;
            note(format!("host {name}: netns {ns_name}"));
            self.netns.insert(name.clone(), ns);
        }

        for link in &s.links {
            let [a, b] = [&link.between[0].value, &link.between[1].value];
            // Inside each namespace the interface is named after its peer.
            let (if_a, if_b) = (format!("to-{b}"), format!("to-{a}"));
            let pair = VethPair::create(
                (&self.netns[a], &if_a),
                (&self.netns[b], &if_b),
                link.mtu,
                ledger,
            )
            .map_err(|source| SetupError::Net {
                host: a.clone(),
                source,
            })?;
            self.links.push(pair);
            for (host, ifname) in [(a, &if_a), (b, &if_b)] {
                let ns = &self.netns[host];
                let net_err = |source| SetupError::Net {
                    host: host.clone(),
                    source,
                };
                if let Some(addr) = &s.hosts[host].addr {
                    net::add_address(ns, ifname, &addr.value).map_err(net_err)?;
                }
                net::set_up(ns, ifname).map_err(|source| SetupError::Net {
                    host: host.clone(),
                    source,
                })?;
            }
            note(format!("link {a} <-> {b} (mtu {:?})", link.mtu));
        }

        for (name, server) in &s.nfs_servers {
            let nfs_err = |detail: String| SetupError::Nfs {
                server: name.clone(),
                detail,
            };
            let mut exports = Vec::new();
            for e in &server.exports {
                let dir = scratch
                    .join(format!("server-{name}"))
                    .join(e.path.value.trim_start_matches('/'));
                std::fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
                exports.push(ExportSpec {
                    name: e.path.value.clone(),
                    dir,
                    clients: e.clients.iter().map(|c| c.value.clone()).collect(),
                    read_only: e.options.contains(&ExportOption::Ro),
                });
            }
            let ns = &self.netns[&server.host.value];
            let listener = ns
                .run(|| std::net::TcpListener::bind(("0.0.0.0", NFS_PORT)))
                .map_err(|e| nfs_err(format!("listen on port {NFS_PORT}: {e}")))?;
            let srv = NfsServer::start(ServerConfig { exports }, listener)
                .map_err(|e| nfs_err(e.to_string()))?;
            note(format!(
                "nfs server {name} on {}:{NFS_PORT}",
                server.host.value
            ));
            self.servers.insert(name.clone(), srv);
        }

        for m in &s.mounts {
            let server = &s.nfs_servers[&m.server.value];
            let addr = s.hosts[&server.host.value]
                .addr
                .as_ref()
                .and_then(|a| parse_cidr(&a.value))
                .map(|(ip, _)| ip)
                .ok_or_else(|| SetupError::Nfs {
                    server: m.server.value.clone(),
                    detail: format!("host {} has no address to mount from", server.host.value),
                })?;
            let target = self.path(&m.at.value);
            std::fs::create_dir_all(&target).map_err(io(format!("create {}", target.display())))?;
            let data = nfs_mount_data(m.options.as_ref().map(|o| o.value.as_str()), addr, NFS_PORT);
            let source = format!("{addr}:{}", m.export.value);
            // The kernel NFS client uses the mounting task's network namespace.
            let mount = self.netns[&m.host.value]
                .run(|| Mount::mount(&source, &target, "nfs", MsFlags::empty(), &data, ledger))
                .map_err(|source| SetupError::Block {
                    what: format!("mount {} at {}", m.id.value, target.display()),
                    source,
                })?;
            note(format!(
                "mount {}: {source} at {} ({data})",
                m.id.value,
                target.display()
            ));
            self.nfs_mounts.insert(m.id.value.clone(), mount);
        }

        for img in &s.images {
            let block_err = |what: String| move |source| SetupError::Block { what, source };
            let file = self.path(&img.file.value);
            if let Some(dir) = file.parent() {
                std::fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
            }
            let image = ImageFile::create(&file, img.size.0)
                .map_err(block_err(format!("image {}", img.id.value)))?;
            self.images.push(image);
            block::mkfs_xfs(&file).map_err(block_err(format!("mkfs.xfs {}", file.display())))?;
            let dev = LoopDevice::attach(&file, ledger)
                .map_err(block_err(format!("attach {}", file.display())))?;
            let target = self.path(&img.at.value);
            std::fs::create_dir_all(&target).map_err(io(format!("create {}", target.display())))?;
            let mount = Mount::mount(
                &dev.path().display().to_string(),
                &target,
                "xfs",
                MsFlags::empty(),
                "",
                ledger,
            );
            note(format!(
                "image {}: {} on {}",
                img.id.value,
                dev.name(),
                file.display()
            ));
            self.loops.push(dev);
            let mount = mount.map_err(block_err(format!("mount {}", img.id.value)))?;
            self.image_mounts.insert(img.id.value.clone(), mount);
        }
        Ok(())
    }

    /// Removes everything, in dependency order, reporting what failed.
    pub fn teardown(mut self, events: &mut Vec<Event>) {
        let mut done = |what: String, result: Result<(), String>| {
            events.push(Event::Teardown {
                what,
                error: result.err(),
            })
        };
        let unmount = |m: Mount| match m.unmount() {
            Ok(Some(step)) => Ok(format!(" ({step})")),
            Ok(None) => Ok(String::new()),
            Err(e) => Err(e.to_string()),
        };
        for (id, m) in std::mem::take(&mut self.image_mounts).into_iter().rev() {
            match unmount(m) {
                Ok(how) => done(format!("unmount image {id}{how}"), Ok(())),
                Err(e) => done(format!("unmount image {id}"), Err(e)),
            }
        }
        for dev in self.loops.drain(..).rev() {
            let name = dev.name().to_string();
            done(
                format!("detach {name}"),
                dev.detach().map(drop).map_err(|e| e.to_string()),
            );
        }
        // Image files may live on the NFS mounts: remove them while those stand.
        self.images.clear();
        for (id, m) in std::mem::take(&mut self.nfs_mounts).into_iter().rev() {
            match unmount(m) {
                Ok(how) => done(format!("unmount {id}{how}"), Ok(())),
                Err(e) => done(format!("unmount {id}"), Err(e)),
            }
        }
        for (name, srv) in std::mem::take(&mut self.servers) {
            srv.shutdown();
            done(format!("stop nfs server {name}"), Ok(()));
        }
        for link in self.links.drain(..) {
            done(
                "delete link".into(),
                link.delete().map_err(|e| e.to_string()),
            );
        }
        for (name, ns) in std::mem::take(&mut self.netns) {
            done(
                format!("delete netns of {name}"),
                ns.delete().map_err(|e| e.to_string()),
            );
        }
    }
}

/// The option string for the kernel's NFS mount(2): no mount.nfs helper runs,
/// so the address and ports it would have found through the portmapper are
/// spelled out.
fn nfs_mount_data(options: Option<&str>, addr: std::net::Ipv4Addr, port: u16) -> String {
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
    parts.extend([
        format!("addr={addr}"),
        format!("port={port}"),
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
            "10.77.0.1".parse().unwrap(),
            2049,
        );
        assert_eq!(
            d,
            "vers=3,proto=tcp,hard,addr=10.77.0.1,port=2049,mountaddr=10.77.0.1,\
             mountport=2049,mountproto=tcp,mountvers=3"
        );
        assert!(nfs_mount_data(None, "10.0.0.1".parse().unwrap(), 2049).starts_with("vers=3,"));
    }
}
