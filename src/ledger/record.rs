//! The ledger's line format (JSON lines) and its tolerant parser.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// First line of every ledger: who owns it. `pid_starttime` (field 22 of
/// /proc/<pid>/stat) makes "is the owner still alive" immune to pid reuse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunHeader {
    pub run_id: String,
    pub pid: u32,
    pub pid_starttime: u64,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub scenario: PathBuf,
}

/// One kernel (or filesystem) object a run creates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LedgerObject {
    Netns {
        name: String,
    },
    /// One end of a veth pair; deleting it deletes its peer.
    Veth {
        netns: String,
        ifname: String,
    },
    /// The device number is unknown until the kernel hands one out, so the
    /// backing file identifies the device (via /sys/block/loop*/loop/backing_file).
    Loop {
        backing_file: PathBuf,
        device: Option<PathBuf>,
    },
    Mount {
        target: PathBuf,
    },
    NftTable {
        /// None = the host's namespace.
        netns: Option<String>,
        family: String,
        name: String,
    },
    /// An iptables chain `sq-<run>` (IPv4 and IPv6) with its jumps from
    /// INPUT, OUTPUT and FORWARD: the firewall where nft is missing.
    IptablesChain {
        /// None = the host's namespace.
        netns: Option<String>,
        chain: String,
    },
    /// A link other than a veth (bridge, VLAN) inside a run's namespace.
    Link {
        netns: String,
        ifname: String,
    },
    /// A device-mapper device, by its dm name (/dev/mapper/<name>).
    DmDevice {
        name: String,
    },
    Process {
        pid: u32,
        starttime: u64,
    },
    TempDir {
        path: PathBuf,
    },
    /// A global kernel setting (a /proc/sys file) the run changed, with the
    /// value to put back.
    Sysctl {
        path: PathBuf,
        restore: String,
    },
}

impl LedgerObject {
    /// What kind of object this is, in words (counts in warnings).
    pub fn kind(&self) -> &'static str {
        match self {
            LedgerObject::Netns { .. } => "netns",
            LedgerObject::Veth { .. } => "veth",
            LedgerObject::Loop { .. } => "loop device",
            LedgerObject::Mount { .. } => "mount",
            LedgerObject::NftTable { .. } => "nft table",
            LedgerObject::IptablesChain { .. } => "iptables chain",
            LedgerObject::Link { .. } => "link",
            LedgerObject::DmDevice { .. } => "dm device",
            LedgerObject::Process { .. } => "process",
            LedgerObject::TempDir { .. } => "temp dir",
            LedgerObject::Sysctl { .. } => "kernel setting",
        }
    }
}

impl fmt::Display for LedgerObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LedgerObject::Netns { name } => write!(f, "netns {name}"),
            LedgerObject::Veth { netns, ifname } => write!(f, "veth {ifname} in netns {netns}"),
            LedgerObject::Loop {
                backing_file,
                device,
            } => match device {
                Some(d) => write!(
                    f,
                    "loop {} backed by {}",
                    d.display(),
                    backing_file.display()
                ),
                None => write!(f, "loop backed by {}", backing_file.display()),
            },
            LedgerObject::Mount { target } => write!(f, "mount at {}", target.display()),
            LedgerObject::NftTable {
                netns,
                family,
                name,
            } => match netns {
                Some(ns) => write!(f, "nft table {family} {name} in netns {ns}"),
                None => write!(f, "nft table {family} {name} on the host"),
            },
            LedgerObject::IptablesChain { netns, chain } => match netns {
                Some(ns) => write!(f, "iptables chain {chain} in netns {ns}"),
                None => write!(f, "iptables chain {chain} on the host"),
            },
            LedgerObject::Link { netns, ifname } => write!(f, "link {ifname} in netns {netns}"),
            LedgerObject::DmDevice { name } => write!(f, "dm device {name}"),
            LedgerObject::Process { pid, starttime } => {
                write!(f, "process {pid} (start time {starttime})")
            }
            LedgerObject::TempDir { path } => write!(f, "temp dir {}", path.display()),
            LedgerObject::Sysctl { path, restore } => {
                write!(f, "setting {} (was {restore})", path.display())
            }
        }
    }
}

/// One line of a ledger file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case", deny_unknown_fields)]
pub enum Record {
    Header(RunHeader),
    /// Written and fsynced before the object is created.
    Create {
        id: u64,
        object: LedgerObject,
    },
    /// Replaces what is known about an object (e.g. the loop device number).
    Update {
        id: u64,
        object: LedgerObject,
    },
    /// The object was removed by its owner.
    Done {
        id: u64,
    },
}

/// An object still owed a cleanup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: u64,
    pub object: LedgerObject,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedLedger {
    pub header: RunHeader,
    /// Objects without a Done record, in creation order.
    pub pending: Vec<Entry>,
    /// Lines that could not be read (e.g. torn by a crash mid-write).
    pub skipped_lines: Vec<(usize, String)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("ledger is empty")]
    Empty,
    #[error("first line is not a run header: {0}")]
    NoHeader(String),
}

