//! Ledgers left by runs that died: what a new run warns about before it
//! starts (issue 11 §4). Nothing is removed here; the warning names the
//! `stackquake cleanup --run` command that does it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::RunId;
use super::record::{ParseError, parse};
use crate::sys;

/// A run whose process is gone (or whose pid now belongs to another process)
/// while its ledger still lists objects it did not remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadRun {
    pub run: String,
    pub ledger: PathBuf,
    pub pid: u32,
    pub started_at: String,
    pub scenario: PathBuf,
    /// Objects recorded and not marked removed, counted by kind.
    pub objects: BTreeMap<&'static str, usize>,
}

impl DeadRun {
    pub fn object_count(&self) -> usize {
        self.objects.values().sum()
    }

    /// `stackquake cleanup --run <id>`: removes exactly this run's objects.
    pub fn cleanup_command(&self) -> String {
        format!("stackquake cleanup --run {}", self.run)
    }
}

/// Two lines for stderr: what is left, and the command that removes it.
impl fmt::Display for DeadRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.object_count();
        let kinds: Vec<String> = self
            .objects
            .iter()
            .map(|(kind, count)| format!("{count} {kind}"))
            .collect();
        writeln!(
            f,
            "warning: run {} (pid {}, started {}, {}) died and left {n} object{} behind: {}",
            self.run,
            self.pid,
            self.started_at,
            self.scenario.display(),
            if n == 1 { "" } else { "s" },
            kinds.join(", "),
        )?;
        write!(
            f,
            "  remove them with: {}   (ledger: {})",
            self.cleanup_command(),
            self.ledger.display()
        )
    }
}

