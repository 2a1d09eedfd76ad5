//! `DaemonNs`: where one host's nfs-utils daemons (rpcbind, rpc.statd,
//! rpc.mountd, rpc.nfsd) run — its network namespace plus a private mount
//! namespace.
//!
//! Those tools hard-code `/var/lib/nfs`, `/run` and `/proc/fs/nfsd`, so two
//! hosts' daemons sharing the machine's mount namespace would share
//! statd's monitor list, rpcbind's socket and nfsd's export tables. An
//! *anchor* process (`unshare --mount … sleep infinity`, started inside
//! the netns) holds a mount namespace with its own tmpfs over
//! `/var/lib/nfs` and `/run`; every tool then runs there through
//! `nsenter`. Ending the anchor takes the namespace and its mounts along.
//!
//! Readiness is asked of the daemons the way the kernel asks: a NULL call
//! at the port rpcbind gives, never a fixed sleep (a TCG guest on a loaded
//! host starts rpc.statd in seconds, not milliseconds).

use std::fs::{self, File};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::peer::Peer;
use super::portmap;
use crate::ledger::Ledger;
use crate::net::{Netns, command_in};
use crate::process::Recorded;
use crate::tools::CommandError;

/// How long a daemon may take to come up.
const READY_WAIT: Duration = Duration::from_secs(30);
const PORTMAP_PORT: u16 = 111;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{tool} not found: apt-get install {package} (on the host; guests share its /)")]
    ToolMissing {
        tool: &'static str,
        package: &'static str,
    },
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("{what} in netns {netns} did not come up within {waited:?}")]
    NotReady {
        what: String,
        netns: String,
        waited: Duration,
    },
    #[error("writing {path}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Spawn(#[from] crate::process::SpawnError),
    #[error("opening netns {netns}")]
    Netns {
        netns: String,
        source: crate::net::NetError,
    },
}

/// How long a daemon may take to die after SIGKILL before it is left to the
/// kernel (a daemon stuck in D state must not hang the teardown).
const KILL_PATIENCE: Duration = Duration::from_secs(3);

/// A daemon (or the anchor) started in a `DaemonNs`. Dropping it kills it
/// and marks its ledger entry done.
#[derive(Debug)]
pub struct DaemonProcess {
    name: String,
    child: Recorded,
}

impl DaemonProcess {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Still running (not exited, not reaped).
    pub fn alive(&mut self) -> bool {
        matches!(self.child.child.try_wait(), Ok(None))
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        match self.child.kill(KILL_PATIENCE) {
            Ok(_) => {
                let _ = self.child.child.wait();
                self.child.reaped();
            }
            // Its ledger entry stays open: the run reports it as left behind.
            Err(e) => tracing::error!(daemon = %self.name, error = %e, "daemon left behind"),
        }
    }
}

/// One host's netns and the private mount namespace its daemons share.
#[derive(Debug)]
pub struct DaemonNs {
    netns: String,
    /// For setns(2) by readiness probes.
    netns_file: File,
    ledger: Option<Ledger>,
    anchor: DaemonProcess,
}

