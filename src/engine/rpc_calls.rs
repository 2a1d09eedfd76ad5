//! What each in-process NFS server saw during each step: the calls it
//! received by procedure (journal events the report tabulates) and, in the
//! output directory, its packet capture for tshark.

use super::world::World;
use crate::journal::Event;
use crate::nfs::call_counts::{self, CallKey};
use crate::nfs::pcap;
use std::collections::BTreeMap;
use std::path::Path;

type Counts = BTreeMap<CallKey, u64>;

/// Per running step, each server's counts as the step began.
#[derive(Debug, Default)]
pub struct StepCalls {
    at_begin: BTreeMap<String, BTreeMap<String, Counts>>,
}

impl StepCalls {
    pub fn began(&mut self, step: &str, world: &World) {
        let counts = world
            .nfs_servers()
            .map(|(name, srv)| (name.to_string(), srv.call_counts()))
            .collect();
        self.at_begin.insert(step.to_string(), counts);
    }

    /// One event per server: the calls it received since `step` began
    /// (none is worth recording too: a blackholed server sees nothing).
    pub fn ended(&mut self, step: &str, world: &World, t_ns: u64) -> Vec<Event> {
        let Some(before) = self.at_begin.remove(step) else {
            return Vec::new();
        };
        world
            .nfs_servers()
            .map(|(name, srv)| Event::RpcCalls {
                step: step.to_string(),
                server: name.to_string(),
                calls: call_counts::since(
                    before.get(name).unwrap_or(&Counts::new()),
                    &srv.call_counts(),
                ),
                t_ns,
            })
            .collect()
    }
}

/// Starts each in-process server's capture into `<dir>/nfs-<server>.pcap`;
/// best effort, like every artifact: a run's verdict never depends on it.
pub fn start_captures(world: &World, dir: &Path) {
    if let Err(e) = std::fs::create_dir_all(dir) {
        tracing::warn!("cannot create {}: {e}", dir.display());
        return;
    }
    for (name, srv) in world.nfs_servers() {
        let path = dir.join(pcap::capture_file(name));
        if let Err(e) = srv.start_capture(&path) {
            tracing::warn!("cannot capture server {name} to {}: {e}", path.display());
        }
    }
}
