//! The typed scenario: what the YAML file says, field by field.
//!
//! Every struct denies unknown fields, and every choice is an enum, so a typo
//! is an error that names the valid spellings. Faults and matchers are
//! externally tagged (`fault: { nfs.unexport: {...} }`) because that keeps
//! serde-saphyr's line:column exact inside them; internally tagged enums
//! buffer their content and lose it.
//!
//! The same types give the JSON Schema (`stackquake schema`, schema.rs), so
//! doc comments here are what editors show. For a new type or field:
//! - derive `JsonSchema` next to `Deserialize` (serde's renames, defaults and
//!   `deny_unknown_fields` carry over by themselves);
//! - a field whose type mentions `Spanned<…>`, `Ref` or `During` gets
//!   `#[schemars(with = "…")]` naming the type with `Spanned<X>` written as
//!   `X`, `Ref` as `String` and `During` as `Option<Vec<String>>`:
//!   `Option<Spanned<u16>>` → `with = "Option<u16>"` (serde-saphyr's
//!   `Spanned` is a foreign type, so it cannot implement `JsonSchema`);
//! - a type with a hand-written `Deserialize` (like `Duration`) gets a
//!   hand-written `JsonSchema` in schema.rs.

pub use super::matchers::*;
pub use super::network::*;
use super::quantity::{ByteSize, Duration};
pub use super::steps::*;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;

/// A name that refers to something declared elsewhere in the file, kept with
/// its position so a dangling reference can be reported where it is written.
pub type Ref = Spanned<String>;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The version of this format; 1 is the only one.
    #[schemars(with = "u32", range(min = 1, max = 1))]
    pub schema_version: Spanned<u32>,
    #[schemars(with = "String")]
    pub id: Spanned<String>,
    pub title: String,
    /// The incident this scenario reproduces, e.g. `incidents/…`.
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub requires: Requires,
    /// Wall-clock limit for the whole run, setup and teardown included.
    #[serde(
        default = "default_timeout",
        deserialize_with = "super::quantity::nonzero"
    )]
    pub timeout: Duration,
    /// Machine-wide kernel settings: set before the world is built and put
    /// back after it. They are global, not per host.
    #[serde(default)]
    pub kernel: KernelSettings,
    #[serde(default)]
    pub hosts: BTreeMap<String, Host>,
    #[serde(default)]
    pub links: Vec<Link>,
    #[serde(default)]
    pub nfs_servers: BTreeMap<String, NfsServer>,
    #[serde(default)]
    pub mounts: Vec<NfsMount>,
    #[serde(default)]
    pub images: Vec<Image>,
    #[serde(default)]
    pub workloads: Vec<Workload>,
    pub steps: Vec<Step>,
    #[serde(default)]
    #[schemars(with = "Vec<Expectation>")]
    pub expect: Vec<Spanned<Expectation>>,
    /// Kernel log lines matching one of these are not held against the run
    /// by the default deny-list (BUG, Oops, WARNING, lockdep, hung tasks).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub kmsg_allow: Vec<Spanned<String>>,
    /// A known failure (XFAIL/XPASS instead of FAIL/PASS).
    #[serde(default)]
    pub xfail: Option<Xfail>,
    /// Values substituted for `${name}` anywhere in the file; `--var` overrides.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// Named cases: one run per combination, each with its values as vars.
    #[serde(default)]
    pub matrix: BTreeMap<String, Vec<String>>,
}

