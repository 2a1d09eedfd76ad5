//! NLM locking in the world: the in-process server's portmapper on port 111
//! (the kernel's lockd finds the server's NLM only there: no mount option
//! names the NLM port) and each client host's status monitor
//! (`hosts.<h>.statd`), where the kernel's lockd registers NLM and asks
//! statd to monitor the server before its first lock (fs/lockd/mon.c,
//! nsm_monitor; without it every lock fails with ENOLCK).

use super::{SetupError, World};
use crate::fault::{HostDaemons, HostError};
use crate::ledger::Ledger;
use crate::net::Netns;
use crate::nfs::daemon_ns::{DaemonNs, DaemonProcess, require_tools};
use crate::nfs::{Listeners, LockConfig, NfsServer, nsm};
use crate::plan::{Daemon, Plan, ServerKind, Statd};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::Mutex;
use std::time::Duration;

/// The portmapper's well-known port (RFC 1833).
const PORTMAP_PORT: u16 = 111;

/// The listeners of an in-process server that kernel clients lock against:
/// NFS, MOUNT, NLM and NSM on `port` over TCP and UDP (rpc.statd's
/// SM_NOTIFY travels over UDP), and the portmapper on 111.
pub(super) fn server_listeners(ns: &Netns, port: u16) -> std::io::Result<Listeners> {
    ns.run(|| {
        let any = |p| SocketAddr::from((Ipv4Addr::UNSPECIFIED, p));
        Ok(Listeners::new(TcpListener::bind(any(port))?)
            .with_udp(UdpSocket::bind(any(port))?)
            .with_portmap(
                TcpListener::bind(any(PORTMAP_PORT))?,
                Some(UdpSocket::bind(any(PORTMAP_PORT))?),
            ))
    })
}

/// How the in-process server's lock manager is configured in a world: it
/// names itself by its address in SM_NOTIFY, as rpc.statd does by default.
pub(super) fn server_lock_config(addr: Option<Ipv4Addr>) -> LockConfig {
    LockConfig {
        name: addr.map(|a| a.to_string()),
        ..LockConfig::default()
    }
}

/// One client host's portmapper and status monitor.
pub struct ClientStatd {
    host: String,
    kind: Statd,
    inner: Mutex<Monitor>,
    netns: String,
    /// The host's namespace, for the reboot notification's thread.
    ns_file: std::fs::File,
    /// Links taken down by `host.crash`.
    downed: Mutex<Vec<String>>,
}

enum Monitor {
    /// Our portmapper + NSM (`LockConfig::client_host`); NSM is left out of
    /// the portmapper for `statd: none`, or while "killed".
    Ours(NfsServer),
    System(SystemStatd),
}

impl std::fmt::Debug for ClientStatd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientStatd({}, {})", self.host, self.kind.name())
    }
}

impl ClientStatd {
    fn start(
        host: &str,
        kind: Statd,
        ns: &Netns,
        addr: Option<Ipv4Addr>,
        ledger: &Ledger,
    ) -> Result<ClientStatd, HostError> {
        let inner = match kind {
            Statd::Stackquake => {
                // 0.0.0.0: the kernel's lockd registers over 127.0.0.1, the
                // server's GRANTED callback asks our address.
                let listeners = ns
                    .run(|| {
                        let any = SocketAddr::from((Ipv4Addr::UNSPECIFIED, PORTMAP_PORT));
                        Ok::<_, std::io::Error>(
                            Listeners::new(TcpListener::bind(any)?).with_udp(UdpSocket::bind(any)?),
                        )
                    })
                    .map_err(|source| HostError::Listen {
                        port: PORTMAP_PORT,
                        source,
                    })?;
                let config = LockConfig {
                    name: addr.map(|a| a.to_string()),
                    ..LockConfig::client_host()
                };
                // Inside the namespace, so its SM_NOTIFY leaves from there.
                let srv = ns
                    .run(|| NfsServer::start_with_locking(Default::default(), listeners, config))?;
                Monitor::Ours(srv)
            }
            // `none` is the incident's host: the system's rpcbind runs,
            // rpc.statd does not.
            Statd::System | Statd::None => {
                Monitor::System(SystemStatd::start(ns, ledger, kind == Statd::System)?)
            }
        };
        Ok(ClientStatd {
            host: host.to_string(),
            kind,
            inner: Mutex::new(inner),
            netns: ns.name().to_string(),
            ns_file: ns.file()?,
            downed: Mutex::new(Vec::new()),
        })
    }

