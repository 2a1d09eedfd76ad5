//! Command-line interface: argument parsing and exit codes.
//!
//! On the nfs branch only `nfs` is wired; main's CLI adds `Nfs(nfs::NfsArgs)`
//! to its Command enum.

pub mod nfs;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Documented exit codes (architecture.md, "Verdicts and exit codes").
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const INVALID_INPUT: u8 = 2;
    pub const UNAVAILABLE: u8 = 69;
    pub const INTERNAL: u8 = 70;
}

#[derive(Parser)]
#[command(
    name = "stackquake",
    version,
    about = "Fault injection for Linux storage stacks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the in-process NFS server alone, and break it by hand.
    Nfs(nfs::NfsArgs),
}

pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STACKQUAKE_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Nfs(args) => nfs::run(args),
    };
    ExitCode::from(code)
}
