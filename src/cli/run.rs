//! `stackquake run`: load every scenario first (bad input changes nothing),
//! then run them on the chosen target and write the reports.

use super::exit;
use super::guests::{GuestTask, fan_out};
use super::out::out;
use super::partition::Partition;
use crate::engine::{self, RunOptions};
use crate::journal::Observer;
use crate::plan::{Plan, Target};
use crate::report::{Progress, Stream};
use crate::report::{RunReport, ScenarioResult, Verdict};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Args)]
pub struct RunArgs {
    /// Scenario files, or directories whose *.yaml files are all run.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Where to run: a throwaway QEMU guest (vm), this machine (host), or
    /// this machine as the client of a real staging server (staging: the
    /// scenarios must be rehearsals, with `kind: external` servers).
    #[arg(long, value_enum, default_value_t = TargetArg::Vm)]
    target: TargetArg,
    /// staging: the remote addresses the rehearsal may touch; it must name
    /// every one, or nothing runs.
    #[arg(long, value_name = "ADDR[,ADDR…]", value_delimiter = ',')]
    allow_external: Vec<std::net::IpAddr>,
    /// Short for --target vm.
    #[arg(long, conflicts_with = "target")]
    vm: bool,
    /// Directory for journal.json, junit.xml and report.html [default: stackquake-out/<run id>].
    #[arg(long)]
    output: Option<PathBuf>,
    /// Guest kernel for the vm target: an image path, or a series ("6.12":
    /// the newest /boot/vmlinuz-6.12.* with modules). Give it more than once
    /// to run every case on each kernel in turn [default: the newest 6.1].
    #[arg(long, value_name = "IMAGE|SERIES")]
    kernel: Vec<PathBuf>,
    /// Guest accelerator: auto probes KVM and falls back to TCG.
    #[arg(long, value_enum, default_value_t = AccelArg::Auto)]
    accel: AccelArg,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 2048)]
    vm_memory: u32,
    /// vCPUs per guest [default: the host's cores shared among the guests
    /// running at once, one at least, two at most: a lone guest gets two].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    vm_cpus: Option<u32>,
    /// Set a scenario variable (`${name}` in the file), overriding its `vars:`.
    #[arg(long = "var", value_name = "NAME=VALUE", value_parser = parse_var)]
    vars: Vec<(String, String)>,
    /// Run every scenario this many times.
    #[arg(long, default_value_t = 1)]
    repeat: u32,
    /// With --repeat: stop at the first run that is not PASS, XFAIL or SKIP.
    #[arg(long)]
    until_fail: bool,
    /// What goes to stdout: the human report, or one JSON document (the
    /// same as journal.json). Progress lines always go to stderr.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Run only the K-th of N shares of the scenario cases (dealt
    /// round-robin in load order), for N CI jobs that split a suite.
    #[arg(long, value_name = "K/N")]
    partition: Option<Partition>,
    /// vm target: boot up to N guests at once, each running one case (on
    /// one kernel); results come as each guest ends [default: from cores
    /// and memory, see `default_jobs`]. 1 runs every case in one guest per
    /// kernel.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    jobs: Option<u32>,
    /// Internal: we are the guest side of a vm run.
    #[arg(long, hide = true)]
    in_guest: bool,
    /// Internal (guest side): run only the case with this id.
    #[arg(long, hide = true)]
    case: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TargetArg {
    Vm,
    Host,
    Staging,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Human,
    Json,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum AccelArg {
    Auto,
    Kvm,
    Tcg,
}

/// Expands directories into their *.yaml files, sorted; keeps files as given.
pub fn scenario_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| format!("cannot read {}: {e}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect();
            found.sort();
            if found.is_empty() {
                return Err(format!("{} holds no *.yaml scenario", p.display()));
            }
            files.extend(found);
        } else if p.exists() {
            files.push(p.clone());
        } else {
            return Err(format!("{}: no such file or directory", p.display()));
        }
    }
    Ok(files)
}

