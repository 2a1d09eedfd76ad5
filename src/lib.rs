//! stackquake: builds a small Linux storage world from a scenario, breaks it
//! on schedule, watches the kernel and the workloads, and gives a verdict.
//!
//! Layers (dependencies point down only): `cli` → `engine` → `scenario`,
//! `fault`, `workload`, `expect`, `report`; world pieces `nfs`, `block`,
//! `net`, `observe`, `vm`, `ledger`; and `sys`, the only home of `unsafe`.

pub mod block;
pub mod cli;
pub mod engine;
pub mod expect;
pub mod fault;
pub mod journal;
pub mod ledger;
pub mod net;
pub mod nfs;
pub mod observe;
pub mod report;
pub mod scenario;
pub mod sys;
pub mod sysctl;
pub mod tools;
pub mod vm;
pub mod workload;
