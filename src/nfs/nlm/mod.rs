//! The Network Lock Manager, program 100021 versions 1, 3 and 4 (Open Group
//! XNFS; the Linux NFSv3 client speaks version 4): TEST, LOCK (blocking
//! requests queue and are granted by a GRANTED callback to the client's
//! lockd), CANCEL, UNLOCK, the *_MSG variants, SHARE/UNSHARE, NM_LOCK and
//! FREE_ALL, with an explicit grace period after a restart.

pub mod grace;
pub mod locks;
pub mod wire;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::call::{CallContext, CallError};
use super::peer::Peer;
use super::program::{Program, ProgramInfo};
use super::xdr::{XdrReader, XdrWriter};
pub use grace::Grace;
use locks::{LockOutcome, LockTable, Waiter};
use wire::{LockArgs, NlmStat, ShareArgs};

pub const PROGRAM: u32 = 100021;
/// Versions served: 1 and 3 (32-bit ranges, NFSv2 clients) and 4.
pub const VERSIONS: [u32; 3] = [1, 3, 4];

/// NLM's row in the program table. Procedure 16 is Linux's private NSM
/// callback; 17-19 are unused and named by their numbers.
pub static INFO: ProgramInfo = ProgramInfo {
    number: PROGRAM,
    names: &["nlm", "nlockmgr", "lockd"],
    versions: &VERSIONS,
    procedures: &[
        "NULL",
        "TEST",
        "LOCK",
        "CANCEL",
        "UNLOCK",
        "GRANTED",
        "TEST_MSG",
        "LOCK_MSG",
        "CANCEL_MSG",
        "UNLOCK_MSG",
        "GRANTED_MSG",
        "TEST_RES",
        "LOCK_RES",
        "CANCEL_RES",
        "UNLOCK_RES",
        "GRANTED_RES",
        "NSM_NOTIFY",
        "17",
        "18",
        "19",
        "SHARE",
        "UNSHARE",
        "NM_LOCK",
        "FREE_ALL",
    ],
    procedure_prefixes: &["NLMPROC4_", "NLM_"],
    status_reply: |vers, _proc, args, status, out| encode_failure(vers, args, status, out),
};

/// XNFS procedure numbers.
pub mod procs {
    pub const NULL: u32 = 0;
    pub const TEST: u32 = 1;
    pub const LOCK: u32 = 2;
    pub const CANCEL: u32 = 3;
    pub const UNLOCK: u32 = 4;
    pub const GRANTED: u32 = 5;
    pub const TEST_MSG: u32 = 6;
    pub const LOCK_MSG: u32 = 7;
    pub const CANCEL_MSG: u32 = 8;
    pub const UNLOCK_MSG: u32 = 9;
    pub const GRANTED_MSG: u32 = 10;
    pub const TEST_RES: u32 = 11;
    pub const GRANTED_RES: u32 = 15;
    /// Linux private: statd's reboot callback into the kernel's lockd.
    pub const NSM_NOTIFY: u32 = 16;
    pub const SHARE: u32 = 20;
    pub const UNSHARE: u32 = 21;
    pub const NM_LOCK: u32 = 22;
    pub const FREE_ALL: u32 = 23;
}

/// How the lock manager behaves; part of how the engine starts a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockConfig {
    /// Serve NLM (and register it). Off for a stand-in of a client host's
    /// rpcbind and statd, where the kernel's own lockd registers 100021.
    pub nlm: bool,
    /// Serve NSM (and register it).
    pub nsm: bool,
    /// Grace period after start and after every restart: only reclaims are
    /// granted. knfsd's is 90 s, which looks exactly like a hang; ours is
    /// explicit and 0 unless asked.
    pub grace: Duration,
    /// Where peers' portmappers listen (111; tests point it elsewhere).
    pub peer_portmap_port: u16,
    /// How long a callback (GRANTED, SM_NOTIFY) may take.
    pub callback_timeout: Duration,
    /// The name this host gives in SM_NOTIFY (default: its address).
    pub name: Option<String>,
}

impl Default for LockConfig {
    fn default() -> LockConfig {
        LockConfig {
            nlm: true,
            nsm: true,
            grace: Duration::ZERO,
            peer_portmap_port: 111,
            callback_timeout: Duration::from_secs(5),
            name: None,
        }
    }
}

