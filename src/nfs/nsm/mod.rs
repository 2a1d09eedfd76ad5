//! The Network Status Monitor, program 100024 version 1 (Open Group XNFS):
//! SM_STAT, SM_MON, SM_UNMON, SM_UNMON_ALL, SM_SIMU_CRASH and SM_NOTIFY.
//!
//! It plays both statd roles. As the server's statd it owns the state
//! number (odd while up, +2 per restart) and, after a restart, sends
//! SM_NOTIFY to every client that locked, so their lockd reclaims. As a
//! client host's statd (a stand-in where no rpc.statd runs) it keeps the
//! SM_MON registrations of the kernel's lockd and, when a monitored server
//! notifies, calls lockd back (my_prog/my_vers/my_proc with the 16 private
//! bytes) from a reserved loopback port, as rpc.statd does.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::call::{CallContext, CallError};
use super::nlm::Nlm;
use super::peer::{Peer, PeerError};
use super::portmap::{self, PortRegistry};
use super::program::{Program, ProgramInfo, status_word_reply};
use super::xdr::{XdrError, XdrReader, XdrWriter};

pub const PROGRAM: u32 = 100024;
pub const VERSION: u32 = 1;

/// NSM's row in the program table (Open Group XNFS).
pub static INFO: ProgramInfo = ProgramInfo {
    number: PROGRAM,
    names: &["nsm", "status", "statd"],
    versions: &[VERSION],
    procedures: &[
        "SM_NULL",
        "SM_STAT",
        "SM_MON",
        "SM_UNMON",
        "SM_UNMON_ALL",
        "SM_SIMU_CRASH",
        "SM_NOTIFY",
    ],
    procedure_prefixes: &[],
    status_reply: status_word_reply,
};

/// XNFS SM_MAXSTRLEN.
const SM_MAXSTRLEN: u32 = 1024;
/// XNFS sm_res: stat_succ, stat_fail.
const STAT_SUCC: u32 = 0;

pub mod procs {
    pub const NULL: u32 = 0;
    pub const STAT: u32 = 1;
    pub const MON: u32 = 2;
    pub const UNMON: u32 = 3;
    pub const UNMON_ALL: u32 = 4;
    pub const SIMU_CRASH: u32 = 5;
    pub const NOTIFY: u32 = 6;
}

/// XNFS my_id: whom to call back when the monitored host reboots.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MyId {
    pub my_name: String,
    pub my_prog: u32,
    pub my_vers: u32,
    pub my_proc: u32,
}

/// One SM_MON registration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Monitor {
    pub mon_name: String,
    pub my_id: MyId,
    pub private: [u8; 16],
}

fn string(r: &mut XdrReader<'_>) -> Result<String, XdrError> {
    Ok(String::from_utf8_lossy(r.string(SM_MAXSTRLEN)?).into_owned())
}

impl MyId {
    fn decode(r: &mut XdrReader<'_>) -> Result<MyId, XdrError> {
        Ok(MyId {
            my_name: string(r)?,
            my_prog: r.u32()?,
            my_vers: r.u32()?,
            my_proc: r.u32()?,
        })
    }

    fn encode(&self, w: &mut XdrWriter) {
        w.string(self.my_name.as_bytes())
            .u32(self.my_prog)
            .u32(self.my_vers)
            .u32(self.my_proc);
    }
}

impl Monitor {
    /// XNFS mon: mon_id {mon_name, my_id}, priv[16].
    pub fn decode(r: &mut XdrReader<'_>) -> Result<Monitor, XdrError> {
        let mon_name = string(r)?;
        let my_id = MyId::decode(r)?;
        let mut private = [0u8; 16];
        private.copy_from_slice(r.opaque_fixed(16)?);
        Ok(Monitor {
            mon_name,
            my_id,
            private,
        })
    }

    pub fn encode(&self, w: &mut XdrWriter) {
        w.string(self.mon_name.as_bytes());
        self.my_id.encode(w);
        w.opaque_fixed(&self.private);
    }
}

