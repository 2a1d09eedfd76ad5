//! `Knfsd`: the running kernel's own NFS server (nfsd) as a peer of the
//! in-process one, confined to one network namespace.
//!
//! nfsd is per network namespace (`struct nfsd_net`): the `nfsd` filesystem
//! is keyed by the netns of the process that mounts it, and its export and
//! auth caches live under that netns' `/proc/net/rpc`. The nfs-utils tools
//! hard-code `/proc/fs/nfsd`, `/var/lib/nfs` and `/run`, so each `Knfsd`
//! gets an *anchor* process (`unshare --mount … sleep infinity`, started
//! inside the netns) whose private mount namespace holds its own nfsd
//! mount and tmpfs state; every later tool runs there through `nsenter`.
//! rpcbind and rpc.mountd run in the same pair of namespaces: nfsd
//! registers NFSv3 and NLM with the rpcbind it finds (`rpc.nfsd` fails with
//! ECONNREFUSED without one) and mountd answers the kernel's export upcalls.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ledger::{EntryId, Ledger, LedgerObject};
use crate::net::{Netns, command_in};

/// How nfsd is brought up in a namespace.
#[derive(Debug, Clone)]
pub struct KnfsdConfig {
    /// nfsd threads (`rpc.nfsd <n>`).
    pub threads: u32,
    /// rpc.mountd's fixed port (clients may pass `mountport=`).
    pub mountd_port: u16,
    /// Serve NFSv4 too (v3 only by default: the comparisons are NFSv3).
    pub nfsv4: bool,
    /// Grace and lease, in seconds. Stock knfsd refuses new NLM locks and
    /// NFSv4 opens/locks for 90 s after start (`nfsv4gracetime`, lockd's
    /// grace); a harness wants that short and explicit. The kernel refuses
    /// less than 10 for the NFSv4 times. The NLM value is written to
    /// `/proc/sys/fs/nfs/nlm_grace_period`, which is NOT per netns: it
    /// applies to every lockd started afterwards (lockd rounds it up to a
    /// multiple of `nlm_timeout`, 10 s).
    pub grace_secs: u32,
}

impl Default for KnfsdConfig {
    fn default() -> Self {
        KnfsdConfig {
            threads: 8,
            mountd_port: 20048,
            nfsv4: false,
            grace_secs: 10,
        }
    }
}

/// One `exportfs -o <options> <clients>:<dir>` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnfsdExport {
    pub dir: PathBuf,
    /// `10.0.0.0/24`, a host address or `*`.
    pub clients: String,
    /// exports(5) options, e.g. `rw,sync,no_root_squash,no_subtree_check,fsid=1`
    /// (tmpfs has no UUID: it needs an explicit `fsid=`).
    pub options: String,
}