/// `NAME=VALUE` for `--var`.
pub fn parse_var(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("`{s}` is not NAME=VALUE"))
}

/// Every scenario (matrix cases expanded) of the given paths, or the exit
/// code after printing every problem.
pub fn load_all(paths: &[PathBuf], vars: &[(String, String)]) -> Result<Vec<(PathBuf, Plan)>, u8> {
    let files = scenario_files(paths).map_err(|e| {
        eprintln!("error: {e}");
        exit::INVALID_INPUT
    })?;
    let mut scenarios = Vec::new();
    let mut invalid = false;
    for file in files {
        match crate::scenario::load_cases(&file, vars) {
            Ok(cases) => scenarios.extend(cases.into_iter().map(|s| (file.clone(), s))),
            Err(e) => {
                invalid = true;
                eprintln!("{e}\n");
            }
        }
    }
    if invalid {
        return Err(exit::INVALID_INPUT);
    }
    Ok(scenarios)
}

pub fn run(args: RunArgs) -> u8 {
    let all = match load_all(&args.paths, &args.vars) {
        Ok(s) => s,
        Err(code) => {
            eprintln!("nothing was run: fix the scenarios above");
            return code;
        }
    };
    // The guest loads every file and takes the same share of the cases.
    let mut files: Vec<PathBuf> = all.iter().map(|(f, _)| f.clone()).collect();
    files.dedup();
    let mut scenarios = match args.partition {
        Some(p) => p.select(all),
        None => all,
    };
    if let Some(id) = &args.case {
        scenarios.retain(|(_, s)| &s.id == id);
    }
    if scenarios.is_empty() {
        let share = args
            .partition
            .map(|p| format!("partition {p}: "))
            .unwrap_or_default();
        eprintln!("{share}no scenario cases to run");
        return exit::OK;
    }
    let staging = !args.vm && args.target == TargetArg::Staging;
    if let Err(code) = check_staging(&scenarios, staging, &args.allow_external) {
        eprintln!("nothing was run");
        return code;
    }
    let here = match args.target {
        _ if args.in_guest || args.vm => None,
        TargetArg::Host => Some(Target::Host),
        TargetArg::Staging => Some(Target::Staging),
        TargetArg::Vm => None,
    };
    if let Some(target) = here
        && let Err(e) = engine::preflight(target)
    {
        eprintln!("error: {e}");
        return exit::UNAVAILABLE;
    }
    if !args.in_guest {
        warn_of_dead_runs(Path::new(crate::ledger::DEFAULT_ROOT));
    }
    let run_id = crate::ledger::RunId::generate().to_string();
    let out = args
        .output
        .clone()
        .unwrap_or_else(|| Path::new("stackquake-out").join(&run_id));
    // From here on SIGINT and SIGTERM stop the run in order (a guest's job
    // is asked to stop too) instead of killing this process mid-fault.
    crate::sys::install_signal_handlers();
    let report = if args.in_guest {
        run_here(&run_id, &scenarios, Target::Vm, "vm".into(), &out, &args)
    } else if args.vm || args.target == TargetArg::Vm {
        match run_on_kernels(&args, &run_id, &scenarios, &files, &out) {
            Ok(r) => r,
            Err(code) => return code,
        }
    } else {
        let target = here.expect("vm and guest runs are handled above");
        run_here(&run_id, &scenarios, target, target.to_string(), &out, &args)
    };
    let written = if args.in_guest {
        report.write_journal(&out)
    } else {
        report.write(&out)
    };
    if let Err(e) = written {
        eprintln!("error: {e}");
        return exit::INTERNAL;
    }
    if !args.in_guest {
        link_latest(&out);
        if args.format == Format::Json {
            out!(
                "{}",
                serde_json::to_string_pretty(&report).expect("report serializes")
            );
            return exit_code(&report);
        }
        let mut stdout = std::io::stdout();
        let matrix = report.is_kernel_matrix();
        for r in &report.results {
            let _ = crate::report::print_result(&mut stdout, r, matrix);
        }
        let _ = crate::report::print_summary(&mut stdout, &report);
        let _ = crate::report::print_slowest(&mut stdout, &report);
        if args.repeat > 1 {
            let _ = crate::report::print_histogram(&mut stdout, &report);
        }
        out!("reports in {}", out.display());
        out!(
            "timeline: {}",
            out.join(crate::report::HTML_REPORT).display()
        );
    }
    exit_code(&report)
}