/// The status monitor of one server (or host stand-in).
#[derive(Debug)]
pub struct Nsm {
    state: AtomicI32,
    monitors: Mutex<Vec<Monitor>>,
    /// The lock manager whose clients we notify and whose locks a peer's
    /// reboot releases; `None` on a host stand-in without NLM.
    nlm: Option<Arc<Nlm>>,
    name: String,
    /// This host's portmapper: where the local lockd registered (we are
    /// the stand-in for the host's rpcbind as well as its statd).
    registry: Arc<PortRegistry>,
    from: IpAddr,
    peer_portmap_port: u16,
    timeout: Duration,
}

/// At most this many SM_MON registrations (a looping peer cannot grow it).
const MAX_MONITORS: usize = 4096;

impl Nsm {
    pub fn new(
        nlm: Option<Arc<Nlm>>,
        name: String,
        registry: Arc<PortRegistry>,
        from: IpAddr,
        peer_portmap_port: u16,
        timeout: Duration,
    ) -> Nsm {
        Nsm {
            state: AtomicI32::new(1),
            monitors: Mutex::new(Vec::new()),
            nlm,
            name,
            registry,
            from,
            peer_portmap_port,
            timeout,
        }
    }

    /// The state number: odd while up.
    pub fn state(&self) -> i32 {
        self.state.load(Ordering::SeqCst)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn monitors(&self) -> MutexGuard<'_, Vec<Monitor>> {
        self.monitors.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn monitored(&self) -> Vec<Monitor> {
        self.monitors().clone()
    }

    /// A reboot: the state number advances by two (down, then up again).
    pub fn reboot(&self) -> i32 {
        self.state.fetch_add(2, Ordering::SeqCst) + 2
    }

    /// SM_NOTIFY to every client of our lock manager, each on its own
    /// thread; returns how many were sent for.
    pub fn notify_clients(&self) -> usize {
        let Some(nlm) = &self.nlm else { return 0 };
        let clients = nlm.clients();
        let state = self.state();
        for (caller, addr) in &clients {
            let peer = Peer {
                from: self.from,
                to: *addr,
                portmap_port: self.peer_portmap_port,
                privileged: false,
                timeout: self.timeout,
            };
            let mut args = XdrWriter::new();
            args.string(self.name.as_bytes()).i32(state);
            let caller = caller.clone();
            let spawned = std::thread::Builder::new()
                .name("nsm-notify".into())
                .spawn(
                    move || match peer.call(PROGRAM, VERSION, procs::NOTIFY, args.as_bytes()) {
                        Ok(_) => tracing::info!(%caller, state, "nsm SM_NOTIFY sent"),
                        Err(e) => tracing::warn!(%caller, error = %e, "nsm SM_NOTIFY failed"),
                    },
                );
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "cannot spawn nsm notify thread");
            }
        }
        clients.len()
    }

    /// SM_NOTIFY from `addr`: release that host's locks here, and call back
    /// every local monitor of it. A monitor matches by name or, as
    /// rpc.statd does, by the notifier's address (the Linux lockd monitors
    /// servers by address string unless nsm_use_hostnames is set).
    fn peer_rebooted(&self, mon_name: &str, state: i32, addr: IpAddr) {
        tracing::info!(mon_name, state, %addr, "nsm SM_NOTIFY received");
        if let Some(nlm) = &self.nlm {
            nlm.host_rebooted(mon_name, addr);
        }
        let matching: Vec<Monitor> = self
            .monitors()
            .iter()
            .filter(|m| {
                m.mon_name == mon_name || m.mon_name.parse::<IpAddr>().is_ok_and(|a| a == addr)
            })
            .cloned()
            .collect();
        for m in matching {
            // XNFS sm_status: mon_name, state, priv.
            let mut args = XdrWriter::new();
            args.string(m.mon_name.as_bytes())
                .i32(state)
                .opaque_fixed(&m.private);
            let peer = Peer {
                from: IpAddr::V4(Ipv4Addr::LOCALHOST),
                to: IpAddr::V4(Ipv4Addr::LOCALHOST),
                portmap_port: self.peer_portmap_port,
                privileged: true,
                timeout: self.timeout,
            };
            let registry = self.registry.clone();
            let spawned = std::thread::Builder::new()
                .name("nsm-callback".into())
                .spawn(move || {
                    let id = &m.my_id;
                    let addr = registry
                        .lookup(id.my_prog, id.my_vers, "tcp")
                        .and_then(|r| portmap::parse_uaddr(&r.addr));
                    let result = match addr {
                        Some(a) => peer.call_addr(a, id.my_prog, id.my_vers, id.my_proc, args.as_bytes()),
                        None => Err(PeerError::NotRegistered {
                            peer: peer.to,
                            prog: id.my_prog,
                            vers: id.my_vers,
                        }),
                    };
                    match result {
                        Ok(_) => tracing::info!(mon_name = %m.mon_name, prog = id.my_prog, "nsm reboot callback delivered"),
                        Err(e) => tracing::warn!(mon_name = %m.mon_name, error = %e, "nsm reboot callback failed"),
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "cannot spawn nsm callback thread");
            }
        }
    }
}

