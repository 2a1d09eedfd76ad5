//! The validated plan: what a run does, with every reference resolved,
//! every address parsed and every choice typed.
//!
//! `scenario::load` is the only way to make one (it validates the YAML
//! model, then lowers it here); the engine, the faults, the matchers and
//! the commands read nothing else. So a plan is known good: code below it
//! indexes by name without checking and never re-parses a string.

mod abort;
mod expect;
mod fault;
mod staging;
mod steps;
mod world;

pub use abort::{AbortProbe, ProbeCheck};
pub use expect::{
    DataCheck, Edge, EventRef, Expectation, FsStateName, OpEvent, TaskState, Verify, Window,
};
pub use fault::{Daemon, Fault, LockDownMode, NetLink};
pub use staging::Cut;
pub use steps::{Action, Step};
pub use world::{
    ExportOption, Host, Image, Link, LinkEnd, LockMode, MTU_RANGE, Mkfs, NfsExport, NfsMount,
    NfsServer, NfsVersion, SEED_MAX_BYTES, SWITCH_BRIDGE, SeedContent, SeedFile, ServerKind, Statd,
    Workload, WorkloadOp, size_text, veth_ifname, vlan_ifname,
};

use regex::Regex;
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Plan {
    pub id: String,
    pub title: String,
    pub source: Option<String>,
    pub tags: Vec<String>,
    pub requires: Requires,
    /// Wall-clock limit for the whole run, setup and teardown included.
    pub timeout: Duration,
    /// lockd's RPC timeout (`/proc/sys/fs/nfs/nlm_timeout`), whole seconds.
    pub nlm_timeout: Option<Duration>,
    pub hosts: BTreeMap<String, Host>,
    pub links: Vec<Link>,
    pub nfs_servers: BTreeMap<String, NfsServer>,
    pub mounts: Vec<NfsMount>,
    pub images: Vec<Image>,
    pub workloads: Vec<Workload>,
    /// Every step, groups before their members, in the order written.
    pub steps: Vec<Step>,
    pub expect: Vec<Expectation>,
    /// Checked while the timeline runs; the first to fail aborts the run.
    pub abort: Vec<AbortProbe>,
    /// When `data` expectations read files back.
    pub data_check: DataCheck,
    /// Kernel log lines the deny-list lets pass.
    pub kmsg_allow: Vec<Regex>,
    pub xfail: Option<Xfail>,
}

impl Plan {
    pub fn workload(&self, id: &str) -> Option<&Workload> {
        self.workloads.iter().find(|w| w.id == id)
    }

    /// The hosts in whose namespaces a `net.block` or `net.reject` step
    /// adds a firewall rule, each once.
    pub fn cut_hosts(&self) -> std::collections::BTreeSet<&str> {
        self.steps
            .iter()
            .filter_map(|step| match &step.action {
                Action::Fault {
                    fault: Fault::NetCut { host, .. },
                    ..
                } => Some(host.as_str()),
                _ => None,
            })
            .collect()
    }
}

#[derive(Debug, Clone, Default)]
pub struct Requires {
    /// Where the scenario may run; empty means anywhere.
    pub targets: Vec<Target>,
    /// What the scenario asks for and what its world and faults imply (a
    /// VLAN needs 802.1Q, an image on dm needs device-mapper…).
    pub kernel_features: Vec<KernelFeature>,
    /// Programs that must be on PATH.
    pub tools: Vec<String>,
}

/// A known failure: XFAIL/XPASS instead of FAIL/PASS on kernels in range.
#[derive(Debug, Clone)]
pub struct Xfail {
    pub reason: String,
    pub link: Option<String>,
    pub kernel: KernelRange,
}

impl Xfail {
    pub fn covers(&self, kernel: &KernelVersion) -> bool {
        self.kernel.covers(kernel)
    }
}

/// Kernels something holds on: `from` inclusive, `until` exclusive; an
/// absent bound is open (the default range is every kernel).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelRange {
    pub from: Option<KernelVersion>,
    pub until: Option<KernelVersion>,
}

impl KernelRange {
    pub fn covers(&self, kernel: &KernelVersion) -> bool {
        self.from.as_ref().is_none_or(|f| kernel >= f)
            && self.until.as_ref().is_none_or(|u| kernel < u)
    }

    pub fn is_every_kernel(&self) -> bool {
        self.from.is_none() && self.until.is_none()
    }
}

impl std::fmt::Display for KernelRange {
    /// "6.12 and later", "before 6.12", "6.1 up to 6.12".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.from, &self.until) {
            (None, None) => write!(f, "every kernel"),
            (Some(a), None) => write!(f, "kernel {a} and later"),
            (None, Some(b)) => write!(f, "kernels before {b}"),
            (Some(a), Some(b)) => write!(f, "kernels {a} up to {b}"),
        }
    }
}

/// A kernel release's leading numbers, compared part by part
/// (`6.1` ≤ `6.1.0-56-amd64` < `6.10`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelVersion(pub Vec<u64>);

impl std::fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u64::to_string).collect();
        f.write_str(&parts.join("."))
    }
}

impl KernelVersion {
    /// The numbers of `6.1.0-56-amd64`: [6, 1, 0]; empty if it has none.
    pub fn of(release: &str) -> KernelVersion {
        KernelVersion(
            release
                .split(|ch: char| !ch.is_ascii_digit() && ch != '.')
                .next()
                .unwrap_or("")
                .split('.')
                .map_while(|p| p.parse().ok())
                .collect(),
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    Vm,
    Host,
    Staging,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Target::Vm => "vm",
            Target::Host => "host",
            Target::Staging => "staging",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum KernelFeature {
    Nfs,
    Xfs,
    Loop,
    Veth,
    Netns,
    Nfsd,
    Bridge,
    /// 802.1Q (module 8021q).
    Vlan,
    /// The netem qdisc (module sch_netem).
    Netem,
    /// device-mapper (module dm_mod).
    Dm,
    Nftables,
    Fuse,
    /// NFS over UDP (`proto=udp`): the NFS client without
    /// CONFIG_NFS_DISABLE_UDP_SUPPORT, which Debian's kernels set.
    #[serde(rename = "nfs_udp")]
    NfsUdp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions_compare_part_by_part() {
        let v = KernelVersion::of;
        assert!(v("6.1") <= v("6.1.0-56-amd64"));
        assert!(v("6.1.0-56-amd64") < v("6.10"));
        assert!(v("6.9.12") < v("6.10"));
        assert_eq!(v("rc-kernel").0, Vec::<u64>::new());
    }
}
