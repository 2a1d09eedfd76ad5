//! Command-line interface: raw arguments → validated inputs → a command → an
//! exit code (0 all passed, 1 a scenario failed, 2 invalid input, 69
//! environment unavailable, 70 internal error).

mod guests;
mod nfs;
mod out;
mod partition;
mod plan;
mod report;
mod run;

use out::out;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Documented exit codes (architecture.md, "Verdicts and exit codes").
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const INVALID_INPUT: u8 = 2;
    /// An abort probe stopped a run.
    pub const ABORTED: u8 = 3;
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
    /// Run scenarios (files or directories of *.yaml) and report verdicts.
    Run(run::RunArgs),
    /// Check scenario files without running anything; every problem at once.
    Validate {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Set a scenario variable, as `run --var` does.
        #[arg(long = "var", value_name = "NAME=VALUE", value_parser = run::parse_var)]
        vars: Vec<(String, String)>,
    },
    /// Show what a run would create and when each step would happen; no side effects.
    Plan {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[arg(long = "var", value_name = "NAME=VALUE", value_parser = run::parse_var)]
        vars: Vec<(String, String)>,
        /// `staging`: show what a rehearsal changes on this client (every
        /// scenario must have an `external` server).
        #[arg(long, value_enum)]
        target: Option<plan::PlanTarget>,
        /// Remote addresses a rehearsal may touch; it must name every one.
        #[arg(long, value_name = "ADDR[,ADDR…]", value_delimiter = ',')]
        allow_external: Vec<std::net::IpAddr>,
    },
    /// List scenarios (matrix cases expanded) with their targets and titles.
    List {
        #[arg(default_value = "scenarios")]
        paths: Vec<PathBuf>,
        #[arg(long = "var", value_name = "NAME=VALUE", value_parser = run::parse_var)]
        vars: Vec<(String, String)>,
        /// Only the cases `run --partition K/N` would run.
        #[arg(long, value_name = "K/N")]
        partition: Option<partition::Partition>,
        /// One line per case, or one JSON array (for a CI matrix).
        #[arg(long, value_enum, default_value_t = plan::ListFormat::Human)]
        format: plan::ListFormat,
    },
    /// Re-render report.html from the journal.json a run left in DIR.
    Report {
        /// A run's output directory (holding journal.json).
        dir: PathBuf,
    },
    /// Print the scenario format as JSON Schema (draft 7), for editors and linters.
    Schema,
    /// Remove what killed runs left behind (namespaces, mounts, loop devices…).
    Cleanup {
        /// Also clean up runs whose process is still alive.
        #[arg(long)]
        force: bool,
        /// Only this run's ledger (the id in /run/stackquake/ledger/<id>.jsonl).
        #[arg(long, value_name = "RUN_ID", value_parser = parse_run_id)]
        run: Option<crate::ledger::RunId>,
    },
    /// Run the in-process NFS server alone, or break and heal a running one.
    Nfs(nfs::NfsArgs),
    /// Internal: a workload child (started by the engine).
    #[command(hide = true)]
    Workload { spec: String },
    /// Internal: a data check's read back (started by the engine).
    #[command(hide = true)]
    Verify,
    /// Internal: a `readable` abort probe's read (started by the engine).
    #[command(hide = true)]
    ReadProbe { file: PathBuf },
    /// Internal: the guest side of the vm target.
    #[command(hide = true, subcommand)]
    Vm(VmCommand),
}

#[derive(Subcommand)]
enum VmCommand {
    /// PID 1 in the guest after switch_root: run the job, power off.
    GuestInit,
}

pub fn main() -> ExitCode {
    use std::io::IsTerminal;
    // Colour codes only for a person at a terminal: in a log redirected to
    // a file (issue 11) they are noise around every line. NO_COLOR
    // (no-color.org) turns them off at a terminal too.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STACKQUAKE_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Validate { paths, vars } => validate(&paths, &vars),
        Command::Plan {
            paths,
            vars,
            target,
            allow_external,
        } => plan::plan(&paths, &vars, target, &allow_external),
        Command::List {
            paths,
            vars,
            partition,
            format,
        } => plan::list(&paths, &vars, partition, format),
        Command::Report { dir } => report::report(&dir),
        Command::Schema => {
            out!("{}", crate::scenario::scenario_schema_json());
            exit::OK
        }
        Command::Cleanup { force, run } => cleanup(force, run),
        Command::Nfs(args) => nfs::run(args),
        Command::Workload { spec } => workload(&spec),
        Command::Verify => match crate::workload::verify::run_child() {
            Ok(()) => exit::OK,
            Err(_) => exit::INTERNAL,
        },
        Command::ReadProbe { file } => match crate::engine::read_probe(&file) {
            Ok(()) => exit::OK,
            Err(e) => {
                println!("{e}");
                exit::FAILED
            }
        },
        Command::Vm(VmCommand::GuestInit) => crate::vm::guest_init(),
    };
    ExitCode::from(code)
}

fn validate(paths: &[PathBuf], vars: &[(String, String)]) -> u8 {
    let files = match run::scenario_files(paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::INVALID_INPUT;
        }
    };
    let mut bad = 0;
    for file in &files {
        match crate::scenario::load_cases(file, vars) {
            Ok(cases) => {
                let ids: Vec<&str> = cases.iter().map(|s| s.id.as_str()).collect();
                out!("ok      {} ({})", file.display(), ids.join(", "));
            }
            Err(e) => {
                bad += 1;
                eprintln!("{e}\n");
            }
        }
    }
    out!("{} valid, {bad} invalid", files.len() - bad);
    if bad > 0 {
        exit::INVALID_INPUT
    } else {
        exit::OK
    }
}

fn parse_run_id(s: &str) -> Result<crate::ledger::RunId, String> {
    crate::ledger::RunId::parse(s).ok_or_else(|| format!("`{s}` is not a run id"))
}

fn cleanup(force: bool, run: Option<crate::ledger::RunId>) -> u8 {
    let scoped = run.is_some();
    let opts = crate::cleanup::CleanupOptions {
        force,
        run,
        ..Default::default()
    };
    let report =
        crate::cleanup::cleanup_with(std::path::Path::new(crate::ledger::DEFAULT_ROOT), &opts);
    for what in &report.removed {
        out!("removed {what}");
    }
    for f in &report.failed {
        eprintln!("failed  {} ({}): {}", f.object, f.ledger.display(), f.error);
    }
    for ledger in &report.skipped_live {
        out!(
            "skipped {} (its run is still alive; --force to clean it)",
            ledger.display()
        );
    }
    for orphan in report.orphans.iter().filter(|_| !scoped) {
        out!("orphan  {orphan} (named by a run with no ledger; not removed)");
    }
    out!(
        "{} removed, {} failed",
        report.removed.len(),
        report.failed.len()
    );
    if report.failed.is_empty() {
        exit::OK
    } else {
        exit::FAILED
    }
}

fn workload(spec: &str) -> u8 {
    let spec: crate::workload::Spec = match serde_json::from_str(spec) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: bad workload spec: {e}");
            return exit::INTERNAL;
        }
    };
    match crate::workload::run_child(&spec) {
        Ok(()) => exit::OK,
        Err(_) => exit::OK, // the engine closed our stdout: it is done with us
    }
}