    fn stop(self) {
        match self.inner.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Monitor::Ours(srv) => srv.shutdown(),
            Monitor::System(s) => drop(s),
        }
    }
}

impl HostDaemons for ClientStatd {
    fn crash(&self) -> Result<(), HostError> {
        let links = crate::net::ip_output(&self.netns, &["-o", "link", "show"])?;
        let mut downed = self.downed.lock().unwrap_or_else(|e| e.into_inner());
        // "3: to-server@if2: <…>": the name sits between the first ": " and "@".
        for line in links.lines() {
            let Some(name) = line.split(": ").nth(1) else {
                continue;
            };
            let name = name.split('@').next().unwrap_or(name);
            if name == "lo" {
                continue;
            }
            crate::net::ip_output(&self.netns, &["link", "set", "dev", name, "down"])?;
            downed.push(name.to_string());
        }
        Ok(())
    }

    /// Links up, then SM_NOTIFY with the next state number to every host
    /// the kernel's lockd asked us to monitor (mon_name is the server's
    /// address), as sm-notify does at boot. Answered before this returns,
    /// so the server has released our locks by then.
    fn reboot(&self) -> Result<(), HostError> {
        for name in std::mem::take(&mut *self.downed.lock().unwrap_or_else(|e| e.into_inner())) {
            crate::net::ip_output(&self.netns, &["link", "set", "dev", &name, "up"])?;
        }
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Monitor::Ours(srv) = &*inner else {
            return Err(HostError::Unsupported("reboot needs statd: stackquake"));
        };
        let nsm = srv
            .nsm()
            .ok_or(HostError::Unsupported("no NSM on this host"))?;
        let state = nsm.reboot();
        let name = nsm.name().to_string();
        let servers: Vec<std::net::IpAddr> = nsm
            .monitored()
            .iter()
            .filter_map(|m| m.mon_name.parse().ok())
            .collect();
        tracing::info!(host = %self.host, state, ?servers, "host rebooted: notifying");
        let ns_file = &self.ns_file;
        std::thread::scope(|scope| {
            scope
                .spawn(|| -> Result<(), HostError> {
                    crate::sys::ns::enter_netns(ns_file).map_err(HostError::EnterNetns)?;
                    for to in &servers {
                        let peer = crate::nfs::peer::Peer {
                            from: std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                            to: *to,
                            portmap_port: PORTMAP_PORT,
                            privileged: false,
                            timeout: Duration::from_secs(5),
                        };
                        let mut args = crate::nfs::xdr::XdrWriter::new();
                        args.string(name.as_bytes()).i32(state);
                        peer.call(
                            nsm::PROGRAM,
                            nsm::VERSION,
                            nsm::procs::NOTIFY,
                            args.as_bytes(),
                        )
                        .map_err(|source| HostError::Notify { to: *to, source })?;
                    }
                    Ok(())
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// The run's own daemons: gone with the world if the run dies, so
    /// `lasts` asks nothing of them.
    fn kill(&self, daemon: Daemon, _lasts: Option<std::time::Duration>) -> Result<(), HostError> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match (&mut *inner, daemon) {
            // statd dies without unregistering; the kernel's GETPORT then
            // gets a port nobody listens on. Leaving the portmapper is the
            // closest our stand-in comes (the call fails at once either way).
            (Monitor::Ours(srv), Daemon::Statd) => Ok(srv.set_registered(nsm::PROGRAM, false)?),
            (Monitor::Ours(_), Daemon::Rpcbind) => Err(HostError::Unsupported(
                "statd: stackquake serves rpcbind and statd as one; kill statd",
            )),
            (Monitor::System(s), d) => s.kill(d),
        }
    }

    fn restart(&self, daemon: Daemon) -> Result<(), HostError> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match (&mut *inner, daemon) {
            (Monitor::Ours(srv), _) => Ok(srv.set_registered(nsm::PROGRAM, true)?),
            (Monitor::System(s), d) => s.restart(d),
        }
    }
}

/// nfs-common's rpc.statd and rpcbind in one host's `DaemonNs` (as
/// `Knfsd` does): statd's monitor list and rpcbind's socket must not be
/// shared with another host's. The kernel's lockd, mounting from the host
/// mount namespace, does not see that rpcbind socket and registers over
/// 127.0.0.1:111 in the netns instead.
struct SystemStatd {
    statd: Option<DaemonProcess>,
    rpcbind: Option<DaemonProcess>,
    /// Dropped last: the anchor outlives the daemons in its namespace.
    ns: DaemonNs,
}

impl SystemStatd {
    /// rpcbind, and rpc.statd when `statd`.
    fn start(ns: &Netns, ledger: &Ledger, statd: bool) -> Result<SystemStatd, HostError> {
        require_tools(&[("rpcbind", "rpcbind"), ("rpc.statd", "nfs-common")])?;
        let mut me = SystemStatd {
            statd: None,
            rpcbind: None,
            ns: DaemonNs::start(ns, "sqstatd", Some(ledger))?,
        };
        me.restart(Daemon::Rpcbind)?;
        if statd {
            me.restart(Daemon::Statd)?;
        }
        Ok(me)
    }

    fn slot(&mut self, daemon: Daemon) -> &mut Option<DaemonProcess> {
        match daemon {
            Daemon::Statd => &mut self.statd,
            Daemon::Rpcbind => &mut self.rpcbind,
        }
    }

    /// SIGKILL: statd leaves its registration behind, as a crash would.
    fn kill(&mut self, daemon: Daemon) -> Result<(), HostError> {
        self.slot(daemon).take();
        Ok(())
    }

    fn restart(&mut self, daemon: Daemon) -> Result<(), HostError> {
        self.kill(daemon)?;
        let started = match daemon {
            Daemon::Rpcbind => self.ns.start_rpcbind(),
            Daemon::Statd => self.ns.start_statd(),
        };
        *self.slot(daemon) = Some(started?);
        Ok(())
    }
}

impl World {
    /// Starts each host's `statd:` choice, before anything mounts (the
    /// kernel's lockd registers with the host's portmapper at mount time).
    pub(super) fn build_statds(
        &mut self,
        s: &Plan,
        ledger: &Ledger,
        note: &mut dyn FnMut(String),
    ) -> Result<(), SetupError> {
        for (name, host) in &s.hosts {
            let Some(kind) = host.statd else { continue };
            // A knfsd host's statd runs in knfsd's namespaces (build_knfsds).
            if s.nfs_servers
                .values()
                .any(|srv| srv.host == *name && srv.kind == ServerKind::Knfsd)
            {
                continue;
            }
            let addr = host.addr.and_then(|a| a.ipv4());
            let statd =
                ClientStatd::start(name, kind, &self.netns[name], addr, ledger).map_err(|e| {
                    SetupError::Nfs {
                        server: format!("statd of host {name}"),
                        detail: e.to_string(),
                    }
                })?;
            note(format!("host {name}: statd {}", kind.name()));
            self.statds.insert(name.clone(), statd);
        }
        Ok(())
    }

    /// Starts rpc.statd on `statd: none` hosts before their mounts go: the
    /// kernel's lockd asks statd to unmonitor the server at unmount
    /// (SM_UNMON), and without one the unmount waits a minute in it. A
    /// knfsd server's lockd does the same for each client when it stops.
    /// The scenario is over; this is healing, like every fault's.
    pub(super) fn heal_statds(&mut self) {
        for (name, statd) in &self.statds {
            if statd.kind == Statd::None
                && let Err(e) = statd.restart(Daemon::Statd)
            {
                tracing::warn!(host = %name, error = %e, "cannot start rpc.statd for unmount");
            }
        }
        self.heal_knfsd_statds();
    }

    /// Stops every host's status monitor (after the NFS mounts are gone).
    pub(super) fn stop_statds(&mut self, log: &mut super::TeardownLog) {
        for (name, statd) in std::mem::take(&mut self.statds) {
            statd.stop();
            log.done(format!("stop statd of host {name}"));
        }
    }

    pub(super) fn host_statd(&self, host: &str) -> Option<&ClientStatd> {
        self.statds.get(host)
    }
}
