//! Building a scenario's world from its description, and tearing it down in
//! the order that copes with hung I/O (architecture.md, "The world inside one
//! run"): image mounts → loop devices → NFS mounts → servers → links → netns.
//! On `target: staging` there are no namespaces or links to build
//! (`staging`): the client is where stackquake runs.
//! Every object is recorded in the ledger by the layer that creates it,
//! before it exists, so `stackquake cleanup` can finish a killed run's work.

mod dm;
mod images;
mod kernel;
mod knfsd;
mod locking;
mod net;
mod nfs;
mod seed;
mod staging;

use crate::block::{DmVolume, ImageFile, LoopDevice, Mount};
use crate::fault::{FaultError, NetGuards, Targets};
use crate::journal::Event;
use crate::ledger::{Ledger, RunId};
use crate::net::{Firewall, Netns, VethPair};
use crate::nfs::NfsServer;
use crate::plan::{Plan, Target};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// An error for a failed filesystem call on `what`.
fn io(what: String) -> impl FnOnce(std::io::Error) -> SetupError {
    move |source| SetupError::Io { what, source }
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("host {host}: {source}")]
    Net {
        host: String,
        source: crate::net::NetError,
    },
    #[error("nfs server {server}: {detail}")]
    Nfs { server: String, detail: String },
    #[error("host {host}: cannot name its NFS client: {source}")]
    NfsClientName {
        host: String,
        source: crate::tools::CommandError,
    },
    #[error("{what}: {source}")]
    Block {
        what: String,
        source: crate::block::BlockError,
    },
    #[error("kernel.{setting}: {detail}")]
    Kernel { setting: String, detail: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

/// What teardown did, object by object, as journal events: the error of a
/// removal that failed is kept as its text (the journal is what reports
/// and `cleanup` hints read).
pub(super) struct TeardownLog<'e> {
    events: &'e mut Vec<Event>,
}

impl TeardownLog<'_> {
    pub(super) fn record<E: std::fmt::Display>(&mut self, what: String, result: Result<(), E>) {
        self.events.push(Event::Teardown {
            what,
            error: result.err().map(|e| e.to_string()),
        });
    }

    pub(super) fn done(&mut self, what: String) {
        self.record(what, Ok::<(), std::convert::Infallible>(()));
    }
}

/// Everything a run created, owned, in creation order per kind.
#[derive(Default)]
pub struct World {
    /// The run's private root: scenario paths such as /mnt/share live below it.
    pub root: PathBuf,
    netns: BTreeMap<String, Netns>,
    links: Vec<VethPair>,
    /// Switches, VLANs, firewalls and network fault guards.
    net: net::NetParts,
    servers: BTreeMap<String, NfsServer>,
    nfs_mounts: BTreeMap<String, Mount>,
    loops: Vec<LoopDevice>,
    /// dm volumes between an image's loop device and its filesystem, by image.
    dm_volumes: BTreeMap<String, std::sync::Mutex<DmVolume>>,
    images: Vec<ImageFile>,
    image_mounts: BTreeMap<String, Mount>,
    /// What each mount id mounted: source, filesystem type, options.
    sources: BTreeMap<String, (String, String, String)>,
    /// Mounts a `mount_fails` expectation names that setup saw refused:
    /// id, errno, the refusal.
    refused_mounts: Vec<(String, i32, String)>,
    /// Each host's status monitor (`hosts.<h>.statd`).
    statds: BTreeMap<String, locking::ClientStatd>,
    /// `kind: knfsd` servers.
    knfsds: BTreeMap<String, knfsd::KnfsdServer>,
    /// `kernel:` settings changed for the run, in the order they were set.
    kernel: Vec<kernel::KernelSetting>,
    /// A staging rehearsal's client and its expiring firewall.
    staging: staging::StagingParts,
}

impl World {
    /// The in-process NFS servers, by name.
    pub fn nfs_servers(&self) -> impl Iterator<Item = (&str, &NfsServer)> {
        self.servers.iter().map(|(n, s)| (n.as_str(), s))
    }
}

impl Targets for World {
    fn nfs_server(&self, name: &str) -> Option<&NfsServer> {
        self.servers.get(name)
    }

    fn knfsd(&self, name: &str) -> Option<&dyn crate::fault::KernelNfsd> {
        self.knfsds
            .get(name)
            .map(|k| k as &dyn crate::fault::KernelNfsd)
    }

    fn image_mountpoint(&self, image: &str) -> Option<&Path> {
        self.image_mounts.get(image).map(Mount::target)
    }

    fn host_netns(&self, host: &str) -> Option<&Netns> {
        self.netns.get(host)
    }

    fn link_iface(&self, host: &str, peer: &str, vlan: Option<u16>) -> Option<String> {
        self.link_iface_of(host, peer, vlan)
    }