fn default_timeout() -> Duration {
    Duration(std::time::Duration::from_secs(120))
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Requires {
    /// Where the scenario may run; empty means anywhere.
    #[serde(default)]
    pub target: Vec<Target>,
    #[serde(default)]
    pub kernel_features: Vec<KernelFeature>,
    /// Programs that must be on PATH, e.g. `mkfs.xfs`.
    #[serde(default)]
    pub tools: Vec<String>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KernelSettings {
    /// lockd's RPC timeout, `/proc/sys/fs/nfs/nlm_timeout`: whole seconds,
    /// 3s to 20s (the kernel's default is 10s). An NLM client logs "lockd:
    /// server … not responding" after 6 × this. lockd reads it when it
    /// starts, so the run refuses it while some other lockd is running.
    #[serde(default)]
    #[schemars(with = "Option<Duration>")]
    pub nlm_timeout: Option<Spanned<Duration>>,
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
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Host {
    /// Address with prefix, e.g. `10.77.0.1/24`, given to the host's end of its link.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub addr: Option<Spanned<String>>,
    /// The NFS status monitor on this host, for NLM locking from its mounts
    /// (absent: nothing on port 111, so mounts need `nolock`).
    #[serde(default)]
    #[schemars(with = "Option<Statd>")]
    pub statd: Option<Spanned<Statd>>,
}

/// Who answers NSM (100024) on a client host, and who is its portmapper on
/// 127.0.0.1:111 where the kernel's lockd registers NLM and asks for statd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Statd {
    /// nfs-common's `rpc.statd` with `rpcbind`, in the host's namespace
    /// with private state.
    System,
    /// stackquake's own portmapper and status monitor.
    Stackquake,
    /// A portmapper but no status monitor: the incident's disabled
    /// rpc-statd.service.
    None,
}

impl Statd {
    pub fn name(self) -> &'static str {
        match self {
            Statd::System => "system",
            Statd::Stackquake => "stackquake",
            Statd::None => "none",
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Link {
    #[schemars(with = "[String; 2]")]
    pub between: [Ref; 2],
    #[serde(default)]
    pub mtu: Option<u32>,
    /// Through a bridge in a "switch" namespace of this name (links naming
    /// the same switch share its bridge) instead of a direct veth pair.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub switch: Option<Spanned<String>>,
    /// 802.1Q VLANs at both ends, outermost first: `[20, 100]` is VLAN 100
    /// stacked on VLAN 20 on the veth. The host's address goes on the last.
    #[serde(default)]
    #[schemars(with = "Vec<u16>")]
    pub vlans: Vec<Spanned<u16>>,
    /// `false` turns TSO/GSO/GRO, checksum and VLAN tx/rx offload off on the
    /// veth ends, so frames on the wire have their real size and inline tags.
    #[serde(default)]
    pub offloads: Option<bool>,
    /// Settings of one host's end, e.g. `ends: { client: { mtu: 1400 } }`.
    #[serde(default)]
    pub ends: BTreeMap<String, LinkEnd>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NfsServer {
    #[schemars(with = "String")]
    pub host: Ref,
    /// Absent means `inproc`.
    #[serde(default)]
    #[schemars(with = "Option<ServerKind>")]
    pub kind: Option<Spanned<ServerKind>>,
    pub exports: Vec<Export>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ServerKind {
    /// stackquake's own server, with a fault hook in front of every call.
    #[default]
    Inproc,
    /// The guest kernel's nfsd.
    Knfsd,
    /// A real server elsewhere (staging rehearsals).
    External,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Export {
    /// The path clients mount, e.g. `/export`.
    #[schemars(with = "String")]
    pub path: Spanned<String>,
    /// Client network allowed to mount, e.g. `10.77.0.0/24`; absent means anyone.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub clients: Option<Spanned<String>>,
    #[serde(default)]
    pub options: Vec<ExportOption>,
}

/// exports(5) options. Squashing is knfsd's: `root_squash` unless the
/// export says `no_root_squash` (a client's root then acts as root) or
/// `all_squash` (every client acts as nobody).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExportOption {
    Rw,
    Ro,
    RootSquash,
    NoRootSquash,
    AllSquash,
}

impl Export {
    /// How the export maps client ids; the last squash option written wins
    /// (as in exports(5)).
    pub fn squash(&self) -> crate::nfs::export::Squash {
        use crate::nfs::export::Squash;
        self.options
            .iter()
            .rev()
            .find_map(|o| match o {
                ExportOption::RootSquash => Some(Squash::Root),
                ExportOption::NoRootSquash => Some(Squash::NoRootSquash),
                ExportOption::AllSquash => Some(Squash::All),
                ExportOption::Rw | ExportOption::Ro => None,
            })
            .unwrap_or_default()
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NfsMount {
    #[schemars(with = "String")]
    pub id: Spanned<String>,
    #[schemars(with = "String")]
    pub host: Ref,
    #[schemars(with = "String")]
    pub server: Ref,
    #[schemars(with = "String")]
    pub export: Ref,
    /// Mount point, inside the run's private root.
    #[schemars(with = "String")]
    pub at: Spanned<String>,
    /// Mount options as `mount -o` takes them; stackquake adds addr/port itself.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub options: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Image {
    #[schemars(with = "String")]
    pub id: Spanned<String>,
    #[schemars(with = "String")]
    pub host: Ref,
    /// The image file, inside the run's private root (it may lie on an NFS mount).
    #[schemars(with = "String")]
    pub file: Spanned<String>,
    pub size: ByteSize,
    pub mkfs: Mkfs,
    /// Where the loop device's filesystem is mounted.
    #[schemars(with = "String")]
    pub at: Spanned<String>,
    /// Put a device-mapper volume (linear, the whole loop device) between
    /// the loop device and the filesystem, so `block.*` faults can swap its
    /// table under the mount. Needs dm-mod: the vm target.
    #[serde(default)]
    pub dm: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mkfs {
    Xfs,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    #[schemars(with = "String")]
    pub id: Spanned<String>,
    #[schemars(with = "String")]
    pub host: Ref,
    #[schemars(with = "WorkloadOp")]
    pub op: Spanned<WorkloadOp>,
    /// File or directory the workload works on, inside the run's private
    /// root; every op but `exec` and `mount_storm` needs one.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub path: Option<Spanned<String>>,
    /// Pause between operations, at least 1ms; absent means none (bound
    /// such a workload with `count`).
    #[serde(default, deserialize_with = "super::quantity::at_least_1ms")]
    pub every: Duration,
    /// fsync after each write, so each acknowledged record is durable.
    #[serde(default)]
    pub fsync: bool,
    /// An operation still running after this long is indeterminate and sampled.
    #[serde(
        default = "default_deadline",
        deserialize_with = "super::quantity::nonzero"
    )]
    pub deadline: Duration,
    /// Bytes per record (append, write, read).
    #[serde(default = "default_record")]
    pub record_size: ByteSize,
    /// Stop after this many operations; absent means until the run ends.
    #[serde(default)]
    pub count: Option<u64>,
    /// flock: the lock each op takes (and then releases with LOCK_UN).
    #[serde(default)]
    pub lock: Option<LockMode>,
    /// flock: how long each op holds its lock before releasing it.
    #[serde(default)]
    pub hold: Option<Duration>,
    /// exec: the program and its arguments, run in the host's namespace.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// mount_storm: the NFS mount or image whose source is mounted again.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub mount: Option<Ref>,
    /// mount_storm: how many mounts each op starts at once.
    #[serde(default)]
    pub parallel: Option<u32>,
    /// read: keep the file open across ops and re-read it through that one
    /// descriptor (a running VM and its disk image), instead of opening it
    /// anew each op.
    #[serde(default)]
    pub hold_open: bool,
}

fn default_deadline() -> Duration {
    Duration(std::time::Duration::from_secs(5))
}

fn default_record() -> ByteSize {
    ByteSize(4096)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkloadOp {
    /// Append checksummed records to a file.
    Append,
    /// Write checksummed records in place, record `seq` at offset `seq × size`.
    Write,
    /// Read the file from the start, `record_size` at a time.
    Read,
    /// stat(2) the path.
    Stat,
    /// List the directory.
    Readdir,
    /// Open the file and flock(2) it (`lock: sh|ex`), hold, unlock.
    Flock,
    /// Run `command`; a non-zero exit is a failed op.
    Exec,
    /// Mount `mount`'s source `parallel` times at once, then unmount all.
    MountStorm,
}

impl WorkloadOp {
    pub fn name(self) -> &'static str {
        match self {
            WorkloadOp::Append => "append",
            WorkloadOp::Write => "write",
            WorkloadOp::Read => "read",
            WorkloadOp::Stat => "stat",
            WorkloadOp::Readdir => "readdir",
            WorkloadOp::Flock => "flock",
            WorkloadOp::Exec => "exec",
            WorkloadOp::MountStorm => "mount_storm",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LockMode {
    /// LOCK_SH
    Sh,
    /// LOCK_EX
    Ex,
}

/// A known failure: the verdict becomes XFAIL when the scenario fails (and
/// XPASS when it passes) on kernels in the range.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Xfail {
    pub reason: String,
    /// Where the bug is tracked.
    #[serde(default)]
    pub link: Option<String>,
    /// Kernels the failure is known on; absent means every kernel.
    #[serde(default)]
    pub kernel: Option<KernelRange>,
}

/// `from` inclusive, `until` exclusive, compared numerically part by part
/// (`6.1` ≤ `6.1.0-56-amd64` < `6.10`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KernelRange {
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub from: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub until: Option<Spanned<String>>,
}