/// The safety rail of a rehearsal, before anything is touched: on staging
/// every scenario must be one (a world of namespaces has no business on a
/// real client) and `--allow-external` must name every remote address it
/// touches; elsewhere `--allow-external` means nothing and is refused
/// rather than ignored.
fn check_staging(
    scenarios: &[(PathBuf, Plan)],
    staging: bool,
    allowed: &[std::net::IpAddr],
) -> Result<(), u8> {
    if !staging {
        if !allowed.is_empty() {
            eprintln!("error: --allow-external is for --target staging only");
            return Err(exit::INVALID_INPUT);
        }
        return Ok(());
    }
    let mut ok = true;
    for (file, s) in scenarios {
        let why = match super::plan::staging::mismatch(s.is_rehearsal(), true) {
            Some(why) => why.to_string(),
            None => {
                let unallowed = s.unallowed(allowed);
                if unallowed.is_empty() {
                    continue;
                }
                super::plan::staging::refusal(&unallowed)
            }
        };
        eprintln!("{}: scenario {} {why}", file.display(), s.id);
        ok = false;
    }
    if ok { Ok(()) } else { Err(exit::INVALID_INPUT) }
}

/// A killed run's namespaces, mounts, firewall tables and changed kernel
/// settings are still on this machine and may disturb this run: say so,
/// and how to remove them, but remove nothing (issue 11 §4). On the host
/// only, for either target: the guest boots with an empty /run, and a host
/// ledger's pids would mean nothing in its pid namespace.
fn warn_of_dead_runs(root: &Path) {
    for dead in crate::ledger::dead_runs(root) {
        eprintln!("{dead}");
    }
}

fn exit_code(report: &RunReport) -> u8 {
    if report.count(Verdict::Error) > 0 {
        exit::INTERNAL
    } else if report.count(Verdict::Fail) + report.count(Verdict::Xpass) > 0 {
        exit::FAILED
    } else if report.count(Verdict::Aborted) > 0 {
        exit::ABORTED
    } else {
        exit::OK
    }
}

/// Points `stackquake-out/latest` at the default output directory.
fn link_latest(out: &Path) {
    if let (Some(parent), Some(name)) = (out.parent(), out.file_name())
        && parent.ends_with("stackquake-out")
    {
        let latest = parent.join("latest");
        let _ = std::fs::remove_file(&latest);
        let _ = std::os::unix::fs::symlink(name, latest);
    }
}

fn run_here(
    run_id: &str,
    scenarios: &[(PathBuf, Plan)],
    target: Target,
    label: String,
    out: &Path,
    args: &RunArgs,
) -> RunReport {
    let kernel = engine::kernel_release();
    // In the guest, results also go out as they happen (report::stream):
    // the host keeps them if it has to kill the guest.
    if args.in_guest {
        Stream::begin_run(out, &kernel);
    }
    let mut results = Vec::new();
    let repeat = args.repeat.max(1);
    let rounds = (1..=repeat).flat_map(|k| scenarios.iter().map(move |case| (k, case)));
    for (k, (file, s)) in rounds {
        // Each round keeps its own files: the round that failed among
        // passing ones is the one whose capture and stacks matter.
        let files_dir = (repeat > 1).then(|| format!("{}/repeat-{k}", s.id));
        let observer: Box<dyn Observer> = if args.in_guest {
            Box::new(vec![
                Box::new(Progress::relayed(&s.id)) as Box<dyn Observer>,
                Box::new(Stream::scenario(out, &s.id, &s.title, file)),
            ])
        } else {
            Box::new(Progress::stderr(&s.id))
        };
        let opts = RunOptions {
            target,
            scratch: std::env::temp_dir().join("stackquake"),
            artifacts: Some(out.join(files_dir.as_deref().unwrap_or(&s.id))),
            observer: Some(observer),
        };
        eprintln!("running {} ({})", s.id, file.display());
        let r = ScenarioResult {
            files_dir,
            ..engine::run_scenario(file, s, opts)
        };
        if args.in_guest {
            Stream::result(out, &r);
        }
        eprintln!("{} {}", r.verdict, s.id);
        let failed = matches!(r.verdict, Verdict::Fail | Verdict::Error | Verdict::Xpass);
        let stop = crate::sys::termination_requested() || (args.until_fail && failed);
        results.push(r);
        if stop {
            break;
        }
    }
    RunReport {
        run_id: run_id.into(),
        stackquake: env!("CARGO_PKG_VERSION").into(),
        target: label,
        kernel,
        results,
    }
}

