//! The typed scenario: what the YAML file says, field by field.
//!
//! Every struct denies unknown fields, and every choice is an enum, so a typo
//! is an error that names the valid spellings. Faults and matchers are
//! externally tagged (`fault: { nfs.unexport: {...} }`) because that keeps
//! serde-saphyr's line:column exact inside them; internally tagged enums
//! buffer their content and lose it.

use super::quantity::{ByteSize, Duration};
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;

/// A name that refers to something declared elsewhere in the file, kept with
/// its position so a dangling reference can be reported where it is written.
pub type Ref = Spanned<String>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub schema_version: Spanned<u32>,
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
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
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
    pub expect: Vec<Spanned<Expectation>>,
}

fn default_timeout() -> Duration {
    Duration(std::time::Duration::from_secs(120))
}

#[derive(Debug, Default, Deserialize)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KernelFeature {
    Nfs,
    Xfs,
    Loop,
    Veth,
    Netns,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Host {
    /// Address with prefix, e.g. `10.77.0.1/24`, given to the host's end of its link.
    #[serde(default)]
    pub addr: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    pub between: [Ref; 2],
    #[serde(default)]
    pub mtu: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NfsServer {
    pub host: Ref,
    /// Absent means `inproc`.
    #[serde(default)]
    pub kind: Option<Spanned<ServerKind>>,
    pub exports: Vec<Export>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Export {
    /// The path clients mount, e.g. `/export`.
    pub path: Spanned<String>,
    /// Client network allowed to mount, e.g. `10.77.0.0/24`; absent means anyone.
    #[serde(default)]
    pub clients: Option<Spanned<String>>,
    #[serde(default)]
    pub options: Vec<ExportOption>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportOption {
    Rw,
    Ro,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NfsMount {
    pub id: Spanned<String>,
    pub host: Ref,
    pub server: Ref,
    pub export: Ref,
    /// Mount point, inside the run's private root.
    pub at: Spanned<String>,
    /// Mount options as `mount -o` takes them; stackquake adds addr/port itself.
    #[serde(default)]
    pub options: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Image {
    pub id: Spanned<String>,
    pub host: Ref,
    /// The image file, inside the run's private root (it may lie on an NFS mount).
    pub file: Spanned<String>,
    pub size: ByteSize,
    pub mkfs: Mkfs,
    /// Where the loop device's filesystem is mounted.
    pub at: Spanned<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mkfs {
    Xfs,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    pub id: Spanned<String>,
    pub host: Ref,
    pub op: WorkloadOp,
    /// File the workload works on, inside the run's private root.
    pub path: Spanned<String>,
    /// Pause between operations.
    #[serde(default)]
    pub every: Duration,
    /// fsync after each write, so each acknowledged record is durable.
    #[serde(default)]
    pub fsync: bool,
    /// An operation still running after this long is indeterminate and sampled.
    #[serde(default = "default_deadline")]
    pub deadline: Duration,
    /// Bytes per record.
    #[serde(default = "default_record")]
    pub record_size: ByteSize,
}

fn default_deadline() -> Duration {
    Duration(std::time::Duration::from_secs(5))
}

fn default_record() -> ByteSize {
    ByteSize(4096)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadOp {
    /// Append checksummed records to a file.
    Append,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub id: Spanned<String>,
    /// Do nothing for this long.
    #[serde(default)]
    pub wait: Option<Duration>,
    #[serde(default)]
    pub fault: Option<Spanned<Fault>>,
    /// Heal the fault after this long; the step lasts as long.
    #[serde(default, rename = "for")]
    pub for_: Option<Duration>,
}

/// Every fault knows its own undo; the engine heals whatever is still active.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Fault {
    /// The server withdraws an export: calls on its handles answer
    /// NFS3ERR_STALE and MNT is refused. Heal: re-export, same handles.
    #[serde(rename = "nfs.unexport")]
    NfsUnexport { server: Ref, export: Ref },
    /// Force an XFS shutdown of an image's filesystem (XFS_IOC_GOINGDOWN),
    /// as a log I/O error would. Heal: none; the filesystem stays down.
    #[serde(rename = "xfs.shutdown")]
    XfsShutdown { fs: Ref },
}

impl Fault {
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::NfsUnexport { .. } => "nfs.unexport",
            Fault::XfsShutdown { .. } => "xfs.shutdown",
        }
    }
}

/// Steps a matcher looks at: from the start of the first to the end of the
/// last. Absent means the whole timeline.
pub type During = Option<Vec<Ref>>;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Expectation {
    /// Some operation of the workload failed with this errno.
    Errno {
        workload: Ref,
        errno: Spanned<String>,
        #[serde(default)]
        during: During,
    },
    /// A kernel log line matches this regular expression.
    Kmsg {
        pattern: Spanned<String>,
        #[serde(default)]
        during: During,
    },
    /// The image's filesystem is in this state when the step ends.
    FsState {
        fs: Ref,
        state: FsStateName,
        /// Step at whose end to look; absent means the end of the timeline.
        #[serde(default)]
        at: Option<Ref>,
    },
    /// The mount of this image or NFS mount is (or is not) listed in mountinfo.
    Mounted {
        mount: Ref,
        #[serde(default = "yes")]
        present: bool,
        #[serde(default)]
        at: Option<Ref>,
    },
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FsStateName {
    Ok,
    ReadOnly,
    Shutdown,
}