impl LockConfig {
    /// Neither NLM nor NSM (what `NfsServer::start_with` serves).
    pub fn off() -> LockConfig {
        LockConfig {
            nlm: false,
            nsm: false,
            ..LockConfig::default()
        }
    }

    /// A stand-in for a client host's rpcbind and rpc.statd: NSM only, so
    /// the kernel's lockd can register 100021 in the same portmapper.
    pub fn client_host() -> LockConfig {
        LockConfig {
            nlm: false,
            ..LockConfig::default()
        }
    }
}

/// The lock manager of one server.
#[derive(Debug)]
pub struct Nlm {
    table: Arc<Mutex<LockTable>>,
    grace: Grace,
    config: LockConfig,
    /// Our address, the source of callbacks (unspecified: let routing pick).
    local_ip: IpAddr,
    /// Every client that locked, by caller name: whom NSM notifies after a
    /// restart (statd keeps this list on disk; it survives restarts).
    clients: Mutex<HashMap<String, IpAddr>>,
}

impl Nlm {
    pub fn new(config: LockConfig, local_ip: IpAddr) -> Nlm {
        let grace = Grace::new();
        grace.start(config.grace);
        Nlm {
            table: Arc::new(Mutex::new(LockTable::new())),
            grace,
            config,
            local_ip,
            clients: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &LockConfig {
        &self.config
    }

    pub fn grace(&self) -> &Grace {
        &self.grace
    }

    pub fn local_ip(&self) -> IpAddr {
        self.local_ip
    }

    fn table(&self) -> MutexGuard<'_, LockTable> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// (held, blocked) lock counts.
    pub fn counts(&self) -> (usize, usize) {
        let t = self.table();
        (t.held_count(), t.blocked_count())
    }

    /// The clients to notify after a restart.
    pub fn clients(&self) -> Vec<(String, IpAddr)> {
        let c = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<_> = c.iter().map(|(n, a)| (n.clone(), *a)).collect();
        v.sort();
        v
    }

    /// A restart: every lock is lost and the grace period begins.
    pub fn restarted(&self) {
        self.table().clear();
        self.grace.start(self.config.grace);
    }

    /// A client rebooted (its statd told ours): drop what it held, as
    /// FREE_ALL does, and grant what that frees.
    pub fn host_rebooted(&self, name: &str, addr: IpAddr) {
        // By address, as knfsd's statd callback finds the nlm_host by the
        // notifier's address (nsm_use_hostnames off): hosts that share a
        // nodename must not lose each other's locks. A name that is an
        // address (what sm-notify sends by default) counts as one.
        let mut granted = self.table().free_host(addr);
        if let Ok(named) = name.parse::<IpAddr>()
            && named != addr
        {
            granted.extend(self.table().free_host(named));
        }
        tracing::info!(name, %addr, "nlm client rebooted: its locks released");
        self.notify_granted(granted);
    }

    fn peer(&self, to: IpAddr) -> Peer {
        Peer {
            from: self.local_ip,
            to,
            portmap_port: self.config.peer_portmap_port,
            privileged: false,
            timeout: self.config.callback_timeout,
        }
    }

    fn test(&self, vers: u32, a: &LockArgs, host: IpAddr, out: &mut XdrWriter) {
        if self.grace.active() {
            wire::encode_testres(
                out,
                vers,
                &a.cookie,
                Ok(()),
                Some(NlmStat::DeniedGracePeriod),
            );
            return;
        }
        match self.table().test(&a.lock, a.exclusive, host) {
            Some(h) => wire::encode_testres(out, vers, &a.cookie, Err(&h), None),
            None => wire::encode_testres(out, vers, &a.cookie, Ok(()), None),
        }
    }

    /// LOCK: during grace only reclaims pass (XNFS, "grace period").
    pub fn lock(&self, client: SocketAddr, vers: u32, a: LockArgs) -> NlmStat {
        if self.grace.active() && !a.reclaim {
            return NlmStat::DeniedGracePeriod;
        }
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(a.lock.caller_name.clone(), client.ip());
        let outcome = self.table().lock(Waiter {
            client,
            vers,
            args: a.clone(),
        });
        tracing::debug!(caller = %a.lock.caller_name, svid = a.lock.svid, exclusive = a.exclusive, ?outcome, "nlm LOCK");
        match outcome {
            LockOutcome::Granted => NlmStat::Granted,
            LockOutcome::Denied => NlmStat::Denied,
            LockOutcome::Blocked => NlmStat::Blocked,
        }
    }

    pub fn cancel(&self, a: &LockArgs, host: IpAddr) -> NlmStat {
        if self.grace.active() {
            return NlmStat::DeniedGracePeriod;
        }
        // knfsd answers GRANTED whether or not anything was queued.
        self.table().cancel(&a.lock, a.exclusive, host);
        NlmStat::Granted
    }

    pub fn unlock(&self, a: &LockArgs, host: IpAddr) -> NlmStat {
        if self.grace.active() {
            return NlmStat::DeniedGracePeriod;
        }
        let granted = self.table().unlock(&a.lock, host);
        self.notify_granted(granted);
        NlmStat::Granted
    }

    fn share(&self, share: bool, a: &ShareArgs) -> NlmStat {
        if self.grace.active() && !(share && a.reclaim) {
            return NlmStat::DeniedGracePeriod;
        }
        let mut t = self.table();
        if !share {
            t.unshare(&a.caller_name, &a.fh, &a.oh);
            return NlmStat::Granted;
        }
        if t.share(&a.caller_name, &a.fh, &a.oh, a.mode, a.access) {
            NlmStat::Granted
        } else {
            NlmStat::Denied
        }
    }

    /// The *_MSG procedures: do the work, send the answer back as the
    /// matching *_RES call to the caller's NLM. The Linux client never
    /// sends these (it calls synchronously); other clients may.
    fn message(
        &self,
        client: SocketAddr,
        vers: u32,
        proc_: u32,
        args: &mut XdrReader<'_>,
    ) -> Result<(), CallError> {
        let g = CallError::Garbage;
        let mut res = XdrWriter::new();
        match proc_ {
            procs::TEST_MSG => {
                let a = LockArgs::decode_test(args, vers).map_err(g)?;
                self.test(vers, &a, client.ip(), &mut res);
            }
            procs::LOCK_MSG => {
                let a = LockArgs::decode_lock(args, vers).map_err(g)?;
                let cookie = a.cookie.clone();
                let stat = self.lock(client, vers, a);
                wire::encode_res(&mut res, vers, &cookie, stat);
            }
            procs::CANCEL_MSG => {
                let a = LockArgs::decode_cancel(args, vers).map_err(g)?;
                wire::encode_res(&mut res, vers, &a.cookie, self.cancel(&a, client.ip()));
            }
            _ => {
                let a = LockArgs::decode_unlock(args, vers).map_err(g)?;
                wire::encode_res(&mut res, vers, &a.cookie, self.unlock(&a, client.ip()));
            }
        }
        let peer = self.peer(client.ip());
        let res_proc = proc_ - procs::TEST_MSG + procs::TEST_RES;
        let body = res.into_bytes();
        spawn("nlm-res", move || {
            if let Err(e) = peer.call(PROGRAM, vers, res_proc, &body) {
                tracing::warn!(error = %e, "nlm *_RES callback failed");
            }
        });
        Ok(())
    }

    /// Sends GRANTED to each newly granted waiter's lockd.
    fn notify_granted(&self, granted: Vec<Waiter>) {
        grant_callbacks(self.table.clone(), self.peer(self.local_ip), granted);
    }
}

/// GRANTED to each waiter's lockd, each on its own thread. A client that
/// answers anything but GRANTED no longer wants the lock: release it (and
/// grant onward). A client that cannot be reached keeps it: the Linux client
/// re-sends its blocked LOCK every 30 s (NLMCLNT_POLL_TIMEOUT) and gets
/// GRANTED then.
fn grant_callbacks(table: Arc<Mutex<LockTable>>, template: Peer, granted: Vec<Waiter>) {
    for w in granted {
        let peer = Peer {
            to: w.client.ip(),
            ..template
        };
        let table = table.clone();
        spawn("nlm-granted", move || {
            let mut body = XdrWriter::new();
            w.args.encode_test(&mut body, w.vers);
            match peer.call(PROGRAM, w.vers, procs::GRANTED, body.as_bytes()) {
                Ok(reply) => {
                    let stat = wire::decode_res(&mut XdrReader::new(&reply)).map(|r| r.1);
                    tracing::info!(caller = %w.args.lock.caller_name, svid = w.args.lock.svid, ?stat, "nlm GRANTED callback answered");
                    if stat != Ok(NlmStat::Granted as u32) {
                        let more = table
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .unlock(&w.args.lock, w.client.ip());
                        grant_callbacks(table, template, more);
                    }
                }
                Err(e) => {
                    tracing::warn!(caller = %w.args.lock.caller_name, error = %e, "nlm GRANTED callback failed; the lock stays granted")
                }
            }
        });
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) {
    if let Err(e) = std::thread::Builder::new().name(name.into()).spawn(f) {
        tracing::warn!(error = %e, "cannot spawn {name} thread");
    }
}

impl Program for Nlm {
    fn info(&self) -> &'static ProgramInfo {
        &INFO
    }

    fn call(
        &self,
        ctx: &CallContext<'_>,
        vers: u32,
        proc_: u32,
        args: &mut XdrReader<'_>,
        out: &mut XdrWriter,
    ) -> Result<(), CallError> {
        use procs::*;
        let g = CallError::Garbage;
        match proc_ {
            NULL => {}
            TEST => {
                let a = LockArgs::decode_test(args, vers).map_err(g)?;
                self.test(vers, &a, ctx.client.ip(), out);
            }
            LOCK | NM_LOCK => {
                let mut a = LockArgs::decode_lock(args, vers).map_err(g)?;
                if proc_ == NM_LOCK {
                    // XNFS: NM_LOCK never blocks and is not monitored.
                    a.block = false;
                }
                let stat = self.lock(ctx.client, vers, a.clone());
                wire::encode_res(out, vers, &a.cookie, stat);
            }
            CANCEL => {
                let a = LockArgs::decode_cancel(args, vers).map_err(g)?;
                let stat = self.cancel(&a, ctx.client.ip());
                wire::encode_res(out, vers, &a.cookie, stat);
            }
            UNLOCK => {
                let a = LockArgs::decode_unlock(args, vers).map_err(g)?;
                let stat = self.unlock(&a, ctx.client.ip());
                wire::encode_res(out, vers, &a.cookie, stat);
            }
            GRANTED => {
                // We are no client: nothing of ours was waiting.
                let a = LockArgs::decode_test(args, vers).map_err(g)?;
                wire::encode_res(out, vers, &a.cookie, NlmStat::Denied);
            }
            TEST_MSG..=UNLOCK_MSG => {
                self.message(ctx.client, vers, proc_, args)?;
            }
            GRANTED_MSG..=GRANTED_RES | NSM_NOTIFY => {
                // Asynchronous answers to calls we never make, and a Linux
                // statd-to-lockd callback that only a client's lockd takes.
            }
            SHARE | UNSHARE => {
                let a = ShareArgs::decode(args).map_err(g)?;
                let stat = self.share(proc_ == SHARE, &a);
                wire::encode_shareres(out, vers, &a.cookie, stat);
            }
            FREE_ALL => {
                let (name, _state) = wire::decode_notify(args).map_err(g)?;
                let granted = self.table().free_all(&name);
                tracing::info!(caller = %name, "nlm FREE_ALL");
                self.notify_granted(granted);
            }
            _ => return Err(CallError::ProcUnavail),
        }
        Ok(())
    }
}

/// A call the fault hook answers with a status: an nlm4_res echoing the
/// cookie (every NLM argument but FREE_ALL's starts with it).
pub fn encode_failure(vers: u32, args: &[u8], status: u32, w: &mut XdrWriter) {
    let cookie = XdrReader::new(args)
        .opaque(wire::MAXNETOBJ_SZ)
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    let stat = NlmStat::from_u32(status).unwrap_or(NlmStat::Failed);
    wire::encode_res(w, vers, &cookie, stat);
}
