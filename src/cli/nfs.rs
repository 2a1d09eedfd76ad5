//! `stackquake nfs serve` runs the in-process NFS server alone for manual
//! reproduction; `stackquake nfs fault` breaks and heals it through its
//! control socket.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Args, Subcommand};

use super::exit;
use crate::nfs::control::{self, ActionSpec, ControlSocket, DownMode, Request, Response, RuleSpec};
use crate::nfs::export::Squash;
use crate::nfs::names;
use crate::nfs::server::{DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_CLIENT};
use crate::nfs::{ConnectionLimits, ExportSpec, Listeners, LockConfig, NfsServer, ServerConfig};

#[derive(Debug, Args)]
pub struct NfsArgs {
    #[command(subcommand)]
    pub command: NfsCommand,
}

#[derive(Debug, Subcommand)]
pub enum NfsCommand {
    /// Serve directories over NFSv3 (TCP and UDP) until SIGINT/SIGTERM or a
    /// `shutdown` request.
    Serve(ServeArgs),
    /// Break or heal a running `nfs serve` through its control socket.
    Fault(FaultArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A directory to export, optionally with the name clients mount
    /// (default: "/" + the directory's last component). Repeatable.
    #[arg(
        long = "export",
        value_name = "DIR[:NAME]",
        required_unless_present = "host_services"
    )]
    pub exports: Vec<String>,
    /// Where to listen (TCP and, unless --no-udp, UDP on the same port).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: SocketAddr,
    /// Serve TCP only.
    #[arg(long)]
    pub no_udp: bool,
    /// Also answer the portmapper here (usually ADDR:111).
    #[arg(long, value_name = "ADDR:PORT")]
    pub portmap: Option<SocketAddr>,
    /// Allowed client networks (CIDR), for every export; default anyone.
    #[arg(long = "client", value_name = "CIDR")]
    pub clients: Vec<String>,
    /// Export read-only.
    #[arg(long)]
    pub read_only: bool,
    /// How clients' ids are mapped, as exports(5): `root` (a client's uid 0
    /// acts as nobody, knfsd's default), `none` (no_root_squash) or `all`.
    #[arg(long, value_enum, default_value = "root")]
    pub squash: SquashArg,
    /// Write a pcap of every call and reply.
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    /// The control socket (JSON lines) to create.
    #[arg(long, value_name = "SOCKET")]
    pub control: PathBuf,
    /// Serve NLM (100021 v1/v3/v4) and NSM (100024 v1) for NFSv3 locking;
    /// kernel clients find NLM through --portmap ADDR:111.
    #[arg(long)]
    pub locking: bool,
    /// Grace period after start and restart (with --locking): only lock
    /// reclaims are granted. knfsd uses 90s.
    #[arg(long, default_value = "0s")]
    pub grace: humantime::Duration,
    /// Stand in for a client host's rpcbind and rpc.statd instead: NSM only,
    /// no exports needed; listen on 127.0.0.1:111 of the client's namespace
    /// so the kernel's lockd can register and monitor.
    #[arg(long, conflicts_with = "locking")]
    pub host_services: bool,
    /// TCP connections open at once; over it, a new one closes the
    /// longest-idle one with no call in service (or, if every one has a
    /// call in service, is closed at once).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CONNECTIONS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_connections: usize,
    /// TCP connections open at once from one client address; over it, as
    /// for --max-connections among that address's connections.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_connections_per_client: usize,
    /// Close a TCP connection with no call in service for this long, as
    /// knfsd does after 6 minutes; 0s never closes one.
    #[arg(long, value_name = "DURATION", default_value = "6m")]
    pub idle_timeout: humantime::Duration,
}

#[derive(Debug, Args)]
pub struct FaultArgs {
    /// The control socket of the running server.
    #[arg(long, value_name = "SOCKET")]
    pub control: PathBuf,
    #[command(subcommand)]
    pub action: FaultCommand,
}