/// Parses a ledger. Only a bad header is fatal: a line torn by a SIGKILL or
/// written by a newer version is skipped and listed, so cleanup still undoes
/// everything it can read.
pub fn parse(text: &str) -> Result<ParsedLedger, ParseError> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, first) = lines.next().ok_or(ParseError::Empty)?;
    let header = match serde_json::from_str::<Record>(first) {
        Ok(Record::Header(h)) => h,
        Ok(other) => return Err(ParseError::NoHeader(format!("{other:?}"))),
        Err(e) => return Err(ParseError::NoHeader(e.to_string())),
    };
    let mut pending: Vec<Entry> = Vec::new();
    let mut skipped_lines = Vec::new();
    for (n, line) in lines {
        match serde_json::from_str::<Record>(line) {
            Ok(Record::Create { id, object }) => pending.push(Entry { id, object }),
            Ok(Record::Update { id, object }) => {
                if let Some(e) = pending.iter_mut().find(|e| e.id == id) {
                    e.object = object;
                }
            }
            Ok(Record::Done { id }) => pending.retain(|e| e.id != id),
            Ok(Record::Header(_)) => skipped_lines.push((n + 1, "second header".to_string())),
            Err(e) => skipped_lines.push((n + 1, e.to_string())),
        }
    }
    Ok(ParsedLedger {
        header,
        pending,
        skipped_lines,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = r#"{"record":"header","run_id":"0t3k9xa7","pid":42,"pid_starttime":1234,"started_at":"2025-11-21T19:53:00Z","scenario":"s.yaml"}"#;

    #[test]
    fn done_and_update_records_apply_in_order() {
        let text = format!(
            "{HEADER}\n\
             {{\"record\":\"create\",\"id\":1,\"object\":{{\"kind\":\"netns\",\"name\":\"sq-0t3k9xa7-a\"}}}}\n\
             {{\"record\":\"create\",\"id\":2,\"object\":{{\"kind\":\"loop\",\"backing_file\":\"/x/img\",\"device\":null}}}}\n\
             {{\"record\":\"update\",\"id\":2,\"object\":{{\"kind\":\"loop\",\"backing_file\":\"/x/img\",\"device\":\"/dev/loop3\"}}}}\n\
             {{\"record\":\"create\",\"id\":3,\"object\":{{\"kind\":\"mount\",\"target\":\"/x/mnt\"}}}}\n\
             {{\"record\":\"done\",\"id\":3}}\n"
        );
        let p = parse(&text).unwrap();
        assert_eq!(p.header.pid, 42);
        assert_eq!(p.header.pid_starttime, 1234);
        assert_eq!(
            p.pending,
            vec![
                Entry {
                    id: 1,
                    object: LedgerObject::Netns {
                        name: "sq-0t3k9xa7-a".into()
                    }
                },
                Entry {
                    id: 2,
                    object: LedgerObject::Loop {
                        backing_file: "/x/img".into(),
                        device: Some("/dev/loop3".into())
                    }
                },
            ]
        );
        assert!(p.skipped_lines.is_empty());
    }

    #[test]
    fn torn_last_line_is_skipped_not_fatal() {
        let text = format!(
            "{HEADER}\n{{\"record\":\"create\",\"id\":1,\"object\":{{\"kind\":\"netns\",\"name\":\"a\"}}}}\n{{\"record\":\"cre"
        );
        let p = parse(&text).unwrap();
        assert_eq!(p.pending.len(), 1);
        assert_eq!(p.skipped_lines.len(), 1);
        assert_eq!(p.skipped_lines[0].0, 3);
    }

    #[test]
    fn missing_header_is_an_error() {
        assert_eq!(parse(""), Err(ParseError::Empty));
        assert!(matches!(
            parse("{\"record\":\"done\",\"id\":1}\n"),
            Err(ParseError::NoHeader(_))
        ));
    }

    #[test]
    fn every_object_kind_round_trips() {
        let objects = vec![
            LedgerObject::Netns { name: "n".into() },
            LedgerObject::Veth {
                netns: "n".into(),
                ifname: "i".into(),
            },
            LedgerObject::Loop {
                backing_file: "/b".into(),
                device: None,
            },
            LedgerObject::Mount {
                target: "/t".into(),
            },
            LedgerObject::NftTable {
                netns: None,
                family: "inet".into(),
                name: "sq".into(),
            },
            LedgerObject::Process {
                pid: 1,
                starttime: 2,
            },
            LedgerObject::TempDir { path: "/d".into() },
            LedgerObject::IptablesChain {
                netns: Some("n".into()),
                chain: "sq-x".into(),
            },
            LedgerObject::Link {
                netns: "n".into(),
                ifname: "br0".into(),
            },
            LedgerObject::DmDevice {
                name: "sq-x-vol".into(),
            },
        ];
        for (i, object) in objects.into_iter().enumerate() {
            let r = Record::Create {
                id: i as u64,
                object,
            };
            let line = serde_json::to_string(&r).unwrap();
            assert!(!line.contains('\n'));
            assert_eq!(serde_json::from_str::<Record>(&line).unwrap(), r);
        }
    }
}
