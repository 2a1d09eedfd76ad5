//! stackquake: builds a small Linux storage world from a scenario, breaks it
//! on schedule, watches the kernel and the workloads, and gives a verdict.
//!
//! Layers (dependencies point down only; docs/architecture.md has the
//! table): `cli` → `engine`, `cleanup`, `scenario` (YAML in, validated,
//! lowered) → `report` → `fault`, `workload`, `expect` → `plan` (what a run
//! does: the one model everything below the input reads) → world pieces
//! `nfs`, `block`, `net`, `observe`, `vm`, `sysctl`, `process` → `ledger`,
//! `tools` → shared values `journal`, `addr`, `errno` → `sys`, the only
//! home of `unsafe`.

// `unsafe` lives in `sys` alone, and each block there says why it is sound.
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod addr;
pub mod block;
pub mod cleanup;
pub mod cli;
pub mod engine;
pub mod errno;
pub mod expect;
pub mod fault;
pub mod journal;
pub mod ledger;
pub mod net;
pub mod nfs;
pub mod observe;
pub mod plan;
pub mod process;
pub mod report;
pub mod scenario;
#[allow(unsafe_code)]
pub mod sys;
pub mod sysctl;
pub mod tools;
pub mod vm;
pub mod workload;
