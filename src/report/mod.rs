//! Human summary, JSON journal, JUnit XML and the HTML timeline, built from
//! results only.

mod html;
mod human;
mod junit;
mod progress;
pub mod stream;

pub use human::{print_histogram, print_result, print_slowest, print_summary};
pub use progress::Progress;
pub use stream::Stream;

use crate::expect::Outcome;
use crate::journal::Journal;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The timeline page's file name in a run's output directory.
pub const HTML_REPORT: &str = "report.html";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    Pass,
    Fail,
    /// Failed as the scenario's `xfail` predicted.
    Xfail,
    /// Passed although `xfail` predicted a failure.
    Xpass,
    /// Requirements unmet; the reason says which.
    Skip,
    /// The harness could not run the scenario.
    Error,
    /// An abort probe failed: every fault was healed at once and the run
    /// stopped there (a rehearsal that would have hurt more than it may).
    Aborted,
}

impl Verdict {
    /// Every verdict, in the order summaries list them.
    pub const ALL: [Verdict; 7] = [
        Verdict::Pass,
        Verdict::Fail,
        Verdict::Xfail,
        Verdict::Xpass,
        Verdict::Aborted,
        Verdict::Skip,
        Verdict::Error,
    ];
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = serde_json::to_value(self).expect("verdict serializes");
        f.write_str(s.as_str().unwrap_or("?"))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioResult {
    pub id: String,
    pub title: String,
    pub file: String,
    pub verdict: Verdict,
    /// `uname -r` of the kernel it ran on: one run may boot several
    /// (`--kernel` given more than once). Empty in journals from before.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kernel: String,
    /// Why the verdict is not PASS (first failed expectation, skip reason, error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub duration_s: f64,
    pub outcomes: Vec<Outcome>,
    pub journal: Journal,
    /// Where the case's own files (step artifacts, server captures) lie,
    /// relative to the output directory, when not in `<id>/`: a kernel
    /// matrix keeps each kernel's in `kernel-<name>/<id>/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files_dir: Option<String>,
}

/// Everything one `stackquake run` produced; journal.json holds exactly this.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    pub run_id: String,
    pub stackquake: String,
    /// Where the scenarios ran: `host`, or `vm (kernel …)`.
    pub target: String,
    /// `uname -r` of the kernel the scenarios ran on; with several
    /// (`--kernel` more than once), each, in the order they ran, joined
    /// by ", ". Each result names its own.
    pub kernel: String,
    pub results: Vec<ScenarioResult>,
}

impl ScenarioResult {
    /// Where its own files lie, relative to the output directory.
    pub fn files_dir(&self) -> &str {
        self.files_dir.as_deref().unwrap_or(&self.id)
    }

    /// The case's id and the kernel it ran on ("id on 6.12.118+deb12-amd64"):
    /// what tells the same case on two kernels apart.
    pub fn name_with_kernel(&self) -> String {
        if self.kernel.is_empty() {
            self.id.clone()
        } else {
            format!("{} on {}", self.id, self.kernel)
        }
    }
}

impl RunReport {
    /// Whether its results come from more than one kernel (`--kernel`
    /// given more than once).
    pub fn is_kernel_matrix(&self) -> bool {
        self.results
            .iter()
            .any(|r| r.kernel != self.results[0].kernel)
    }

    pub fn count(&self, v: Verdict) -> usize {
        self.results.iter().filter(|r| r.verdict == v).count()
    }

    pub fn read(dir: &Path) -> Result<RunReport, ReportError> {
        let path = dir.join("journal.json");
        let text = std::fs::read_to_string(&path).map_err(|source| ReportError::Io {
            path: path.clone(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| ReportError::Parse {
            path,
            detail: e.to_string(),
        })
    }

    /// Writes journal.json, junit.xml and report.html into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), ReportError> {
        self.write_journal(dir)?;
        write_file(&dir.join("junit.xml"), junit::render(self))?;
        self.write_html(dir)?;
        Ok(())
    }

    /// Writes `dir/journal.json` alone: what a guest hands its host, which
    /// renders the rest from it (rendering a page under TCG, for the host
    /// to overwrite, would only cost the guest CPU).
    pub fn write_journal(&self, dir: &Path) -> Result<(), ReportError> {
        std::fs::create_dir_all(dir).map_err(|source| ReportError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let text = serde_json::to_string_pretty(self).expect("report serializes");
        write_file(&dir.join("journal.json"), text)
    }

    /// Writes (or rewrites) `dir/report.html`, linking the per-step
    /// artifacts found in `dir`; returns its path.
    pub fn write_html(&self, dir: &Path) -> Result<PathBuf, ReportError> {
        let path = dir.join(HTML_REPORT);
        write_file(&path, html::render(self, &html::scan_artifacts(self, dir)))?;
        Ok(path)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot write or read {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a stackquake journal: {detail}")]
    Parse {
        path: std::path::PathBuf,
        detail: String,
    },
}

/// Writes one report file; a failure names the file.
fn write_file(path: &Path, contents: impl AsRef<[u8]>) -> Result<(), ReportError> {
    std::fs::write(path, contents).map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })
}