/// Runs every case on each `--kernel` in turn, one guest per kernel, and
/// merges their reports into one. With one kernel (or none: the default)
/// the guest writes straight into `out`; with several, each guest's files
/// (console, per-step artifacts) go to `out/kernel-<spec>/` and the merged
/// journal, JUnit and timeline to `out`.
fn run_on_kernels(
    args: &RunArgs,
    run_id: &str,
    scenarios: &[(PathBuf, Plan)],
    files: &[PathBuf],
    out: &Path,
) -> Result<RunReport, u8> {
    for (i, kernel) in args.kernel.iter().enumerate() {
        if args.kernel[..i].contains(kernel) {
            eprintln!("error: --kernel {} is given twice", kernel.display());
            return Err(exit::INVALID_INPUT);
        }
    }
    let jobs = args.jobs.unwrap_or_else(|| default_jobs(args.vm_memory));
    if jobs > 1 && scenarios.len() * args.kernel.len().max(1) > 1 {
        return run_fanned_out(args, jobs as usize, run_id, scenarios, out);
    }
    let [_, _, ..] = args.kernel.as_slice() else {
        let guest = Guest {
            kernel: args.kernel.first().map(PathBuf::as_path),
            cpus: vcpus(args, 1),
            case: None,
            out,
        };
        return run_in_vm(args, run_id, scenarios, files, guest);
    };
    let mut merged: Option<RunReport> = None;
    for kernel in &args.kernel {
        let dir = out.join(kernel_dir(kernel));
        eprintln!("kernel {}: booting a guest", kernel.display());
        let guest = Guest {
            kernel: Some(kernel),
            cpus: vcpus(args, 1),
            case: None,
            out: &dir,
        };
        let mut report = run_in_vm(args, run_id, scenarios, files, guest)?;
        for r in &mut report.results {
            r.files_dir = Some(kernel_files_dir(kernel, r.files_dir()));
        }
        merged = Some(match merged {
            None => report,
            Some(mut all) => {
                all.kernel = format!("{}, {}", all.kernel, report.kernel);
                all.target = format!("{}; {}", all.target, report.target);
                all.results.extend(report.results);
                all
            }
        });
        if crate::sys::termination_requested() {
            break;
        }
    }
    Ok(merged.expect("at least two kernels"))
}

