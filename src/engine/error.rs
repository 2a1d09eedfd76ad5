//! How a run fails, by kind: the harness could not start the run at all
//! ([`RunError`]), or the world could not be built or its workloads started
//! ([`StartError`]). Both make the scenario ERROR; what the system under
//! test did wrong is a FAIL and never an error here.

use super::workloads::SpawnError;
use super::world::SetupError;
use crate::ledger::LedgerError;
use crate::observe::ObserveError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("ledger: {0}")]
    Ledger(#[from] LedgerError),
    #[error("create {}: {source}", path.display())]
    Scratch {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("kernel log: {0}")]
    KernelLog(#[from] ObserveError),
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("setup failed: {0}")]
    Setup(#[from] SetupError),
    #[error("starting workloads failed: {0}")]
    Workloads(#[from] WorkloadsError),
}

#[derive(Debug, thiserror::Error)]
pub enum WorkloadsError {
    #[error("workload {workload}: mount {mount} is not mounted")]
    NotMounted { workload: String, mount: String },
    #[error("ledger: {0}")]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Spawn(#[from] SpawnError),
}
