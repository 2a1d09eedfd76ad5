//! Objects named with a run id whose ledger is gone: found and reported,
//! never removed (without a ledger we cannot prove they are ours to delete).

use std::path::{Path, PathBuf};

use super::{RunId, ledger_path};
use crate::sys;

/// Prefix of everything a run names: netns `sq-<run>-<host>`, scratch
/// directories `sq-<run>` (loop backing files and mount points live below).
pub const NAME_PREFIX: &str = "sq-";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Orphan {
    Netns {
        name: String,
        run: RunId,
    },
    Loop {
        device: u32,
        backing_file: PathBuf,
        run: RunId,
    },
    Mount {
        target: PathBuf,
        run: RunId,
    },
}

/// What `stackquake cleanup` prints, e.g. `netns sq-0t3k9xa7-client (run
/// 0t3k9xa7)`: the object as `ip netns` / `losetup` / `findmnt` name it.
impl std::fmt::Display for Orphan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Orphan::Netns { name, run } => write!(f, "netns {name} (run {run})"),
            Orphan::Loop {
                device,
                backing_file,
                run,
            } => write!(
                f,
                "/dev/loop{device} backed by {} (run {run})",
                backing_file.display()
            ),
            Orphan::Mount { target, run } => {
                write!(f, "mount {} (run {run})", target.display())
            }
        }
    }
}

/// The run id in a name like `sq-<run>` or `sq-<run>-<rest>`.
pub fn run_of_name(name: &str) -> Option<RunId> {
    let rest = name.strip_prefix(NAME_PREFIX)?;
    RunId::parse(rest.split('-').next()?)
}

/// The run id of the first `sq-<run>` component of a path.
pub fn run_of_path(path: &Path) -> Option<RunId> {
    path.components()
        .find_map(|c| run_of_name(c.as_os_str().to_str()?))
}

pub fn sweep(root: &Path) -> Vec<Orphan> {
    let orphaned = |run: &RunId| !ledger_path(root, run).exists();
    let mut out = Vec::new();
    if let Ok(dir) = std::fs::read_dir(sys::ns::NETNS_RUN_DIR) {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(run) = run_of_name(&name).filter(|r| orphaned(r)) {
                out.push(Orphan::Netns { name, run });
            }
        }
    }
    for (device, backing_file) in sys::loopdev::attached() {
        if let Some(run) = run_of_path(&backing_file).filter(|r| orphaned(r)) {
            out.push(Orphan::Loop {
                device,
                backing_file,
                run,
            });
        }
    }
    for target in sys::mountinfo::mount_points() {
        if target.starts_with(sys::ns::NETNS_RUN_DIR) {
            continue; // namespaces are reported above
        }
        if let Some(run) = run_of_path(&target).filter(|r| orphaned(r)) {
            out.push(Orphan::Mount { target, run });
        }
    }
    for o in &out {
        tracing::warn!(orphan = ?o, "object of a run without a ledger");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_found_in_names_and_paths() {
        assert_eq!(
            run_of_name("sq-0t3k9xa7-client").unwrap().as_str(),
            "0t3k9xa7"
        );
        assert_eq!(run_of_name("sq-0t3k9xa7").unwrap().as_str(), "0t3k9xa7");
        assert_eq!(run_of_name("sq-short-x"), None);
        assert_eq!(run_of_name("other"), None);
        assert_eq!(
            run_of_path(Path::new("/srv/sq-0t3k9xa7/img/x.img"))
                .unwrap()
                .as_str(),
            "0t3k9xa7"
        );
        assert_eq!(run_of_path(Path::new("/srv/tmp/x.img")), None);
    }

    #[test]
    fn orphans_print_as_the_tools_name_them() {
        let run = RunId::parse("0t3k9xa7").unwrap();
        let netns = Orphan::Netns {
            name: "sq-0t3k9xa7-client".into(),
            run: run.clone(),
        };
        assert_eq!(netns.to_string(), "netns sq-0t3k9xa7-client (run 0t3k9xa7)");
        let lo = Orphan::Loop {
            device: 7,
            backing_file: "/srv/sq-0t3k9xa7/db.img".into(),
            run,
        };
        assert_eq!(
            lo.to_string(),
            "/dev/loop7 backed by /srv/sq-0t3k9xa7/db.img (run 0t3k9xa7)"
        );
    }
}