/// Every case on every kernel in a guest of its own, up to `jobs` at once
/// (`guests::fan_out`); each guest's files go to
/// `out/guests/<n>-<case>[-<kernel>]/`, the merged reports to `out`, and
/// each case's own files to `out/<case>/`, with several kernels
/// `out/kernel-<name>/<case>/`: where one guest (per kernel) puts them.
fn run_fanned_out(
    args: &RunArgs,
    jobs: usize,
    run_id: &str,
    scenarios: &[(PathBuf, Plan)],
    out: &Path,
) -> Result<RunReport, u8> {
    let kernels: Vec<Option<&Path>> = if args.kernel.is_empty() {
        vec![None]
    } else {
        args.kernel.iter().map(|k| Some(k.as_path())).collect()
    };
    let tasks: Vec<GuestTask> = kernels
        .iter()
        .flat_map(|k| scenarios.iter().map(move |case| (*k, case)))
        .enumerate()
        .map(|(i, (kernel, (file, plan)))| {
            let mut name = format!("{:03}-{}", i + 1, safe_name(&plan.id));
            if let Some(k) = kernel.filter(|_| kernels.len() > 1) {
                name = format!("{name}-{}", kernel_dir_name(k));
            }
            GuestTask {
                kernel,
                file,
                plan,
                dir: out.join("guests").join(name),
            }
        })
        .collect();
    eprintln!("{} cases, up to {jobs} guests at once", tasks.len());
    let cpus = vcpus(args, jobs.min(tasks.len()));
    let results = fan_out(jobs, &tasks, |t| {
        let case = [(t.file.to_path_buf(), t.plan.clone())];
        let guest = Guest {
            kernel: t.kernel,
            cpus,
            case: Some(&t.plan.id),
            out: &t.dir,
        };
        let mut report = run_in_vm(args, run_id, &case, &[t.file.to_path_buf()], guest);
        let id = t.plan.id.as_str();
        let Some(kernel) = t.kernel.filter(|_| kernels.len() > 1) else {
            lift_case_files(&t.dir, &out.join(id), id);
            return report;
        };
        lift_case_files(&t.dir, &out.join(kernel_files_dir(kernel, id)), id);
        if let Ok(report) = &mut report {
            for r in &mut report.results {
                r.files_dir = Some(kernel_files_dir(kernel, r.files_dir()));
            }
        }
        report
    })?;
    let mut kernels_seen: Vec<String> = Vec::new();
    for r in &results {
        if !kernels_seen.contains(&r.kernel) {
            kernels_seen.push(r.kernel.clone());
        }
    }
    Ok(RunReport {
        run_id: run_id.into(),
        stackquake: env!("CARGO_PKG_VERSION").into(),
        target: format!("vm ({} guests, up to {jobs} at once)", tasks.len()),
        kernel: kernels_seen.join(", "),
        results,
    })
}

/// Moves a case's files (per-step artifacts, server captures) from its
/// guest's directory up to `to`, where they lie when one guest runs every
/// case, so the timeline page links them alike.
fn lift_case_files(guest_dir: &Path, to: &Path, case: &str) {
    let from = guest_dir.join(case);
    if !from.is_dir() {
        return;
    }
    let moved = to
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::rename(&from, to));
    if let Err(e) = moved {
        tracing::warn!("cannot move {} to {}: {e}", from.display(), to.display());
    }
}

/// Where a case's own files lie in a kernel matrix, relative to the
/// output directory: `files_dir` (`<id>`, or `<id>/repeat-<k>`) in the
/// kernel's own directory, as one guest per kernel writes them.
fn kernel_files_dir(kernel: &Path, files_dir: &str) -> String {
    format!("{}/{files_dir}", kernel_dir(kernel))
}

/// The directory of a kernel's guest (one kernel of several, one guest
/// each) in the output directory.
fn kernel_dir(kernel: &Path) -> String {
    format!("kernel-{}", kernel_dir_name(kernel))
}

/// How many guests run at once when `--jobs` is not given. Under TCG a
/// guest needs a core only while it computes, and the seed scenarios spend
/// much of their time waiting on kernel timers (lockd, statd, grace
/// periods): three one-vCPU guests per core kept this 2-core machine about
/// 80% busy and ran the suite fastest (bench/README.md); never more than
/// the available memory holds at `--vm-memory` each plus QEMU's own
/// ~256 MiB.
fn default_jobs(vm_memory_mib: u32) -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    jobs_for(cores, available_memory_mib().unwrap_or(0), vm_memory_mib)
}

fn jobs_for(cores: u32, available_mib: u64, vm_memory_mib: u32) -> u32 {
    let fit = available_mib / (u64::from(vm_memory_mib) + 256);
    (3 * cores).min(fit.min(u64::from(u32::MAX)) as u32).max(1)
}

