//! `Knfsd`: the running kernel's own NFS server (nfsd) as a peer of the
//! in-process one, confined to one network namespace.
//!
//! nfsd is per network namespace (`struct nfsd_net`): the `nfsd` filesystem
//! is keyed by the netns of the process that mounts it, and its export and
//! auth caches live under that netns' `/proc/net/rpc`. The nfs-utils tools
//! hard-code `/proc/fs/nfsd`, `/var/lib/nfs` and `/run`, so each `Knfsd`
//! runs in a `DaemonNs`: the netns plus a private mount namespace holding
//! its own nfsd mount and tmpfs state. rpcbind and rpc.mountd (and
//! rpc.statd, when the host has one) run in the same pair: nfsd
//! registers NFSv3 and NLM with the rpcbind it finds (`rpc.nfsd` fails with
//! ECONNREFUSED without one) and mountd answers the kernel's export upcalls.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::daemon_ns::{DaemonError, DaemonNs, DaemonProcess, require_tools};
use crate::ledger::Ledger;
use crate::net::Netns;
use crate::sysctl::{Changed, SysctlError};

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
    /// less than 10 for the NFSv4 times. The NLM value goes to the global
    /// `/proc/sys/fs/nfs/nlm_grace_period` while `rpc.nfsd` starts lockd
    /// here and is put back after (lockd rounds it up to a multiple of
    /// `nlm_timeout`).
    pub grace_secs: u32,
    /// Bind lockd's TCP and UDP listeners in this netns to this port
    /// instead of one rpcbind hands out, so that a firewall rule can cut
    /// NLM off while NFS keeps working. lockd reads the global
    /// `/proc/sys/fs/nfs/nlm_{tcp,udp}port` once per netns, when its first
    /// user there (nfsd) brings it up (fs/lockd/svc.c lockd_up_net →
    /// make_socks); they are written just before `rpc.nfsd` and put back
    /// after it, so clients' lockd elsewhere keep ephemeral ports.
    pub nlm_port: Option<u16>,
}

/// The port a world pins every knfsd's lockd to (`nlm_port`): 4045, the
/// one registered for the network lock manager.
pub const NLM_PORT: u16 = 4045;