/// Every ledger under `root` whose owner is dead and that still lists
/// objects, oldest run first. A ledger whose header is not written yet
/// belongs to a run that is starting (or died before creating anything) and
/// is passed over; an unreadable one is logged.
pub fn dead_runs(root: &Path) -> Vec<DeadRun> {
    super::ledger_files(root)
        .into_iter()
        .filter_map(|path| {
            let text = std::fs::read_to_string(&path)
                .map_err(
                    |e| tracing::warn!(ledger = %path.display(), error = %e, "cannot read ledger"),
                )
                .ok()?;
            let parsed = match parse(&text) {
                Ok(p) => p,
                Err(ParseError::Empty) => return None,
                Err(e) => {
                    tracing::warn!(ledger = %path.display(), error = %e, "unreadable ledger");
                    return None;
                }
            };
            let h = &parsed.header;
            if parsed.pending.is_empty()
                || sys::procstat::is_same_process_alive(h.pid, h.pid_starttime)
            {
                return None;
            }
            let mut objects = BTreeMap::new();
            for e in &parsed.pending {
                *objects.entry(e.object.kind()).or_insert(0) += 1;
            }
            // `cleanup --run` selects by file name; use it when it is an id.
            let run = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(RunId::parse)
                .map_or_else(|| h.run_id.clone(), |r| r.to_string());
            Some(DeadRun {
                run,
                ledger: path.clone(),
                pid: h.pid,
                started_at: h.started_at.clone(),
                scenario: h.scenario.clone(),
                objects,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{Ledger, LedgerObject, ledger_dir};

    /// A ledger as `Ledger::create` writes it, owned by `pid` with `starttime`.
    fn write_ledger(root: &Path, run: &str, pid: u32, starttime: u64, body: &str) -> PathBuf {
        let dir = ledger_dir(root);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{run}.jsonl"));
        std::fs::write(
            &path,
            format!(
                "{{\"record\":\"header\",\"run_id\":\"{run}\",\"pid\":{pid},\"pid_starttime\":{starttime},\"started_at\":\"2025-11-21T19:53:00Z\",\"scenario\":\"scenarios/x.yaml\"}}\n{body}"
            ),
        )
        .unwrap();
        path
    }

    const OBJECTS: &str = concat!(
        r#"{"record":"create","id":1,"object":{"kind":"temp_dir","path":"/tmp/stackquake/0t3k9xa7"}}"#,
        "\n",
        r#"{"record":"create","id":2,"object":{"kind":"netns","name":"sq-0t3k9xa7-a"}}"#,
        "\n",
        r#"{"record":"create","id":3,"object":{"kind":"netns","name":"sq-0t3k9xa7-b"}}"#,
        "\n",
        r#"{"record":"create","id":4,"object":{"kind":"mount","target":"/tmp/stackquake/0t3k9xa7/mnt"}}"#,
        "\n",
        r#"{"record":"create","id":5,"object":{"kind":"veth","netns":"sq-0t3k9xa7-a","ifname":"sq0t3k9xa7-l0a"}}"#,
        "\n",
        r#"{"record":"done","id":5}"#,
        "\n",
    );

    /// The pid of a process that has exited and been reaped.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    #[test]
    fn a_dead_owner_is_reported_with_counts_by_kind_and_the_cleanup_command() {
        let root = tempfile::tempdir().unwrap();
        let path = write_ledger(root.path(), "0t3k9xa7", dead_pid(), 1234, OBJECTS);
        let dead = dead_runs(root.path());
        assert_eq!(dead.len(), 1, "{dead:?}");
        let d = &dead[0];
        assert_eq!(d.run, "0t3k9xa7");
        assert_eq!(d.ledger, path);
        assert_eq!(
            d.objects,
            [("mount", 1), ("netns", 2), ("temp dir", 1)].into()
        );
        let text = d.to_string();
        assert!(text.starts_with("warning: run 0t3k9xa7 (pid "), "{text}");
        assert!(
            text.contains(
                "started 2025-11-21T19:53:00Z, scenarios/x.yaml) died and left 4 objects behind: 1 mount, 2 netns, 1 temp dir\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("  remove them with: stackquake cleanup --run 0t3k9xa7   (ledger: "),
            "{text}"
        );
    }

    #[test]
    fn a_recycled_pid_is_not_mistaken_for_the_owner() {
        let root = tempfile::tempdir().unwrap();
        let me = std::process::id();
        let mine = sys::procstat::read(me).unwrap().starttime;
        // Our pid, but a different start time: the owner died and the pid
        // was handed to us.
        write_ledger(root.path(), "0t3k9xa7", me, mine + 1, OBJECTS);
        assert_eq!(dead_runs(root.path()).len(), 1);
    }

    #[test]
    fn live_runs_empty_ledgers_and_fully_undone_runs_are_not_reported() {
        let root = tempfile::tempdir().unwrap();
        // A live run: this test process, created the way the engine does.
        let live = RunId::parse("0t3k9xb0").unwrap();
        let ledger = Ledger::create(root.path(), &live, Path::new("live.yaml")).unwrap();
        ledger
            .record(LedgerObject::Netns {
                name: "sq-0t3k9xb0-a".into(),
            })
            .unwrap();
        // Killed before writing its header: nothing was created.
        std::fs::write(ledger_dir(root.path()).join("0t3k9xb1.jsonl"), "").unwrap();
        // Dead, but every object was removed.
        write_ledger(
            root.path(),
            "0t3k9xb2",
            dead_pid(),
            1,
            "{\"record\":\"create\",\"id\":1,\"object\":{\"kind\":\"netns\",\"name\":\"n\"}}\n{\"record\":\"done\",\"id\":1}\n",
        );
        assert_eq!(dead_runs(root.path()), vec![]);
        // No ledger directory at all (a machine where nothing ever ran).
        assert_eq!(dead_runs(&root.path().join("none")), vec![]);
    }

    #[test]
    fn one_object_is_singular() {
        let root = tempfile::tempdir().unwrap();
        write_ledger(
            root.path(),
            "0t3k9xa7",
            dead_pid(),
            1,
            "{\"record\":\"create\",\"id\":1,\"object\":{\"kind\":\"dm_device\",\"name\":\"sq-0t3k9xa7-v\"}}\n",
        );
        let text = dead_runs(root.path())[0].to_string();
        assert!(
            text.contains("died and left 1 object behind: 1 dm device\n"),
            "{text}"
        );
    }
}
