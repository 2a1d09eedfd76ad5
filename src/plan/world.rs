//! The world a plan builds: hosts, links, NFS servers and mounts, loop
//! images, workloads; and the names the world gives its interfaces.

use crate::addr::Cidr;
use crate::nfs::export::Squash;
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, Default)]
pub struct Host {
    /// Address with prefix, given to the host's end of its link.
    pub addr: Option<Cidr>,
    /// The status monitor for NLM locking from this host's mounts.
    pub statd: Option<Statd>,
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

#[derive(Debug, Clone)]
pub struct Link {
    pub between: [String; 2],
    pub mtu: Option<u32>,
    /// Through the bridge of this switch namespace instead of a veth pair.
    pub switch: Option<String>,
    /// 802.1Q VLANs at both ends, outermost first.
    pub vlans: Vec<u16>,
    /// `Some(false)`: offloads off on the veth ends.
    pub offloads: Option<bool>,
    /// Per-host settings of one end.
    pub ends: BTreeMap<String, LinkEnd>,
    /// MTUs of VLAN interfaces at both ends, by VLAN id.
    pub vlan_mtu: BTreeMap<u16, u32>,
}

impl Link {
    /// The MTU of `host`'s end: its own, else the link's.
    pub fn mtu_of(&self, host: &str) -> Option<u32> {
        self.ends.get(host).and_then(|e| e.mtu).or(self.mtu)
    }

    /// The MTU of VLAN `id`'s interface at `host`'s end, if the scenario
    /// sets one: the end's own, else the link's.
    pub fn vlan_mtu_of(&self, host: &str, id: u16) -> Option<u32> {
        self.ends
            .get(host)
            .and_then(|e| e.vlan_mtu.get(&id).copied())
            .or_else(|| self.vlan_mtu.get(&id).copied())
    }