/// vCPUs for each of `guests` guests at once: `--vm-cpus`, else
/// `vm::guest_cpus`.
fn vcpus(args: &RunArgs, guests: usize) -> u32 {
    args.vm_cpus
        .unwrap_or_else(|| crate::vm::guest_cpus(u32::try_from(guests).unwrap_or(u32::MAX)))
}

/// MemAvailable from /proc/meminfo, in MiB.
fn available_memory_mib() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// A directory name for a `--kernel` spec: its file name for an image
/// ("vmlinuz-6.12.118+deb12-amd64"), the series as given ("6.12").
pub(super) fn kernel_dir_name(spec: &Path) -> String {
    safe_name(
        &spec
            .file_name()
            .unwrap_or(spec.as_os_str())
            .to_string_lossy(),
    )
}

/// `name` with everything but letters, digits and `._+-` as `_`.
pub(super) fn safe_name(name: &str) -> String {
    name.replace(
        |c: char| !(c.is_ascii_alphanumeric() || "._+-".contains(c)),
        "_",
    )
}

/// One guest of a run: the kernel it boots (None: the default), its vCPUs,
/// the one case it runs (None: every case given) and its output directory.
pub(super) struct Guest<'a> {
    pub kernel: Option<&'a Path>,
    pub cpus: u32,
    pub case: Option<&'a str>,
    pub out: &'a Path,
}

/// Boots `guest`, which runs the same binary on the same files (the host
/// root is shared read-only), then reads its report back.
pub(super) fn run_in_vm(
    args: &RunArgs,
    run_id: &str,
    scenarios: &[(PathBuf, Plan)],
    files: &[PathBuf],
    guest: Guest<'_>,
) -> Result<RunReport, u8> {
    let Guest {
        kernel,
        cpus,
        case,
        out,
    } = guest;
    let fail = |e: String| {
        eprintln!("error: {e}");
        exit::UNAVAILABLE
    };
    std::fs::create_dir_all(out).map_err(|e| fail(format!("create {}: {e}", out.display())))?;
    let out = out
        .canonicalize()
        .map_err(|e| fail(format!("{}: {e}", out.display())))?;
    let exe = std::env::current_exe().map_err(|e| fail(e.to_string()))?;
    let mut argv: Vec<std::ffi::OsString> = vec![
        exe.into(),
        "run".into(),
        "--in-guest".into(),
        "--output".into(),
        crate::vm::GUEST_OUT_DIR.into(),
        "--repeat".into(),
        args.repeat.to_string().into(),
    ];
    if args.until_fail {
        argv.push("--until-fail".into());
    }
    for (k, v) in &args.vars {
        argv.push(format!("--var={k}={v}").into());
    }
    match case {
        Some(id) => argv.push(format!("--case={id}").into()),
        None => {
            if let Some(p) = args.partition {
                argv.push(format!("--partition={p}").into());
            }
        }
    }
    // Matrix cases share a file; the guest expands it again.
    for file in files {
        let abs = file
            .canonicalize()
            .map_err(|e| fail(format!("{}: {e}", file.display())))?;
        argv.push(abs.into());
    }
    // The guest gets the scenarios' own limits plus time to tear down, for
    // every round of --repeat, plus time to boot.
    let round: Duration = scenarios
        .iter()
        .map(|(_, s)| s.timeout + Duration::from_secs(30))
        .sum();
    let budget = round * args.repeat.max(1);
    let job = crate::vm::GuestJob {
        argv,
        env: vec![(
            "STACKQUAKE_LOG".into(),
            std::env::var_os("STACKQUAKE_LOG").unwrap_or("info".into()),
        )],
        cwd: "/".into(),
        timeout: budget + Duration::from_secs(60),
        kernel: kernel.map(Path::to_path_buf),
        accel: match args.accel {
            AccelArg::Auto => crate::vm::Accel::Auto,
            AccelArg::Kvm => crate::vm::Accel::Kvm,
            AccelArg::Tcg => crate::vm::Accel::Tcg,
        },
        memory_mib: args.vm_memory,
        cpus,
        out_dir: out.clone(),
    };
    let outcome = crate::vm::run(&job).map_err(|e| fail(e.to_string()))?;
    let (problem, console) = match &outcome {
        crate::vm::GuestOutcome::Exited { console, .. } => (None, console.clone()),
        crate::vm::GuestOutcome::TimedOut { console } => (
            Some(format!(
                "guest killed after {}s without finishing",
                job.timeout.as_secs()
            )),
            console.clone(),
        ),
        crate::vm::GuestOutcome::BootFailed { reason, console } => (
            Some(format!("guest failed to boot: {reason}")),
            console.clone(),
        ),
        crate::vm::GuestOutcome::Interrupted { console } => (
            Some("interrupted by a signal; the guest was killed before its job reported".into()),
            console.clone(),
        ),
    };
    let mut report = match (problem, RunReport::read(&out)) {
        (None, Ok(r)) => r,
        (problem, read) => {
            let why = problem
                .or_else(|| read.err().map(|e| format!("guest left no report: {e}")))
                .unwrap_or_default();
            let kernel = kernel.map_or("default".into(), |k| k.display().to_string());
            let why = format!("{why} (console: {})", console.display());
            // What the guest streamed before it stopped is kept.
            crate::report::stream::recover(&out, scenarios, &why)
                .unwrap_or_else(|| errored(run_id, scenarios, &kernel, &why))
        }
    };
    // One run, one id: the guest's own id would not match the output directory.
    report.run_id = run_id.to_string();
    report.target = format!("vm ({})", outcome_label(&outcome));
    Ok(report)
}