impl Default for KnfsdConfig {
    fn default() -> Self {
        KnfsdConfig {
            threads: 8,
            mountd_port: 20048,
            nfsv4: false,
            grace_secs: 10,
            nlm_port: None,
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
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    #[error(transparent)]
    Sysctl(#[from] SysctlError),
    #[error("no export {target} on this knfsd")]
    UnknownExport { target: String },
}

/// nfsd running in one netns. Dropping it stops nfsd there, unexports
/// everything and ends its daemons (`stop` does the same and reports).
#[derive(Debug)]
pub struct Knfsd {
    /// rpcbind, rpc.mountd and rpc.statd; ended before `ns` goes.
    daemons: Vec<DaemonProcess>,
    ns: DaemonNs,
    exports: Vec<KnfsdExport>,
    stopped: bool,
    /// For `restart`, which brings nfsd (and lockd) up as `start` did.
    config: KnfsdConfig,
    ledger: Option<Ledger>,
}

const TOOLS: &[(&str, &str)] = &[
    ("rpc.nfsd", "nfs-kernel-server"),
    ("rpc.mountd", "nfs-kernel-server"),
    ("exportfs", "nfs-kernel-server"),
    ("rpcbind", "rpcbind"),
];

impl Knfsd {
    /// Brings up nfsd in `ns` with no exports. Needs root, the nfsd module
    /// (loaded here with modprobe) and nfs-kernel-server's tools.
    pub fn start(
        ns: &Netns,
        config: &KnfsdConfig,
        ledger: Option<&Ledger>,
    ) -> Result<Knfsd, KnfsdError> {
        require_tools(TOOLS)?;
        crate::tools::modprobe(&["nfsd", "lockd"]).map_err(DaemonError::from)?;
        // Private state: etab/rmtab and rpcbind's socket must not be shared
        // with another nfsd (or the guest's own).
        let ns = DaemonNs::start(ns, "sqknfsd", ledger)?;
        let mut me = Knfsd {
            daemons: Vec::new(),
            ns,
            exports: Vec::new(),
            stopped: false,
            config: config.clone(),
            ledger: ledger.cloned(),
        };
        // exportfs refuses to run without them (the package creates them).
        for table in ["var/lib/nfs/etab", "var/lib/nfs/rmtab"] {
            me.ns.write(table, "")?;
        }
        me.ns
            .run("mount", &["-t", "nfsd", "nfsd", "/proc/fs/nfsd"])?;
        let grace = config.grace_secs.max(10).to_string();
        // Per network namespace (struct nfsd_net), read when nfsd starts
        // here: they die with the namespace, so there is nothing to put back.
        me.ns.write("proc/fs/nfsd/nfsv4gracetime", &grace)?;
        me.ns.write("proc/fs/nfsd/nfsv4leasetime", &grace)?;
        me.daemons.push(me.ns.start_rpcbind()?);
        let port = config.mountd_port.to_string();
        let mut mountd = vec!["rpc.mountd", "-F", "-p", &port];
        if !config.nfsv4 {
            mountd.extend(["-N", "4"]);
        }
        me.daemons.push(me.ns.spawn("rpc.mountd", &mountd)?);
        if config.nfsv4 {
            me.daemons.push(me.ns.start_nfsdcld()?);
        }
        me.start_threads()?;
        tracing::info!(netns = %me.ns.netns(), grace = %grace, "knfsd started");
        Ok(me)
    }

    /// `rpc.nfsd <threads>`: nfsd and lockd come up in this netns.
    fn start_threads(&self) -> Result<(), KnfsdError> {
        let config = &self.config;
        let ledger = self.ledger.as_ref();
        let grace = config.grace_secs.max(10).to_string();
        let threads = config.threads.to_string();
        let mut nfsd_args = vec![];
        if !config.nfsv4 {
            nfsd_args.extend(["-N", "4"]);
        }
        nfsd_args.push(&threads);
        // lockd reads these globals once per netns, when rpc.nfsd brings it
        // up here (fs/lockd/svc.c lockd_up_net: make_socks, set_grace_period);
        // they are put back right after, so no other lockd inherits them.
        let mut lockd = vec![Changed::set(Path::new(NLM_GRACE_PERIOD), &grace, ledger)?];
        if let Some(port) = config.nlm_port {
            for path in NLM_PORT_SYSCTLS {
                lockd.push(Changed::set(Path::new(path), &port.to_string(), ledger)?);
            }
        }
        let started = self.ns.run("rpc.nfsd", &nfsd_args);
        // Last changed, first put back: the ledger's order too.
        while let Some(setting) = lockd.pop() {
            setting.restore()?;
        }
        Ok(started?)
    }

    /// A server reboot as far as clients can tell: every nfsd and lockd
    /// thread stops (`rpc.nfsd 0`: NFSv4 clients, opens, locks and
    /// sessions, and NLM locks, are gone) and starts again at once. The
    /// exports stay, and so do nfsdcld's client records: NFSv4 clients
    /// that held state may reclaim it during the grace period that
    /// follows (`grace_secs`), NLM clients after lockd's.
    pub fn restart(&mut self) -> Result<(), KnfsdError> {
        self.ns.run("rpc.nfsd", &["0"])?;
        self.start_threads()?;
        tracing::info!(netns = %self.netns(), "knfsd restarted");
        Ok(())
    }

    pub fn netns(&self) -> &str {
        self.ns.netns()
    }

    /// The pid whose mount and network namespaces nfsd's daemons and
    /// exportfs run in: a failover script outside stackquake reaches them
    /// with `nsenter -t <pid> -m -n`, as the VM staging rehearsal's does.
    pub fn anchor_pid(&self) -> u32 {
        self.ns.anchor_pid()
    }

    /// A command that runs inside this nfsd's netns and mount namespace.
    pub fn command(&self, program: &str) -> Command {
        self.ns.command(program, &[])
    }

    /// rpc.statd beside this nfsd, registered with its rpcbind: knfsd's
    /// lockd asks it to monitor every client that locks.
    pub fn start_statd(&mut self) -> Result<(), KnfsdError> {
        self.daemons.push(self.ns.start_statd()?);
        Ok(())
    }

    pub fn has_statd(&self) -> bool {
        self.daemons.iter().any(|d| d.name() == "rpc.statd")
    }

    /// Exports (or re-exports with new options) a directory and flushes
    /// the kernel's export cache so the change applies to the next call,
    /// not after the cache entry expires.
    pub fn export(&mut self, export: &KnfsdExport) -> Result<(), KnfsdError> {
        let target = export.target();
        self.ns.run("exportfs", &["-o", &export.options, &target])?;
        self.flush()?;
        self.exports.retain(|e| e.target() != target);
        self.exports.push(export.clone());
        tracing::info!(netns = %self.netns(), %target, options = %export.options, "knfsd export");
        Ok(())
    }

    /// Makes `dir` a mount point of its own (a bind mount onto itself) in
    /// nfsd's private mount namespace, so that an NFSv4 lookup from the
    /// root export crosses into `dir`'s own export (`crossmnt` follows
    /// mount points only, fs/nfsd/vfs.c nfsd_cross_mnt). It goes with the
    /// namespace.
    pub fn make_mount_point(&self, dir: &Path) -> Result<(), KnfsdError> {
        let dir = dir.display().to_string();
        Ok(self.ns.run("mount", &["--bind", &dir, &dir])?)
    }

    /// `exportfs -u` then a cache flush: clients get ESTALE/EACCES now.
    pub fn unexport(&mut self, clients: &str, dir: &Path) -> Result<(), KnfsdError> {
        let target = format!("{clients}:{}", dir.display());
        if !self.exports.iter().any(|e| e.target() == target) {
            return Err(KnfsdError::UnknownExport { target });
        }
        self.ns.run("exportfs", &["-u", &target])?;
        self.flush()?;
        self.exports.retain(|e| e.target() != target);
        tracing::info!(netns = %self.netns(), %target, "knfsd unexport");
        Ok(())
    }

    /// The kernel's current view, `exportfs -v`.
    pub fn list(&self) -> Result<String, KnfsdError> {
        Ok(self.ns.output("exportfs", &["-v"])?)
    }

    /// Unexports everything, stops the nfsd threads (and lockd) in the
    /// netns, ends rpc.mountd, rpc.statd, rpcbind and the anchor.
    pub fn stop(mut self) -> Result<(), KnfsdError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), KnfsdError> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        let mut first_error = None;
        if self.ns.alive() {
            for step in [
                &["exportfs", "-ua"][..],
                &["rpc.nfsd", "0"],
                &["exportfs", "-f"],
            ] {
                if let Err(e) = self.ns.run(step[0], &step[1..]) {
                    tracing::warn!(netns = %self.netns(), error = %e, "knfsd stop step failed");
                    first_error.get_or_insert(e);
                }
            }
        }
        // Last started, first ended; the anchor goes with `self.ns`.
        while self.daemons.pop().is_some() {}
        tracing::info!(netns = %self.netns(), "knfsd stopped");
        first_error.map_or(Ok(()), |e| Err(e.into()))
    }

    fn flush(&self) -> Result<(), KnfsdError> {
        Ok(self.ns.run("exportfs", &["-f"])?)
    }
}

const NLM_GRACE_PERIOD: &str = "/proc/sys/fs/nfs/nlm_grace_period";
const NLM_PORT_SYSCTLS: [&str; 2] = [
    "/proc/sys/fs/nfs/nlm_tcpport",
    "/proc/sys/fs/nfs/nlm_udpport",
];

impl Drop for Knfsd {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!(netns = %self.netns(), error = %e, "knfsd not stopped cleanly");
        }
    }
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