/// Which calls a rule matches.
#[derive(Debug, Clone, Args)]
pub struct MatchArgs {
    /// Program: nfs, mount, portmap, nlm, nsm or a number.
    #[arg(long)]
    pub prog: Option<String>,
    /// Program version: with 4, --proc names an NFSv4 operation.
    #[arg(long)]
    pub vers: Option<u32>,
    /// Procedure name (WRITE, MNT, …), NFSv3's or else MOUNT's without
    /// --prog, else an NFSv4 operation a COMPOUND contains (EXCHANGE_ID,
    /// OPEN, OP_WRITE); a number needs --prog.
    #[arg(long = "proc")]
    pub proc_: Option<String>,
    /// Only calls on this export.
    #[arg(long)]
    pub export: Option<String>,
    /// Only calls from this network (CIDR).
    #[arg(long)]
    pub client: Option<String>,
    /// Act only on the N-th matching call.
    #[arg(long)]
    pub nth: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum FaultCommand {
    /// Unexport: calls with its handles answer NFS3ERR_STALE, MNT is refused.
    Unexport {
        name: String,
    },
    /// Export again: the old handles work again.
    Reexport {
        name: String,
    },
    /// Make every handle of the export issued so far STALE for good.
    InvalidateHandles {
        name: String,
    },
    /// Hold matching calls until healed.
    Stall(MatchArgs),
    /// Hold matching calls for a while, then serve them.
    Delay {
        #[command(flatten)]
        matcher: MatchArgs,
        /// e.g. 500ms, 2s
        duration: humantime::Duration,
    },
    /// Serve matching calls but send no reply.
    Drop(MatchArgs),
    /// Close the connection instead of serving matching calls.
    Close(MatchArgs),
    /// Answer matching calls with a status (NFS3ERR_IO, JUKEBOX, 5, …).
    Status {
        #[command(flatten)]
        matcher: MatchArgs,
        status: String,
    },
    /// Remove one rule (held calls resume).
    Heal {
        id: u64,
    },
    /// Remove every rule.
    HealAll,
    /// List active rules.
    List,
    /// Restart: new write verifier, connections dropped.
    Restart {
        /// Make every handle STALE (a server that lost its handle table).
        #[arg(long)]
        lose_handles: bool,
        /// How long the server stays down.
        #[arg(long, default_value = "0s")]
        downtime: humantime::Duration,
    },
    /// nlm.down: the lock manager stops answering (stall, drop: prints a
    /// rule id, heal it) or leaves the portmapper (unregister: `nlm-up`).
    NlmDown {
        #[arg(long, value_enum, default_value = "stall")]
        mode: DownModeArg,
    },
    /// Register the lock manager again after `nlm-down --mode unregister`.
    NlmUp,
    /// nsm.down: the same for the status monitor.
    NsmDown {
        #[arg(long, value_enum, default_value = "stall")]
        mode: DownModeArg,
    },
    NsmUp,
    /// nfs.expire_lease: the NFSv4 leases of the clients that registered
    /// from this address (every client without one) run out now: their
    /// opens and locks are released.
    ExpireLease {
        #[arg(long)]
        client: Option<std::net::IpAddr>,
    },
    /// nfs.sequence_flags: every NFSv4.1+ SEQUENCE reply carries these
    /// status flags from now on (e.g. restart_reclaim_needed,
    /// cb_path_down); none stops them.
    SequenceFlags {
        #[arg(long = "flag")]
        flags: Vec<String>,
    },
    /// nlm.grace: force a grace period of this long from now (0s ends one).
    NlmGrace {
        duration: humantime::Duration,
    },
    /// Held and blocked locks, grace left, NSM state.
    LockStatus,
    /// Stop the server.
    Shutdown,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SquashArg {
    Root,
    None,
    All,
}

impl From<SquashArg> for Squash {
    fn from(s: SquashArg) -> Squash {
        match s {
            SquashArg::Root => Squash::Root,
            SquashArg::None => Squash::NoRootSquash,
            SquashArg::All => Squash::All,
        }
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum DownModeArg {
    Stall,
    Drop,
    Unregister,
}

impl From<DownModeArg> for DownMode {
    fn from(m: DownModeArg) -> DownMode {
        match m {
            DownModeArg::Stall => DownMode::Stall,
            DownModeArg::Drop => DownMode::Drop,
            DownModeArg::Unregister => DownMode::Unregister,
        }
    }
}

pub fn run(args: NfsArgs) -> u8 {
    match args.command {
        NfsCommand::Serve(a) => serve(a),
        NfsCommand::Fault(a) => fault(a),
    }
}

/// "DIR[:NAME]"; a ':' inside DIR is not supported.
fn parse_export(s: &str, args: &ServeArgs) -> ExportSpec {
    let (dir, name) = match s.split_once(':') {
        Some((d, n)) => (PathBuf::from(d), n.to_string()),
        None => {
            let dir = PathBuf::from(s);
            let base = dir
                .file_name()
                .map_or_else(|| "export".into(), |n| n.to_string_lossy().into_owned());
            (dir, format!("/{base}"))
        }
    };
    ExportSpec {
        name,
        dir,
        clients: args.clients.clone(),
        read_only: args.read_only,
        squash: args.squash.into(),
    }
}

fn bind(args: &ServeArgs) -> std::io::Result<Listeners> {
    let tcp = TcpListener::bind(args.listen)?;
    let port = tcp.local_addr()?.port();
    let mut l = Listeners::new(tcp);
    if !args.no_udp {
        l = l.with_udp(UdpSocket::bind(SocketAddr::new(args.listen.ip(), port))?);
    }
    if let Some(pm) = args.portmap {
        let t = TcpListener::bind(pm)?;
        let u = if args.no_udp {
            None
        } else {
            Some(UdpSocket::bind(t.local_addr()?)?)
        };
        l = l.with_portmap(t, u);
    }
    Ok(l)
}

fn serve(args: ServeArgs) -> u8 {
    // Blocked before any thread starts so every thread inherits the mask and
    // the signals reach only the waiter below.
    let signals = {
        use nix::sys::signal::{SigSet, Signal};
        let mut set = SigSet::empty();
        set.add(Signal::SIGINT);
        set.add(Signal::SIGTERM);
        if let Err(e) = set.thread_block() {
            eprintln!("error: blocking signals: {e}");
            return exit::INTERNAL;
        }
        set
    };
    let config = ServerConfig {
        exports: args
            .exports
            .iter()
            .map(|e| parse_export(e, &args))
            .collect(),
        connections: ConnectionLimits {
            max_total: args.max_connections,
            max_per_client: args.max_connections_per_client,
            idle_timeout: Some(*args.idle_timeout).filter(|d| !d.is_zero()),
        },
    };
    raise_descriptor_limit();
    let listeners = match bind(&args) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: listening on {}: {e}", args.listen);
            return exit::UNAVAILABLE;
        }
    };
    let locking = if args.host_services {
        LockConfig::client_host()
    } else if args.locking {
        LockConfig {
            grace: *args.grace,
            ..LockConfig::default()
        }
    } else {
        LockConfig::off()
    };
    let server = match NfsServer::start_with_locking(config, listeners, locking) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::INVALID_INPUT;
        }
    };
    if let Some(p) = &args.pcap
        && let Err(e) = server.start_capture(p)
    {
        eprintln!("error: {e}");
        return exit::UNAVAILABLE;
    }
    let control = match ControlSocket::bind(&args.control) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::UNAVAILABLE;
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    // Never joined: it waits for a signal that may never come.
    let waiter = std::thread::Builder::new()
        .name("nfs-signals".into())
        .spawn(move || {
            if let Ok(sig) = signals.wait() {
                tracing::info!(?sig, "stopping");
            }
            s.store(true, Ordering::SeqCst);
        });
    if let Err(e) = waiter {
        eprintln!("error: spawning the signal thread: {e}");
        return exit::INTERNAL;
    }
    let udp = server
        .udp_addr()
        .map_or_else(|| "-".to_string(), |a| a.to_string());
    // One line on stdout that scripts (and tests) can wait for.
    println!(
        "listening tcp={} udp={udp} control={}",
        server.local_addr(),
        args.control.display()
    );
    let _ = std::io::stdout().flush();
    control.serve(&server, &stop);
    drop(control);
    server.shutdown();
    exit::OK
}