impl KnfsdExport {
    fn target(&self) -> String {
        format!("{}:{}", self.clients, self.dir.display())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KnfsdError {
    #[error(
        "{tool} not found: apt-get install nfs-kernel-server rpcbind (on the host; guests share its /)"
    )]
    ToolMissing { tool: &'static str },
    #[error("cannot run `{command}`")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("{what} in netns {netns} did not come up within {waited:?}")]
    NotReady {
        what: &'static str,
        netns: String,
        waited: Duration,
    },
    #[error("writing {path}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot record {what} in the ledger")]
    Ledger {
        what: String,
        source: crate::ledger::LedgerError,
    },
    #[error("no export {target} on this knfsd")]
    UnknownExport { target: String },
}

/// A helper process of this nfsd and its ledger entry.
#[derive(Debug)]
struct Helper {
    name: &'static str,
    child: Child,
    entry: Option<EntryId>,
}

/// nfsd running in one netns. Dropping it stops nfsd there, unexports
/// everything and ends its helpers (`stop` does the same and reports).
#[derive(Debug)]
pub struct Knfsd {
    netns: String,
    /// Last is the anchor: it goes last, taking the mount namespace along.
    helpers: Vec<Helper>,
    exports: Vec<KnfsdExport>,
    ledger: Option<Ledger>,
    stopped: bool,
}

const TOOLS: &[&str] = &[
    "rpc.nfsd",
    "rpc.mountd",
    "exportfs",
    "rpcbind",
    "unshare",
    "nsenter",
];
const READY_WAIT: Duration = Duration::from_secs(10);

impl Knfsd {
    /// Brings up nfsd in `ns` with no exports. Needs root, the nfsd module
    /// (loaded here with modprobe) and nfs-kernel-server's tools.
    pub fn start(
        ns: &Netns,
        config: &KnfsdConfig,
        ledger: Option<&Ledger>,
    ) -> Result<Knfsd, KnfsdError> {
        for tool in TOOLS {
            if find_tool(tool).is_none() {
                return Err(KnfsdError::ToolMissing { tool });
            }
        }
        let mut modprobe = Command::new("modprobe");
        modprobe.args(["-a", "nfsd", "lockd"]);
        run(modprobe)?;
        let mut me = Knfsd {
            netns: ns.name().to_string(),
            helpers: Vec::new(),
            exports: Vec::new(),
            ledger: ledger.cloned(),
            stopped: false,
        };
        let mut anchor = command_in(ns, "unshare");
        anchor.args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "sleep",
            "infinity",
        ]);
        me.spawn_helper("anchor", anchor)?;
        me.wait_for_own_mount_ns()?;
        // Private state: etab/rmtab and rpcbind's socket must not be shared
        // with another nfsd (or the guest's own) through the common tmpfs.
        // (A guest's /var/lib is an empty tmpfs: make the mount point.)
        for dir in ["/var/lib/nfs", "/run"] {
            me.tool("mkdir", &["-p", dir]).and_then(run)?;
            me.tool("mount", &["-t", "tmpfs", "sqknfsd", dir])
                .and_then(run)?;
        }
        me.tool("mkdir", &["-p", "/var/lib/nfs/rpc_pipefs", "/run/rpcbind"])
            .and_then(run)?;
        // exportfs refuses to run without them (the package creates them).
        for table in ["var/lib/nfs/etab", "var/lib/nfs/rmtab"] {
            let path = me.anchor_path(table);
            fs::write(&path, "").map_err(|source| KnfsdError::Write { path, source })?;
        }
        me.tool("mount", &["-t", "nfsd", "nfsd", "/proc/fs/nfsd"])
            .and_then(run)?;
        let grace = config.grace_secs.max(10).to_string();
        me.write_nfsd("nfsv4gracetime", &grace)?;
        me.write_nfsd("nfsv4leasetime", &grace)?;
        let nlm = Path::new("/proc/sys/fs/nfs/nlm_grace_period");
        fs::write(nlm, &grace).map_err(|source| KnfsdError::Write {
            path: nlm.into(),
            source,
        })?;
        let rpcbind = me.tool("rpcbind", &["-f", "-w"])?;
        me.spawn_helper("rpcbind", rpcbind)?;
        me.wait_for("rpcbind", || me.anchor_path("run/rpcbind.sock").exists())?;
        let port = config.mountd_port.to_string();
        let mut mountd_args = vec!["-F", "-p", &port];
        if !config.nfsv4 {
            mountd_args.extend(["-N", "4"]);
        }
        let mountd = me.tool("rpc.mountd", &mountd_args)?;
        me.spawn_helper("rpc.mountd", mountd)?;
        let threads = config.threads.to_string();
        let mut nfsd_args = vec![];
        if !config.nfsv4 {
            nfsd_args.extend(["-N", "4"]);
        }
        nfsd_args.push(&threads);
        me.tool("rpc.nfsd", &nfsd_args).and_then(run)?;
        tracing::info!(netns = %me.netns, grace = %grace, "knfsd started");
        Ok(me)
    }

    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// A command that runs inside this nfsd's netns and mount namespace.
    pub fn command(&self, program: &str) -> Result<Command, KnfsdError> {
        self.tool(program, &[])
    }

    /// Exports (or re-exports with new options) a directory and flushes
    /// the kernel's export cache so the change applies to the next call,
    /// not after the cache entry expires.
    pub fn export(&mut self, export: &KnfsdExport) -> Result<(), KnfsdError> {
        let target = export.target();
        self.tool("exportfs", &["-o", &export.options, &target])
            .and_then(run)?;
        self.flush()?;
        self.exports.retain(|e| e.target() != target);
        self.exports.push(export.clone());
        tracing::info!(netns = %self.netns, %target, options = %export.options, "knfsd export");
        Ok(())
    }

    /// `exportfs -u` then a cache flush: clients get ESTALE/EACCES now.
    pub fn unexport(&mut self, clients: &str, dir: &Path) -> Result<(), KnfsdError> {
        let target = format!("{clients}:{}", dir.display());
        if !self.exports.iter().any(|e| e.target() == target) {
            return Err(KnfsdError::UnknownExport { target });
        }
        self.tool("exportfs", &["-u", &target]).and_then(run)?;
        self.flush()?;
        self.exports.retain(|e| e.target() != target);
        tracing::info!(netns = %self.netns, %target, "knfsd unexport");
        Ok(())
    }

    /// The kernel's current view, `exportfs -v`.
    pub fn list(&self) -> Result<String, KnfsdError> {
        output(self.tool("exportfs", &["-v"])?)
    }

    /// Unexports everything, stops the nfsd threads (and lockd) in the
    /// netns, ends rpc.mountd, rpcbind and the anchor.
    pub fn stop(mut self) -> Result<(), KnfsdError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), KnfsdError> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        let mut first_error = None;
        if self.anchor_alive() {
            for step in [
                &["exportfs", "-ua"][..],
                &["rpc.nfsd", "0"],
                &["exportfs", "-f"],
            ] {
                if let Err(e) = self.tool(step[0], &step[1..]).and_then(run) {
                    tracing::warn!(netns = %self.netns, error = %e, "knfsd stop step failed");
                    first_error.get_or_insert(e);
                }
            }
        }
        while let Some(mut h) = self.helpers.pop() {
            let _ = h.child.kill();
            let _ = h.child.wait();
            if let (Some(ledger), Some(entry)) = (&self.ledger, h.entry) {
                if let Err(e) = ledger.done(entry) {
                    tracing::warn!(helper = h.name, error = %e, "cannot mark done in ledger");
                }
            }
        }
        tracing::info!(netns = %self.netns, "knfsd stopped");
        first_error.map_or(Ok(()), Err)
    }

    fn flush(&self) -> Result<(), KnfsdError> {
        self.tool("exportfs", &["-f"]).and_then(run)
    }

    fn spawn_helper(&mut self, name: &'static str, mut cmd: Command) -> Result<(), KnfsdError> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let command = command_line(&cmd);
        let child = cmd
            .spawn()
            .map_err(|source| KnfsdError::Spawn { command, source })?;
        let pid = child.id();
        let mut helper = Helper {
            name,
            child,
            entry: None,
        };
        if let Some(ledger) = &self.ledger {
            // Recorded right after the spawn (the pid exists only then); a
            // crash in between leaves a helper that dies with its netns' use.
            let starttime = crate::sys::procstat::read(pid)
                .map(|s| s.starttime)
                .unwrap_or(0);
            match ledger.record(LedgerObject::Process { pid, starttime }) {
                Ok(entry) => helper.entry = Some(entry),
                Err(source) => {
                    let _ = helper.child.kill();
                    let _ = helper.child.wait();
                    return Err(KnfsdError::Ledger {
                        what: format!("{name} pid {pid}"),
                        source,
                    });
                }
            }
        }
        // The anchor stays first so `shutdown` (popping) ends it last.
        self.helpers.push(helper);
        Ok(())
    }

    fn anchor_pid(&self) -> u32 {
        self.helpers[0].child.id()
    }

    fn anchor_alive(&mut self) -> bool {
        matches!(
            self.helpers.first_mut().map(|h| h.child.try_wait()),
            Some(Ok(None))
        )
    }

    /// A path inside the anchor's mount namespace, from outside it.
    fn anchor_path(&self, rel: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root/{rel}", self.anchor_pid()))
    }

    /// unshare has to exec `sleep` before the namespace is really its own.
    fn wait_for_own_mount_ns(&mut self) -> Result<(), KnfsdError> {
        let pid = self.anchor_pid();
        let own = fs::read_link("/proc/self/ns/mnt").ok();
        self.wait_for("anchor", || {
            let exe = fs::read_link(format!("/proc/{pid}/exe")).ok();
            let mnt = fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
            exe.is_some_and(|e| e.ends_with("sleep")) && mnt.is_some() && mnt != own
        })
    }

    fn wait_for(&self, what: &'static str, ready: impl Fn() -> bool) -> Result<(), KnfsdError> {
        let start = Instant::now();
        while !ready() {
            if start.elapsed() > READY_WAIT {
                return Err(KnfsdError::NotReady {
                    what,
                    netns: self.netns.clone(),
                    waited: READY_WAIT,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn write_nfsd(&self, file: &str, value: &str) -> Result<(), KnfsdError> {
        let path = self.anchor_path(&format!("proc/fs/nfsd/{file}"));
        fs::write(&path, value).map_err(|source| KnfsdError::Write { path, source })
    }

    fn tool(&self, program: &str, args: &[&str]) -> Result<Command, KnfsdError> {
        let mut cmd = Command::new("nsenter");
        cmd.arg("-t")
            .arg(self.anchor_pid().to_string())
            .args(["-m", "-n", "--", program])
            .args(args);
        Ok(cmd)
    }
}

impl Drop for Knfsd {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!(netns = %self.netns, error = %e, "knfsd not stopped cleanly");
        }
    }
}

fn find_tool(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

fn command_line(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

fn output(mut cmd: Command) -> Result<String, KnfsdError> {
    let command = command_line(&cmd);
    tracing::debug!(%command, "running");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| KnfsdError::Spawn {
            command: command.clone(),
            source,
        })?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    Err(KnfsdError::Command {
        command,
        status: out.status.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

fn run(cmd: Command) -> Result<(), KnfsdError> {
    output(cmd).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_target_is_clients_colon_dir() {
        let e = KnfsdExport {
            dir: "/srv/a".into(),
            clients: "10.0.0.0/24".into(),
            options: "rw".into(),
        };
        assert_eq!(e.target(), "10.0.0.0/24:/srv/a");
    }

    #[test]
    fn default_grace_is_short() {
        assert!(KnfsdConfig::default().grace_secs <= 10);
    }
}
