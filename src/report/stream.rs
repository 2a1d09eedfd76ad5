//! A run's results streamed as they happen, one JSON line each, into
//! `stream.jsonl` beside the journal: the guest writes it into the results
//! share, so when the guest is killed (a hung read past every limit) the
//! host still has every event, the kernel and the outcomes so far, and
//! says where the run stopped (issue 13: a killed guest lost everything).

use super::{RunReport, ScenarioResult, Verdict};
use crate::journal::{Event, Journal, Observer};
use crate::plan::Plan;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The stream's file name in a run's output directory.
pub const STREAM_FILE: &str = "stream.jsonl";

/// One line of the stream.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
enum Record {
    /// The run began on this kernel.
    Run {
        kernel: String,
    },
    /// A scenario began.
    Scenario {
        id: String,
        title: String,
        file: String,
    },
    /// The scenario's run moved on to a stage (setup, timeline, …).
    Stage {
        run_id: String,
        stage: String,
    },
    Event {
        event: Event,
    },
    /// The scenario ended: verdict, outcomes and the whole journal.
    Result {
        result: Box<ScenarioResult>,
    },
}

/// Appends records to `dir`'s stream. Each record is one `write(2)` of a
/// whole line, so a kill leaves at most the last line torn.
pub struct Stream {
    file: Option<File>,
    /// Events already written.
    cursor: usize,
}

impl Stream {
    /// Starts `dir`'s stream afresh for a run on `kernel`.
    pub fn begin_run(dir: &Path, kernel: &str) -> Stream {
        let _ = std::fs::remove_file(dir.join(STREAM_FILE));
        let mut s = Stream::open(dir);
        s.write(&[Record::Run {
            kernel: kernel.into(),
        }]);
        s
    }

    /// A scenario begins; the returned stream is its observer.
    pub fn scenario(dir: &Path, id: &str, title: &str, file: &Path) -> Stream {
        let mut s = Stream::open(dir);
        s.write(&[Record::Scenario {
            id: id.into(),
            title: title.into(),
            file: file.display().to_string(),
        }]);
        s
    }

    /// The scenario ended with `result`.
    pub fn result(dir: &Path, result: &ScenarioResult) {
        Stream::open(dir).write(&[Record::Result {
            result: Box::new(result.clone()),
        }]);
    }

    fn open(dir: &Path) -> Stream {
        let path = dir.join(STREAM_FILE);
        let file = OpenOptions::new().create(true).append(true).open(&path);
        if let Err(e) = &file {
            tracing::warn!(path = %path.display(), "cannot stream results: {e}");
        }
        Stream {
            file: file.ok(),
            cursor: 0,
        }
    }

    fn write(&mut self, records: &[Record]) {
        let Some(f) = &mut self.file else { return };
        let mut text = String::new();
        for r in records {
            text.push_str(&serde_json::to_string(r).expect("record serializes"));
            text.push('\n');
        }
        if let Err(e) = f.write_all(text.as_bytes()) {
            tracing::warn!("cannot stream results: {e}");
            self.file = None;
        }
    }
}

impl Observer for Stream {
    fn catch_up(&mut self, events: &[Event]) {
        let new: Vec<Record> = events[self.cursor.min(events.len())..]
            .iter()
            .map(|e| Record::Event { event: e.clone() })
            .collect();
        self.cursor = events.len();
        if !new.is_empty() {
            self.write(&new);
        }
    }

    fn waiting(&mut self, _t_ns: u64) {}

    fn finished(&mut self) {}

    fn stage(&mut self, journal: &Journal, what: &str) {
        self.catch_up(&journal.events);
        self.write(&[Record::Stage {
            run_id: journal.run_id.clone(),
            stage: what.into(),
        }]);
    }
}

/// The report of a run whose guest never wrote one (killed, or it died),
/// rebuilt from `dir`'s stream: finished scenarios as they ended; the one
/// running when it stopped as ERROR saying `why` and where it stopped,
/// with its events and the outcomes its events can decide; scenarios of
/// `planned` never begun as ERROR. None if there is no stream.
pub fn recover(dir: &Path, planned: &[(PathBuf, Plan)], why: &str) -> Option<RunReport> {
    let text = std::fs::read_to_string(dir.join(STREAM_FILE)).ok()?;
    let mut kernel = "unknown".to_string();
    let mut results: Vec<ScenarioResult> = Vec::new();
    let mut running: Option<(ScenarioResult, String)> = None;
    // A torn last line (killed mid-write) is skipped.
    for record in text.lines().filter_map(|l| serde_json::from_str(l).ok()) {
        match record {
            Record::Run { kernel: k } => kernel = k,
            Record::Scenario { id, title, file } => {
                if let Some(r) = running.take() {
                    results.push(stopped(r, planned, why));
                }
                let result = ScenarioResult {
                    id,
                    title,
                    file,
                    kernel: kernel.clone(),
                    verdict: Verdict::Error,
                    reason: None,
                    duration_s: 0.0,
                    outcomes: Vec::new(),
                    journal: Journal::default(),
                    files_dir: None,
                };
                running = Some((result, "setup".into()));
            }
            Record::Stage { run_id, stage } => {
                if let Some((r, s)) = &mut running {
                    r.journal.run_id = run_id;
                    *s = stage;
                }
            }
            Record::Event { event } => {
                if let Some((r, _)) = &mut running {
                    r.journal.push(event);
                }
            }
            Record::Result { result } => {
                running = None;
                results.push(*result);
            }
        }
    }
    if let Some(r) = running.take() {
        results.push(stopped(r, planned, why));
    }
    for (file, plan) in planned {
        if !results.iter().any(|r| r.id == plan.id) {
            results.push(ScenarioResult {
                id: plan.id.clone(),
                title: plan.title.clone(),
                file: file.display().to_string(),
                kernel: kernel.clone(),
                verdict: Verdict::Error,
                reason: Some(format!("not run: {why} before it began")),
                duration_s: 0.0,
                outcomes: Vec::new(),
                journal: Journal::default(),
                files_dir: None,
            });
        }
    }
    Some(RunReport {
        run_id: String::new(),
        stackquake: env!("CARGO_PKG_VERSION").into(),
        target: "vm".into(),
        kernel,
        results,
    })
}