    /// The other end's host, if `host` is on this link.
    pub fn peer_of(&self, host: &str) -> Option<&str> {
        match &self.between {
            [a, b] if a == host => Some(b),
            [a, b] if b == host => Some(a),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct LinkEnd {
    pub mtu: Option<u32>,
    pub vlan_mtu: BTreeMap<u16, u32>,
}

#[derive(Debug, Clone)]
pub struct NfsServer {
    pub host: String,
    pub kind: ServerKind,
    pub exports: Vec<NfsExport>,
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

impl ServerKind {
    /// As scenarios spell it (`kind: knfsd`).
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Inproc => "inproc",
            ServerKind::Knfsd => "knfsd",
            ServerKind::External => "external",
        }
    }
}

#[derive(Debug, Clone)]
pub struct NfsExport {
    /// The path clients mount, e.g. `/export`.
    pub path: String,
    /// Who may mount it; None means anyone.
    pub clients: Option<Cidr>,
    pub read_only: bool,
    pub squash: Squash,
    /// Made in the export's directory at setup, in this order.
    pub files: Vec<SeedFile>,
}

/// A file an export holds from the start (mode 0666, root's).
#[derive(Debug, Clone)]
pub struct SeedFile {
    /// Relative to the export's directory, without `.` or `..` parts.
    pub path: String,
    pub content: SeedContent,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeedContent {
    Zeros(u64),
    Text(String),
}

/// The largest seeded file: the bytes are written into the scratch area.
pub const SEED_MAX_BYTES: u64 = 1 << 30;

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

impl ExportOption {
    /// How a list of options maps client ids; the last squash option
    /// written wins (as in exports(5)).
    pub fn squash(options: &[ExportOption]) -> Squash {
        options
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

#[derive(Debug, Clone)]
pub struct NfsMount {
    pub id: String,
    pub host: String,
    pub server: String,
    pub export: String,
    /// Mount point, inside the run's private root.
    pub at: String,
    /// `mount -o` options as written; stackquake adds addr and port.
    pub options: Option<String>,
    /// The protocol the options ask for (`vers=3` when they name none).
    pub version: NfsVersion,
    /// A `mount_fails` expectation names it: refused at setup, the run goes
    /// on without it.
    pub must_fail: bool,
}

/// The NFS protocol version a mount asks for with `vers=` (or `nfsvers=`)
/// and `minorversion=`, as the kernel's fs/nfs/fs_context.c reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NfsVersion {
    V3,
    /// NFSv4 with a minor version; `None` (plain `vers=4`) lets the client
    /// try 4.2, then 4.1, then 4.0.
    V4(Option<u8>),
}

impl NfsVersion {
    /// What `vers=` and `minorversion=` accept here. The guest kernel
    /// (Debian) has no NFSv2.
    pub const CHOICES: &str =
        "vers=3, vers=4, vers=4.0, vers=4.1, vers=4.2; minorversion=0, 1 or 2 with vers=4";

    /// Reads the version out of a mount's option string; the error says
    /// what is wrong, for the validator to place. Like the kernel, the last
    /// `vers=` wins; `minorversion=` needs `vers=4` without a minor of its own.
    pub fn from_options(options: Option<&str>) -> Result<NfsVersion, String> {
        let mut vers = None;
        let mut minor = None;
        for o in options.unwrap_or("").split(',').map(str::trim) {
            match o.split_once('=') {
                Some(("vers" | "nfsvers", v)) => vers = Some(v),
                Some(("minorversion", m)) => minor = Some(m),
                _ => {}
            }
        }
        let version = match vers {
            None | Some("3") => NfsVersion::V3,
            Some("4") => NfsVersion::V4(None),
            Some("4.0") => NfsVersion::V4(Some(0)),
            Some("4.1") => NfsVersion::V4(Some(1)),
            Some("4.2") => NfsVersion::V4(Some(2)),
            Some(v) => {
                return Err(format!("unknown NFS version `vers={v}`"));
            }
        };
        match (version, minor) {
            (_, None) => Ok(version),
            (NfsVersion::V4(None), Some(m @ ("0" | "1" | "2"))) => {
                Ok(NfsVersion::V4(Some(m.parse().expect("a digit"))))
            }
            (NfsVersion::V4(None), Some(m)) => Err(format!("unknown `minorversion={m}`")),
            (_, Some(m)) => Err(format!(
                "`minorversion={m}` goes with `vers=4` only; write `vers=4.{m}` instead"
            )),
        }
    }

    pub fn is_v4(self) -> bool {
        matches!(self, NfsVersion::V4(_))
    }
}

#[derive(Debug, Clone)]
pub struct Image {
    pub id: String,
    pub host: String,
    /// The image file, inside the run's private root.
    pub file: String,
    pub size: u64,
    pub mkfs: Mkfs,
    /// Where its filesystem is mounted.
    pub at: String,
    /// A device-mapper volume between the loop device and the filesystem.
    pub dm: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mkfs {
    Xfs,
}

#[derive(Debug, Clone)]
pub struct Workload {
    pub id: String,
    pub host: String,
    pub op: WorkloadOp,
    /// The file or directory; None for exec and mount_storm.
    pub path: Option<String>,
    pub every: Duration,
    pub fsync: bool,
    /// An op still running after this long is indeterminate and sampled.
    pub deadline: Duration,
    pub record_size: u64,
    pub count: Option<u64>,
    pub lock: Option<LockMode>,
    /// flock: how long each op holds its lock.
    pub hold: Duration,
    /// exec: the program and its arguments.
    pub command: Vec<String>,
    /// mount_storm: the mount whose source is mounted again, `parallel` at once.
    pub mount: Option<String>,
    pub parallel: u32,
    /// read: keep one descriptor across ops.
    pub hold_open: bool,
    /// The step whose beginning starts its ops; None: the timeline's start.
    pub start: Option<String>,
    /// The step whose end stops it; None: the end of the run.
    pub stop: Option<String>,
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

/// A size the way scenarios write it: `512M`, `4K`, or plain bytes.
pub fn size_text(bytes: u64) -> String {
    for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
        if bytes >= 1 << shift && bytes % (1 << shift) == 0 {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// The smallest MTU Linux accepts for IPv4 on an Ethernet-like link, and
/// the largest a veth takes.
pub const MTU_RANGE: std::ops::RangeInclusive<u32> = 68..=65535;

/// The bridge inside every switch namespace (`links[].switch`).
pub const SWITCH_BRIDGE: &str = "br0";

/// Interface names inside a host (documented in docs/scenarios.md, used by
/// the world and the faults): the veth end toward `peer` is `to-<peer>`.
pub fn veth_ifname(peer: &str) -> String {
    format!("to-{peer}")
}

/// The VLAN interface with id `id` on the link toward `peer`: `v<peer>.<id>`
/// (at most 1 + 8 + 1 + 4 = 14 bytes, under IFNAMSIZ).
pub fn vlan_ifname(peer: &str, id: u16) -> String {
    format!("v{peer}.{id}")
}

#[cfg(test)]
mod tests {
    use super::NfsVersion;

    #[test]
    fn nfs_version_from_mount_options() {
        let v = |o| NfsVersion::from_options(Some(o));
        assert_eq!(NfsVersion::from_options(None), Ok(NfsVersion::V3));
        assert_eq!(v("proto=tcp,hard"), Ok(NfsVersion::V3));
        assert_eq!(v("vers=3"), Ok(NfsVersion::V3));
        assert_eq!(v("nfsvers=4"), Ok(NfsVersion::V4(None)));
        assert_eq!(v("vers=4.0"), Ok(NfsVersion::V4(Some(0))));
        assert_eq!(v("vers=4.1,hard"), Ok(NfsVersion::V4(Some(1))));
        assert_eq!(v("vers=4.2"), Ok(NfsVersion::V4(Some(2))));
        assert_eq!(v("vers=4,minorversion=1"), Ok(NfsVersion::V4(Some(1))));
        assert_eq!(v("vers=3,vers=4.1"), Ok(NfsVersion::V4(Some(1))));
        let e = v("vers=4.3").unwrap_err();
        assert!(e.contains("vers=4.3"), "{e}");
        assert!(v("vers=2").is_err());
        assert!(
            v("vers=4,minorversion=7")
                .unwrap_err()
                .contains("minorversion=7")
        );
        assert!(v("vers=4.1,minorversion=1").unwrap_err().contains("vers=4"));
        assert!(v("minorversion=1").is_err());
    }
}