/// Raises the soft limit on open descriptors to the hard one, as Go's
/// runtime does for every program since 1.19: the soft limit (often 1,024)
/// would otherwise be what a flood meets, as EMFILE, before
/// --max-connections.
fn raise_descriptor_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!(soft, hard, error = %e, "cannot raise the descriptor limit");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot read the descriptor limit"),
    }
}

fn rule(m: &MatchArgs, action: ActionSpec) -> Result<RuleSpec, String> {
    let target = names::call_target(m.prog.as_deref(), m.vers, m.proc_.as_deref())
        .map_err(|e| e.to_string())?;
    Ok(RuleSpec {
        prog: target.prog,
        vers: target.vers,
        proc_: target.proc_,
        op: target.op,
        export: m.export.clone(),
        client: m.client.clone(),
        action,
        nth: m.nth,
    })
}

fn fault_request(cmd: FaultCommand) -> Result<Request, String> {
    Ok(match cmd {
        FaultCommand::Unexport { name } => Request::Unexport { export: name },
        FaultCommand::Reexport { name } => Request::Reexport { export: name },
        FaultCommand::InvalidateHandles { name } => Request::InvalidateHandles { export: name },
        FaultCommand::Stall(m) => Request::Fault {
            rule: rule(&m, ActionSpec::Stall)?,
        },
        FaultCommand::Delay { matcher, duration } => Request::Fault {
            rule: rule(
                &matcher,
                ActionSpec::Delay {
                    ms: duration.as_millis() as u64,
                },
            )?,
        },
        FaultCommand::Drop(m) => Request::Fault {
            rule: rule(&m, ActionSpec::Drop)?,
        },
        FaultCommand::Close(m) => Request::Fault {
            rule: rule(&m, ActionSpec::Close)?,
        },
        FaultCommand::Status { matcher, status } => {
            let status =
                names::status(&status).ok_or_else(|| format!("unknown status {status:?}"))?;
            Request::Fault {
                rule: rule(&matcher, ActionSpec::Status { status })?,
            }
        }
        FaultCommand::Heal { id } => Request::Heal { id },
        FaultCommand::HealAll => Request::HealAll,
        FaultCommand::List => Request::List,
        FaultCommand::Restart {
            lose_handles,
            downtime,
        } => Request::Restart {
            keep_handles: !lose_handles,
            downtime_ms: downtime.as_millis() as u64,
        },
        FaultCommand::NlmDown { mode } => Request::NlmDown { mode: mode.into() },
        FaultCommand::NlmUp => Request::NlmUp,
        FaultCommand::NsmDown { mode } => Request::NsmDown { mode: mode.into() },
        FaultCommand::NsmUp => Request::NsmUp,
        FaultCommand::NlmGrace { duration } => Request::NlmGrace {
            ms: duration.as_millis() as u64,
        },
        FaultCommand::ExpireLease { client } => Request::ExpireLease { client },
        FaultCommand::SequenceFlags { flags } => Request::SequenceFlags { flags },
        FaultCommand::LockStatus => Request::LockStatus,
        FaultCommand::Shutdown => Request::Shutdown,
    })
}