/// The scenario that was running when the stream ended: ERROR, saying
/// where it stopped; its expectations judged on what its events show
/// ("not evaluated" where the run never got there).
fn stopped(
    (mut result, stage): (ScenarioResult, String),
    planned: &[(PathBuf, Plan)],
    why: &str,
) -> ScenarioResult {
    let t = result.journal.last_t();
    let reason = format!(
        "{why}: the run stopped during {stage}, its last event at +{:.2}s",
        t as f64 / 1e9
    );
    result.journal.push(Event::Aborted {
        reason: reason.clone(),
        t_ns: t,
    });
    if let Some((_, plan)) = planned.iter().find(|(_, p)| p.id == result.id) {
        let kernel = crate::plan::KernelVersion::of(&result.kernel);
        result.outcomes = crate::expect::evaluate(plan, &result.journal, &kernel);
    }
    result.duration_s = t as f64 / 1e9;
    result.reason = Some(reason);
    result.verdict = Verdict::Error;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(id: &str) -> Plan {
        let text = format!(
            "schema_version: 1\nid: {id}\ntitle: t\nhosts: {{ a: {{}} }}
workloads:
  - {{ id: w, host: a, op: append, path: /f, every: 20ms }}
steps:
  - {{ id: first, wait: 1s }}
  - {{ id: second, wait: 1s }}
expect:
  - no_errors: {{ workload: w, during: [first] }}
  - no_errors: {{ workload: w, during: [second] }}
"
        );
        crate::scenario::load_str(&text, "t.yaml").unwrap()
    }

    fn step(begin: bool, step: &str, t_ns: u64) -> Event {
        let step = step.to_string();
        if begin {
            Event::StepBegin { step, t_ns }
        } else {
            Event::StepEnd { step, t_ns }
        }
    }

    #[test]
    fn a_stream_cut_short_keeps_what_it_holds_and_says_where_it_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let planned: Vec<(PathBuf, Plan)> = ["done", "cut", "never"]
            .iter()
            .map(|id| (PathBuf::from(format!("{id}.yaml")), plan(id)))
            .collect();
        Stream::begin_run(dir.path(), "6.1.0-test");
        let mut done = Stream::scenario(dir.path(), "done", "t", Path::new("done.yaml"));
        let mut journal = Journal {
            run_id: "r1".into(),
            events: vec![step(true, "first", 1)],
        };
        done.stage(&journal, "timeline");
        journal.push(step(false, "first", 2));
        done.catch_up(&journal.events);
        let finished = ScenarioResult {
            id: "done".into(),
            title: "t".into(),
            file: "done.yaml".into(),
            kernel: "6.1.0-57-amd64".into(),
            verdict: Verdict::Pass,
            reason: None,
            duration_s: 1.0,
            outcomes: Vec::new(),
            journal: journal.clone(),
            files_dir: None,
        };
        Stream::result(dir.path(), &finished);
        let mut cut = Stream::scenario(dir.path(), "cut", "t", Path::new("cut.yaml"));
        let mut journal = Journal {
            run_id: "r2".into(),
            events: vec![step(true, "first", 1_000_000_000)],
        };
        cut.stage(&journal, "timeline");
        journal.push(step(false, "first", 2_000_000_000));
        journal.push(step(true, "second", 2_000_000_000));
        journal.push(step(false, "second", 3_500_000_000));
        cut.stage(&journal, "verifying data");
        // The guest is killed in the middle of a line.
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join(STREAM_FILE))
            .unwrap();
        f.write_all(b"{\"record\":\"event\",\"event\":{\"ev")
            .unwrap();

        let report = recover(dir.path(), &planned, "guest killed after 90s").unwrap();
        assert_eq!(report.kernel, "6.1.0-test");
        let ids: Vec<&str> = report.results.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["done", "cut", "never"]);
        assert_eq!(report.results[0].verdict, Verdict::Pass);
        assert_eq!(report.results[0].journal.events.len(), 2);

        let cut = &report.results[1];
        assert_eq!(cut.verdict, Verdict::Error);
        assert_eq!(
            cut.reason.as_deref(),
            Some(
                "guest killed after 90s: the run stopped during verifying data, \
                 its last event at +3.50s"
            )
        );
        assert_eq!(cut.journal.run_id, "r2");
        // The four events streamed, then the abort that says where it stopped.
        assert_eq!(cut.journal.events.len(), 5);
        assert!(matches!(
            cut.journal.events.last(),
            Some(Event::Aborted {
                t_ns: 3_500_000_000,
                ..
            })
        ));
        // Both windows were reached: judged on the events, no op failed.
        assert!(cut.outcomes[0].evaluated && cut.outcomes[0].passed);
        assert!(cut.outcomes[1].evaluated && cut.outcomes[1].passed);

        let never = &report.results[2];
        assert_eq!(never.verdict, Verdict::Error);
        assert_eq!(
            never.reason.as_deref(),
            Some("not run: guest killed after 90s before it began")
        );
    }

    #[test]
    fn no_stream_recovers_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert!(recover(dir.path(), &[], "guest killed").is_none());
    }
}