impl DaemonNs {
    /// Starts the anchor in `ns` and mounts a fresh tmpfs named `tag` over
    /// `/var/lib/nfs` and `/run` in its mount namespace.
    pub fn start(ns: &Netns, tag: &str, ledger: Option<&Ledger>) -> Result<DaemonNs, DaemonError> {
        require_tools(&[("unshare", "util-linux"), ("nsenter", "util-linux")])?;
        let netns_file = ns.file().map_err(|source| DaemonError::Netns {
            netns: ns.name().to_string(),
            source,
        })?;
        let mut anchor = command_in(ns, "unshare");
        anchor.args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "sleep",
            "infinity",
        ]);
        let anchor = spawn("anchor", anchor, ledger)?;
        let me = DaemonNs {
            netns: ns.name().to_string(),
            netns_file,
            ledger: ledger.cloned(),
            anchor,
        };
        me.wait_own_mount_ns()?;
        // (A guest's /var/lib is an empty tmpfs: make the mount points.)
        for dir in ["/var/lib/nfs", "/run"] {
            me.run("mkdir", &["-p", dir])?;
            me.run("mount", &["-t", "tmpfs", tag, dir])?;
        }
        // nfs-utils 2.6 keeps sm/, sm.bak/ and state directly in /var/lib/nfs.
        me.run(
            "mkdir",
            &[
                "-p",
                "/var/lib/nfs/sm",
                "/var/lib/nfs/sm.bak",
                "/var/lib/nfs/rpc_pipefs",
                "/run/rpcbind",
            ],
        )?;
        Ok(me)
    }

    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// The anchor's pid: `nsenter -t <pid> -m -n` is inside these
    /// namespaces, for a program that is not ours (an operator's script).
    pub fn anchor_pid(&self) -> u32 {
        self.anchor.pid()
    }

    /// A command that runs inside this netns and mount namespace.
    pub fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg("-t")
            .arg(self.anchor.pid().to_string())
            .args(["-m", "-n", "--", program])
            .args(args);
        cmd
    }

    /// Runs a tool here to completion; its stdout.
    pub fn output(&self, program: &str, args: &[&str]) -> Result<String, DaemonError> {
        Ok(crate::tools::output(self.command(program, args))?)
    }

    pub fn run(&self, program: &str, args: &[&str]) -> Result<(), DaemonError> {
        self.output(program, args).map(drop)
    }

    /// A path inside this mount namespace, as seen from outside it.
    pub fn path(&self, rel: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root/{rel}", self.anchor.pid()))
    }

    pub fn write(&self, rel: &str, value: &str) -> Result<(), DaemonError> {
        let path = self.path(rel);
        fs::write(&path, value).map_err(|source| DaemonError::Write { path, source })
    }

    /// The anchor is still there (so is the mount namespace).
    pub fn alive(&mut self) -> bool {
        self.anchor.alive()
    }

    /// Starts a long-running daemon here, recorded in the ledger.
    pub fn spawn(&self, name: &str, args: &[&str]) -> Result<DaemonProcess, DaemonError> {
        spawn(
            name,
            self.command(args[0], &args[1..]),
            self.ledger.as_ref(),
        )
    }

    /// rpcbind in the foreground, once it answers.
    pub fn start_rpcbind(&self) -> Result<DaemonProcess, DaemonError> {
        require_tools(&[("rpcbind", "rpcbind")])?;
        let _ = fs::remove_file(self.path("run/rpcbind.sock"));
        let d = self.spawn("rpcbind", &["rpcbind", "-f", "-w"])?;
        self.wait_answering("rpcbind", portmap::PROGRAM, 2)?;
        Ok(d)
    }

    /// rpc.statd in the foreground, once registered and answering. `-L`:
    /// no sm-notify at start (nobody to notify in a fresh world).
    pub fn start_statd(&self) -> Result<DaemonProcess, DaemonError> {
        require_tools(&[("rpc.statd", "nfs-common")])?;
        let d = self.spawn("rpc.statd", &["rpc.statd", "-F", "-L"])?;
        self.wait_answering("rpc.statd", super::nsm::PROGRAM, super::nsm::VERSION)?;
        Ok(d)
    }

    /// nfsdcld in the foreground, once it watches its rpc_pipefs for the
    /// pipe nfsd opens at start. In a network namespace other than the
    /// first, nfsd keeps its NFSv4 client records (what makes reclaim after
    /// a restart possible) only through nfsdcld: the legacy recovery
    /// directory and the nfsdcltrack upcall refuse containers
    /// (fs/nfsd/nfs4recover.c), and nfsd waits only about a second for the
    /// daemon when it starts. rpc_pipefs is per network namespace; it is
    /// mounted here, in this mount namespace, and goes with it.
    pub fn start_nfsdcld(&self) -> Result<DaemonProcess, DaemonError> {
        require_tools(&[("nfsdcld", "nfs-kernel-server")])?;
        self.run(
            "mount",
            &["-t", "rpc_pipefs", "rpc_pipefs", "/var/lib/nfs/rpc_pipefs"],
        )?;
        self.run("mkdir", &["-p", "/var/lib/nfs/nfsdcld"])?;
        let d = self.spawn(
            "nfsdcld",
            &[
                "nfsdcld",
                "-F",
                "-p",
                "/var/lib/nfs/rpc_pipefs",
                "-s",
                "/var/lib/nfs/nfsdcld",
            ],
        )?;
        let pid = d.pid();
        self.wait_until("nfsdcld", || watches_inotify(pid))?;
        Ok(d)
    }

    /// Whether `prog` answers a NULL call at the port that the rpcbind on
    /// 127.0.0.1:111 here gives for it over TCP: the lookup the kernel's
    /// lockd makes before each SM_MON (fs/lockd/mon.c nsm_create). A daemon
    /// that runs but has not registered yet fails it, and so does the stale
    /// registration a killed one leaves behind.
    pub fn answers(&self, prog: u32, vers: u32) -> bool {
        let peer = Peer {
            from: Ipv4Addr::LOCALHOST.into(),
            to: Ipv4Addr::LOCALHOST.into(),
            portmap_port: PORTMAP_PORT,
            privileged: false,
            timeout: Duration::from_secs(2),
        };
        // A fresh thread per probe: only it enters the netns.
        std::thread::scope(|s| {
            s.spawn(|| {
                crate::sys::ns::enter_netns(&self.netns_file).is_ok()
                    && peer.call(prog, vers, 0, &[]).is_ok()
            })
            .join()
            .unwrap_or(false)
        })
    }

    /// Waits until `answers(prog, vers)`. A lock taken before statd has
    /// registered waits a minute in SM_MON instead of being granted.
    pub fn wait_answering(&self, what: &str, prog: u32, vers: u32) -> Result<(), DaemonError> {
        self.wait_until(what, || self.answers(prog, vers))
    }

    /// unshare has to exec `sleep` before the namespace is really its own.
    fn wait_own_mount_ns(&self) -> Result<(), DaemonError> {
        let pid = self.anchor.pid();
        let own = fs::read_link("/proc/self/ns/mnt").ok();
        self.wait_until("mount namespace anchor", || {
            let exe = fs::read_link(format!("/proc/{pid}/exe")).ok();
            let mnt = fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
            exe.is_some_and(|e| e.ends_with("sleep")) && mnt.is_some() && mnt != own
        })
    }

    fn wait_until(&self, what: &str, ready: impl Fn() -> bool) -> Result<(), DaemonError> {
        let start = Instant::now();
        while !ready() {
            if start.elapsed() > READY_WAIT {
                return Err(DaemonError::NotReady {
                    what: what.to_string(),
                    netns: self.netns.clone(),
                    waited: READY_WAIT,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

/// Whether process `pid` holds an inotify descriptor: nfsdcld opens one on
/// rpc_pipefs' `nfsd` directory before it waits for nfsd's pipe.
fn watches_inotify(pid: u32) -> bool {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        fs::read_link(fd.path()).is_ok_and(|target| target.as_os_str() == "anon_inode:inotify")
    })
}

/// Fails with the package to install for the first tool not on PATH.
pub fn require_tools(tools: &[(&'static str, &'static str)]) -> Result<(), DaemonError> {
    match tools
        .iter()
        .find(|(tool, _)| crate::tools::which(tool).is_none())
    {
        Some(&(tool, package)) => Err(DaemonError::ToolMissing { tool, package }),
        None => Ok(()),
    }
}

fn spawn(
    name: &str,
    mut cmd: Command,
    ledger: Option<&Ledger>,
) -> Result<DaemonProcess, DaemonError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    Ok(DaemonProcess {
        name: name.to_string(),
        child: crate::process::spawn_recorded(&mut cmd, ledger)?,
    })
}