impl Program for Nsm {
    fn info(&self) -> &'static ProgramInfo {
        &INFO
    }

    fn call(
        &self,
        ctx: &CallContext<'_>,
        _vers: u32,
        proc_: u32,
        args: &mut XdrReader<'_>,
        out: &mut XdrWriter,
    ) -> Result<(), CallError> {
        let g = CallError::Garbage;
        match proc_ {
            procs::NULL => {}
            procs::STAT => {
                let _name = string(args).map_err(g)?;
                out.u32(STAT_SUCC).i32(self.state());
            }
            procs::MON => {
                let m = Monitor::decode(args).map_err(g)?;
                tracing::info!(mon_name = %m.mon_name, my_name = %m.my_id.my_name, prog = m.my_id.my_prog, "nsm SM_MON");
                let mut mons = self.monitors();
                mons.retain(|x| !(x.mon_name == m.mon_name && x.my_id == m.my_id));
                if mons.len() < MAX_MONITORS {
                    mons.push(m);
                    out.u32(STAT_SUCC).i32(self.state());
                } else {
                    out.u32(1).i32(self.state());
                }
            }
            procs::UNMON => {
                let mon_name = string(args).map_err(g)?;
                let my_id = MyId::decode(args).map_err(g)?;
                self.monitors()
                    .retain(|x| !(x.mon_name == mon_name && x.my_id == my_id));
                out.i32(self.state());
            }
            procs::UNMON_ALL => {
                let my_id = MyId::decode(args).map_err(g)?;
                self.monitors().retain(|x| x.my_id != my_id);
                out.i32(self.state());
            }
            procs::SIMU_CRASH => {
                let state = self.reboot();
                tracing::info!(state, "nsm SM_SIMU_CRASH");
                self.notify_clients();
            }
            procs::NOTIFY => {
                let mon_name = string(args).map_err(g)?;
                let state = args.i32().map_err(g)?;
                self.peer_rebooted(&mon_name, state, ctx.client.ip());
            }
            _ => return Err(CallError::ProcUnavail),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mon_round_trips() {
        let m = Monitor {
            mon_name: "10.0.0.1".into(),
            my_id: MyId {
                my_name: "client".into(),
                my_prog: 100021,
                my_vers: 3,
                my_proc: 16,
            },
            private: [7; 16],
        };
        let mut w = XdrWriter::new();
        m.encode(&mut w);
        assert_eq!(w.len(), 12 + 12 + 12 + 16);
        assert_eq!(
            Monitor::decode(&mut XdrReader::new(w.as_bytes())).unwrap(),
            m
        );
    }

    #[test]
    fn reboot_keeps_the_state_odd() {
        let n = Nsm::new(
            None,
            "srv".into(),
            Arc::new(PortRegistry::new()),
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            111,
            Duration::from_secs(1),
        );
        assert_eq!(n.state() % 2, 1);
        assert_eq!(n.reboot(), 3);
        assert_eq!(n.state(), 3);
    }
}