fn print_response(resp: &Response) {
    if let Some(id) = resp.id {
        println!("rule {id}");
    }
    if let Some(n) = resp.expired {
        println!("expired {n} client(s)");
    }
    if let Some(l) = &resp.locks {
        println!(
            "held={} blocked={} grace_ms={} nsm_state={} monitors={}",
            l.held, l.blocked, l.grace_ms, l.nsm_state, l.monitors
        );
    }
    for r in resp.rules.iter().flatten() {
        let prog = r.rule.prog.unwrap_or(0);
        let what = match r.rule.proc_ {
            Some(p) => names::procedure_name(prog, r.rule.vers, p),
            None => "*".into(),
        };
        let action = match &r.rule.action {
            ActionSpec::Status { status } => format!("status {}", names::status_name(*status)),
            ActionSpec::Delay { ms } => format!("delay {ms}ms"),
            ActionSpec::Stall => "stall".into(),
            ActionSpec::Drop => "drop".into(),
            ActionSpec::Close => "close".into(),
        };
        println!(
            "{}\tprog={}\tproc={what}\texport={}\tclient={}\tnth={}\t{action}",
            r.id,
            r.rule.prog.map_or_else(|| "*".into(), |p| p.to_string()),
            r.rule.export.as_deref().unwrap_or("*"),
            r.rule.client.as_deref().unwrap_or("*"),
            r.rule.nth.map_or_else(|| "*".into(), |n| n.to_string()),
        );
    }
}

fn fault(args: FaultArgs) -> u8 {
    let req = match fault_request(args.action) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::INVALID_INPUT;
        }
    };
    match control::request(Path::new(&args.control), &req) {
        Ok(resp) if resp.ok => {
            print_response(&resp);
            exit::OK
        }
        Ok(resp) => {
            eprintln!("error: {}", resp.error.unwrap_or_default());
            exit::FAILED
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::UNAVAILABLE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Serve {
        #[command(flatten)]
        args: ServeArgs,
    }

    fn parse(extra: &[&str]) -> Result<ServeArgs, clap::Error> {
        // argv[0] is the program's own name, as clap reads it.
        let base = [
            env!("CARGO_PKG_NAME"),
            "--export",
            "/srv",
            "--listen",
            "127.0.0.1:2049",
        ];
        let base = base.iter().chain(["--control", "/run/c.sock"].iter());
        Serve::try_parse_from(base.chain(extra.iter())).map(|s| s.args)
    }

    #[test]
    fn connection_flags_default_to_the_servers_defaults() {
        let a = parse(&[]).unwrap();
        let d = ConnectionLimits::default();
        assert_eq!(a.max_connections, d.max_total);
        assert_eq!(a.max_connections_per_client, d.max_per_client);
        assert_eq!(Some(*a.idle_timeout), d.idle_timeout);
    }

    #[test]
    fn a_cap_of_zero_is_refused() {
        assert!(parse(&["--max-connections", "0"]).is_err());
        assert!(parse(&["--max-connections-per-client", "0"]).is_err());
        let a = parse(&["--max-connections", "8", "--idle-timeout", "500ms"]).unwrap();
        assert_eq!(a.max_connections, 8);
        assert_eq!(*a.idle_timeout, std::time::Duration::from_millis(500));
    }
}
