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
pub use crate::plan::{
    DataCheck, ExportOption, KernelFeature, LockMode, Mkfs, ServerKind, Statd, Target, WorkloadOp,
};
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
    /// Probes checked while the timeline runs: the first that fails heals
    /// every fault at once and ends the run ABORTED.
    #[serde(default)]
    pub abort: Vec<AbortProbe>,
    /// When `data` expectations read the files back: `after_heal`
    /// (default: heal, grace, stop workloads, read) or `before_heal`
    /// (read as the timeline left the world, then heal).
    #[serde(default)]
    #[schemars(with = "Option<DataCheck>")]
    pub data_check: Option<Spanned<DataCheck>>,
    /// Kernel log lines matching one of these are not held against the run
    /// by the default deny-list (BUG, Oops, WARNING, lockdep, hung tasks).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub kmsg_allow: Vec<Spanned<String>>,
    /// A known failure (XFAIL/XPASS instead of FAIL/PASS).
    #[serde(default)]
    pub xfail: Option<Xfail>,
    /// Values substituted for `${name}` anywhere in the file; `--var` overrides.
    // `vars` and `matrix` are applied to the text before it is parsed
    // (load::expand_cases); they are fields so the schema lists them and
    // the parser accepts them.
    #[allow(dead_code)]
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// Named cases: one run per combination, each with its values as vars.
    #[serde(default)]
    pub matrix: BTreeMap<String, Vec<String>>,
    /// What only some `matrix:` cases require, or fail on: each rule adds
    /// its `requires` to the file's and replaces its `xfail` for the cases
    /// whose values match its `when`.
    #[serde(default)]
    pub cases: Vec<CaseRule>,
}

/// `cases: [{ when: { proto: udp }, requires: { kernel_features: [nfs_udp] } }]`
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseRule {
    /// Matrix variable → value; the rule applies to the cases with all of them.
    #[schemars(with = "BTreeMap<String, String>")]
    pub when: Spanned<BTreeMap<String, String>>,
    /// Added to the file's `requires:` for those cases.
    #[serde(default)]
    pub requires: Option<Requires>,
    /// Replaces the file's `xfail:` for those cases.
    #[serde(default)]
    pub xfail: Option<Xfail>,
}

impl CaseRule {
    /// Whether a case with these matrix values is one of the rule's.
    pub fn applies_to(&self, values: &[(String, String)]) -> bool {
        self.when
            .value
            .iter()
            .all(|(k, v)| values.iter().any(|(ck, cv)| ck == k && cv == v))
    }
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
    /// MTU of a VLAN's interface at both ends, by VLAN id, e.g.
    /// `{ 100: 1496 }`; at most its parent's MTU.
    #[serde(default)]
    #[schemars(with = "BTreeMap<u16, u32>")]
    pub vlan_mtu: BTreeMap<u16, Spanned<u32>>,
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
    /// Files put into the export at setup, before any mount or step.
    #[serde(default)]
    pub files: Vec<SeedFile>,
}

/// A file the export holds from the start: `size` bytes of zeros, the
/// text of `content`, or empty with neither. Mode 0666, owned by root, so
/// clients may write it under any squash.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SeedFile {
    /// Relative to the export's directory, e.g. `seed.bin` or `db/data`;
    /// missing parent directories are made (mode 0777).
    #[schemars(with = "String")]
    pub path: Spanned<String>,
    /// At most 1G; the bytes are written, not left as a hole.
    #[serde(default)]
    #[schemars(with = "Option<ByteSize>")]
    pub size: Option<Spanned<ByteSize>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub content: Option<Spanned<String>>,
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
    #[schemars(with = "ByteSize")]
    pub size: Spanned<ByteSize>,
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
    /// The step whose beginning lets this workload start its ops; absent
    /// means with the timeline. It is spawned and prepared during setup
    /// either way, so its first op comes within a tick of the step.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub start: Option<Ref>,
    /// The step whose end stops this workload (SIGTERM, then SIGKILL);
    /// absent means it runs until the timeline and a 1 s grace are over.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub stop: Option<Ref>,
}

/// What must stay true while the timeline runs. Exactly one of `exec`,
/// `readable` or `workload`:
/// `{ id: app, exec: { host: client, command: [curl, -fs, http://app/health] }, every: 2s, within: 5s }`,
/// `{ id: db, readable: /mnt/share/db/ibdata1, within: 3s }`,
/// `{ id: writes, workload: writer, within: 20s }`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AbortProbe {
    #[schemars(with = "String")]
    pub id: Spanned<String>,
    /// A command that must exit 0 within `within`.
    #[serde(default)]
    pub exec: Option<Exec>,
    /// A file (inside the run's root) whose first bytes must be read
    /// within `within`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub readable: Option<Spanned<String>>,
    /// A workload none of whose ops may take longer than `within`,
    /// counting one still running.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub workload: Option<Ref>,
    /// How often an `exec` or `readable` probe runs (default 1s, at least 100ms).
    #[serde(default)]
    #[schemars(with = "Option<Duration>")]
    pub every: Option<Spanned<Duration>>,
    /// The bound: no answer (or an op not done) within it fails the probe.
    #[schemars(with = "Duration")]
    pub within: Spanned<Duration>,
}

fn default_deadline() -> Duration {
    Duration(std::time::Duration::from_secs(5))
}

fn default_record() -> ByteSize {
    ByteSize(4096)
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
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KernelRange {
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub from: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub until: Option<Spanned<String>>,
}