    fn firewall(&self, host: &str) -> Result<Arc<Mutex<Firewall>>, FaultError> {
        self.firewall_of(host)
    }

    fn expiring_firewall(&self, host: &str) -> Option<&crate::net::ExpiringFirewall> {
        self.expiring_firewall_of(host)
    }

    fn net_guards(&self) -> Option<MutexGuard<'_, NetGuards>> {
        Some(self.net_guards_of())
    }

    fn dm_volume(&self, image: &str) -> Option<&std::sync::Mutex<DmVolume>> {
        self.dm_volumes.get(image)
    }

    fn host_daemons(&self, host: &str) -> Option<&dyn crate::fault::HostDaemons> {
        if let Some(client) = self.staging_client(host) {
            return Some(client);
        }
        self.host_statd(host)
            .map(|s| s as &dyn crate::fault::HostDaemons)
    }
}

impl World {
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

    /// The source, filesystem type and options mount `id` was mounted with.
    pub fn mount_source(&self, id: &str) -> Option<(String, String, String)> {
        self.sources.get(id).cloned()
    }

    /// Builds the world into `self`; on error, what was built stays in `self`
    /// for [`World::teardown`]. On `target` staging, hosts and links are
    /// not built: the client is the namespace stackquake runs in.
    pub fn build(
        &mut self,
        s: &Plan,
        target: Target,
        run: &RunId,
        scratch: &Path,
        ledger: &Ledger,
        events: &mut Vec<Event>,
    ) -> Result<(), SetupError> {
        self.root = scratch.join("root");
        std::fs::create_dir_all(&self.root)
            .map_err(io(format!("create {}", self.root.display())))?;
        let mut note = |what: String| {
            tracing::info!("{what}");
            events.push(Event::Setup { what, t_ns: 0 });
        };

        self.build_kernel(s, ledger, &mut note)?;
        if target == Target::Staging {
            // The client is this machine, with its own NFS identity.
            self.build_staging(s, run, ledger, &mut note)?;
        } else {
            self.build_hosts(s, run, ledger, &mut note)?;
            self.name_nfs_clients(&mut note)?;
            self.build_links(s, ledger, &mut note)?;
            self.build_peer_routes(s, &mut note)?;
            self.build_firewalls(s, &mut note)?;
        }
        self.build_servers(s, scratch, &mut note)?;
        self.build_knfsds(s, scratch, ledger, &mut note)?;
        self.build_statds(s, ledger, &mut note)?;
        self.build_mounts(s, ledger, &mut note)?;
        self.build_images(s, ledger, &mut note)?;
        for (mount, errno, error) in &self.refused_mounts {
            events.push(Event::MountRefused {
                mount: mount.clone(),
                errno: *errno,
                error: error.clone(),
            });
        }
        Ok(())
    }

    /// Removes everything, in dependency order, reporting what failed.
    pub fn teardown(mut self, events: &mut Vec<Event>) {
        let mut log = TeardownLog { events };
        let unmount = |m: Mount| match m.unmount() {
            Ok(Some(step)) => Ok(format!(" ({step})")),
            Ok(None) => Ok(String::new()),
            Err(e) => Err(e),
        };
        self.teardown_staging(&mut log);
        for (id, m) in std::mem::take(&mut self.image_mounts).into_iter().rev() {
            match unmount(m) {
                Ok(how) => log.done(format!("unmount image {id}{how}")),
                Err(e) => log.record(format!("unmount image {id}"), Err(e)),
            }
        }
        self.teardown_dm_volumes(&mut log);
        for dev in self.loops.drain(..).rev() {
            let name = dev.name().to_string();
            log.record(format!("detach {name}"), dev.detach().map(drop));
        }
        // Image files may live on the NFS mounts: remove them while those stand.
        self.images.clear();
        self.heal_statds();
        for (id, m) in std::mem::take(&mut self.nfs_mounts).into_iter().rev() {
            match unmount(m) {
                Ok(how) => log.done(format!("unmount {id}{how}")),
                Err(e) => log.record(format!("unmount {id}"), Err(e)),
            }
        }
        self.stop_statds(&mut log);
        self.stop_knfsds(&mut log);
        for (name, srv) in std::mem::take(&mut self.servers) {
            srv.shutdown();
            log.done(format!("stop nfs server {name}"));
        }
        self.teardown_net_before_links(&mut log);
        for link in self.links.drain(..) {
            log.record("delete link".into(), link.delete());
        }
        self.teardown_switches(&mut log);
        for (name, ns) in std::mem::take(&mut self.netns) {
            log.record(format!("delete netns of {name}"), ns.delete());
        }
        self.restore_kernel(&mut log);
    }
}