fn outcome_label(o: &crate::vm::GuestOutcome) -> String {
    match o {
        crate::vm::GuestOutcome::Exited {
            boot_time,
            total,
            job,
            clock,
            ..
        } => {
            let s = |ms: u64| ms as f64 / 1000.0;
            let init = clock
                .kernel_ran_init_ms
                .map_or(String::new(), |ms| format!("/init at {:.2}s, ", s(ms)));
            format!(
                "booted in {:.2}s (guest clock: {init}guest-init at {:.2}s, job at {:.2}s), \
                 job {:.2}s, {:.2}s in all",
                boot_time.as_secs_f64(),
                s(clock.guest_init_ms),
                s(clock.job_ms),
                job.as_secs_f64(),
                total.as_secs_f64()
            )
        }
        crate::vm::GuestOutcome::TimedOut { .. } => "timed out".into(),
        crate::vm::GuestOutcome::BootFailed { .. } => "boot failed".into(),
        crate::vm::GuestOutcome::Interrupted { .. } => "interrupted".into(),
    }
}

/// A report in which every scenario is ERROR for the same reason, on the
/// kernel `--kernel` named (the guest never said which it was).
fn errored(run_id: &str, scenarios: &[(PathBuf, Plan)], kernel: &str, why: &str) -> RunReport {
    RunReport {
        run_id: run_id.into(),
        stackquake: env!("CARGO_PKG_VERSION").into(),
        target: "vm".into(),
        kernel: kernel.into(),
        results: scenarios
            .iter()
            .map(|(file, s)| ScenarioResult {
                id: s.id.clone(),
                title: s.title.clone(),
                file: file.display().to_string(),
                verdict: Verdict::Error,
                kernel: kernel.into(),
                reason: Some(why.to_string()),
                duration_s: 0.0,
                outcomes: Vec::new(),
                journal: Default::default(),
                files_dir: None,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_jobs_are_three_per_core_within_memory() {
        // This machine: 2 cores, ~20 GiB available, 2 GiB guests.
        assert_eq!(jobs_for(2, 20_000, 2048), 6);
        // Memory for three guests only.
        assert_eq!(jobs_for(8, 3 * 2304, 2048), 3);
        // Never none, even without /proc/meminfo.
        assert_eq!(jobs_for(2, 0, 2048), 1);
    }
}
