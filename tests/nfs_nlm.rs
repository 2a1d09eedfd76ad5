//! NLM v4 and NSM v1 of the in-process server against a raw RPC client on
//! loopback (libnfs has no NLM): shared and exclusive locks, a blocked lock
//! granted by a GRANTED callback to the client's lockd, `nlm.down` as a
//! stall and as leaving the portmapper, a forced grace period that only
//! reclaims pass, and a restart that loses the locks and sends SM_NOTIFY to
//! the client's statd, which calls the client's lockd back from a reserved
//! port with the private bytes of its SM_MON. No root (but binding a
//! reserved source port for that callback needs CAP_NET_BIND_SERVICE; the
//! test runs as root here).
//!
//! Two servers play two hosts: "server" serves NFS, NLM and NSM; "client
//! host" is the stand-in for the client's rpcbind and rpc.statd
//! (`LockConfig::client_host`), where a fake lockd (this test) registers.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use stackquake::nfs::client::RpcClient;
use stackquake::nfs::control::{self, DownMode, Request};
use stackquake::nfs::nlm::wire::{self, LockArgs, NlmLock, NlmStat};
use stackquake::nfs::portmap::Registration;
use stackquake::nfs::rpc::{self, AcceptStat, AuthSys, Credential};
use stackquake::nfs::xdr::{XdrReader, XdrWriter};
use stackquake::nfs::{Listeners, LockConfig, NfsServer, RestartOptions, ServerConfig};

const PMAP: u32 = 100000;
const NLM: u32 = 100021;
const NSM: u32 = 100024;

/// A call the fake lockd received: (proc, vers, args, source port).
type Received = (u32, u32, Vec<u8>, u16);

/// The client's lockd: answers GRANTED with GRANTED and everything else
/// with a void result; reports each call.
fn fake_lockd() -> (SocketAddr, mpsc::Receiver<Received>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in l.incoming() {
            let Ok(mut s) = stream else { return };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let port = s.peer_addr().unwrap().port();
                while let Ok(Some(rec)) = rpc::read_record(&mut s, 1 << 20) {
                    let mut r = XdrReader::new(&rec);
                    let call = rpc::parse_call(&mut r).unwrap();
                    let args = r.rest().to_vec();
                    let mut w = XdrWriter::new();
                    rpc::accepted_reply(&mut w, call.xid, AcceptStat::Success);
                    if call.proc_ == 5 {
                        let a =
                            LockArgs::decode_test(&mut XdrReader::new(&args), call.vers).unwrap();
                        wire::encode_res(&mut w, call.vers, &a.cookie, NlmStat::Granted);
                    }
                    rpc::write_record(&mut s, w.as_bytes()).unwrap();
                    let _ = tx.send((call.proc_, call.vers, args, port));
                }
            });
        }
    });
    (addr, rx)
}

fn listeners() -> Listeners {
    Listeners::new(TcpListener::bind("127.0.0.1:0").unwrap())
}

fn client(addr: SocketAddr) -> RpcClient {
    RpcClient::connect(
        addr,
        Credential::Sys(AuthSys {
            machine_name: b"client".to_vec(),
            ..AuthSys::default()
        }),
    )
    .unwrap()
}

fn lock_args(caller: &str, svid: i32, exclusive: bool, block: bool) -> LockArgs {
    LockArgs {
        cookie: svid.to_be_bytes().to_vec(),
        block,
        exclusive,
        lock: NlmLock {
            caller_name: caller.into(),
            fh: vec![0xab; 32],
            oh: format!("{svid}@{caller}").into_bytes(),
            svid,
            offset: 0,
            len: 0,
        },
        reclaim: false,
        state: 1,
    }
}

fn lock(c: &mut RpcClient, a: &LockArgs) -> u32 {
    let mut w = XdrWriter::new();
    a.encode_lock(&mut w, 4);
    let body = c.call(NLM, 4, 2, w.as_bytes()).unwrap();
    let (cookie, stat) = wire::decode_res(&mut XdrReader::new(&body)).unwrap();
    assert_eq!(cookie, a.cookie, "cookie not echoed");
    stat
}

fn unlock(c: &mut RpcClient, a: &LockArgs) -> u32 {
    let mut w = XdrWriter::new();
    a.encode_unlock(&mut w, 4);
    let body = c.call(NLM, 4, 4, w.as_bytes()).unwrap();
    wire::decode_res(&mut XdrReader::new(&body)).unwrap().1
}

fn test_lock(c: &mut RpcClient, a: &LockArgs) -> (u32, Option<wire::Holder>) {
    let mut w = XdrWriter::new();
    a.encode_test(&mut w, 4);
    let body = c.call(NLM, 4, 1, w.as_bytes()).unwrap();
    wire::decode_testres(&mut XdrReader::new(&body), 4).unwrap()
}

fn getport(c: &mut RpcClient, prog: u32, vers: u32) -> u32 {
    let mut w = XdrWriter::new();
    w.u32(prog).u32(vers).u32(6).u32(0);
    let body = c.call(PMAP, 2, 3, w.as_bytes()).unwrap();
    XdrReader::new(&body).u32().unwrap()
}

fn recv_proc(rx: &mpsc::Receiver<Received>, proc_: u32) -> Received {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let got = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no call of proc {proc_} reached the client's lockd"));
        if got.0 == proc_ {
            return got;
        }
    }
}

#[test]
fn nlm_and_nsm_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    // The client host: rpcbind + statd stand-in; our fake lockd registers there.
    let host = NfsServer::start_with_locking(
        ServerConfig::default(),
        listeners(),
        LockConfig::client_host(),
    )
    .unwrap();
    let (lockd, lockd_rx) = fake_lockd();
    for vers in [3, 4] {
        assert!(
            host.portmap()
                .set(Registration::new(NLM, vers, "tcp", lockd, "lockd"))
        );
    }
    let server = NfsServer::start_with_locking(
        ServerConfig::single("/export", dir.path().to_path_buf()),
        listeners(),
        LockConfig {
            peer_portmap_port: host.local_addr().port(),
            ..LockConfig::default()
        },
    )
    .unwrap();
    let mut c = client(server.local_addr());
    // Registered on the server's port; NULL answers on both programs.
    assert_eq!(getport(&mut c, NLM, 4), server.local_addr().port() as u32);
    assert_eq!(getport(&mut c, NLM, 1), server.local_addr().port() as u32);
    assert_eq!(getport(&mut c, NSM, 1), server.local_addr().port() as u32);
    c.call(NLM, 4, 0, &[]).unwrap();
    c.call(NSM, 1, 0, &[]).unwrap();

    // Two shared locks coexist; an exclusive one is denied, TEST names a holder.
    let a = lock_args("alpha", 11, false, false);
    let b = lock_args("beta", 22, false, false);
    let x = lock_args("gamma", 33, true, true);
    assert_eq!(lock(&mut c, &a), NlmStat::Granted as u32);
    assert_eq!(lock(&mut c, &b), NlmStat::Granted as u32);
    let (stat, holder) = test_lock(&mut c, &x);
    assert_eq!(stat, NlmStat::Denied as u32);
    assert!(!holder.unwrap().exclusive);
    let mut x_now = x.clone();
    x_now.block = false;
    assert_eq!(lock(&mut c, &x_now), NlmStat::Denied as u32);
    // Blocking: queued, then granted through a GRANTED callback once both
    // shared holders are gone.
    assert_eq!(lock(&mut c, &x), NlmStat::Blocked as u32);
    assert_eq!(unlock(&mut c, &a), NlmStat::Granted as u32);
    assert!(lockd_rx.recv_timeout(Duration::from_millis(300)).is_err());
    assert_eq!(unlock(&mut c, &b), NlmStat::Granted as u32);
    let (_, vers, args, _) = recv_proc(&lockd_rx, 5);
    assert_eq!(vers, 4);
    let granted = LockArgs::decode_test(&mut XdrReader::new(&args), 4).unwrap();
    assert_eq!(granted.lock.svid, 33);
    assert!(granted.exclusive);
    assert_eq!(server.nlm().unwrap().counts(), (1, 0));
    assert_eq!(lock(&mut c, &a), NlmStat::Denied as u32);

    // nlm.down (stall): a LOCK gets no answer until healed.
    let stop = AtomicBool::new(false);
    let resp = control::execute(
        &server,
        &Request::NlmDown {
            mode: DownMode::Stall,
        },
        &stop,
    );
    assert!(resp.ok, "{resp:?}");
    let id = resp.id.unwrap();
    let addr = server.local_addr();
    let t = std::thread::spawn(move || {
        let mut c2 = client(addr);
        let stat = unlock(&mut c2, &lock_args("gamma", 33, true, true));
        (stat, Instant::now())
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(!t.is_finished(), "NLM answered while down");
    // Measured from here: on a loaded machine connecting alone may take long.
    let healed_at = Instant::now();
    // NFS itself still answers (only the lock manager is down).
    c.call(100003, 3, 0, &[]).unwrap();
    assert!(control::execute(&server, &Request::Heal { id }, &stop).ok);
    let (stat, answered_at) = t.join().unwrap();
    assert_eq!(stat, NlmStat::Granted as u32);
    // Answered only after the heal, not while down.
    assert!(answered_at >= healed_at);
    assert_eq!(server.nlm().unwrap().counts(), (0, 0));

    // nlm.down (unregister): the portmapper no longer knows NLM; nlm_up restores.
    let down = Request::NlmDown {
        mode: DownMode::Unregister,
    };
    assert!(control::execute(&server, &down, &stop).ok);
    assert_eq!(getport(&mut c, NLM, 4), 0);
    assert_eq!(getport(&mut c, NSM, 1), server.local_addr().port() as u32);
    assert!(control::execute(&server, &Request::NlmUp, &stop).ok);
    assert_eq!(getport(&mut c, NLM, 4), server.local_addr().port() as u32);

    // nlm.grace: only reclaims are granted; the grace period ends by itself.
    assert!(control::execute(&server, &Request::NlmGrace { ms: 1500 }, &stop).ok);
    assert_eq!(lock(&mut c, &a), NlmStat::DeniedGracePeriod as u32);
    assert_eq!(test_lock(&mut c, &b).0, NlmStat::DeniedGracePeriod as u32);
    let mut reclaim = a.clone();
    reclaim.reclaim = true;
    assert_eq!(lock(&mut c, &reclaim), NlmStat::Granted as u32);
    std::thread::sleep(Duration::from_millis(1600));
    assert_eq!(lock(&mut c, &b), NlmStat::Granted as u32);

    // The client's lockd monitors the server with the client host's statd.
    let mut hc = client(host.local_addr());
    let mut mon = XdrWriter::new();
    mon.string(b"127.0.0.1")
        .string(b"client")
        .u32(NLM)
        .u32(3)
        .u32(16)
        .opaque_fixed(&[0x5a; 16]);
    let body = hc.call(NSM, 1, 2, mon.as_bytes()).unwrap();
    assert_eq!(XdrReader::new(&body).u32().unwrap(), 0, "SM_MON refused");
    assert_eq!(host.nsm().unwrap().monitored().len(), 1);

    // SM_STAT gives the server's state; a restart adds two, loses every
    // lock, and notifies the client's statd, which calls lockd back.
    let state = |c: &mut RpcClient| {
        let mut w = XdrWriter::new();
        w.string(b"x");
        let body = c.call(NSM, 1, 1, w.as_bytes()).unwrap();
        let mut r = XdrReader::new(&body);
        assert_eq!(r.u32().unwrap(), 0);
        r.i32().unwrap()
    };
    let before = state(&mut c);
    server.restart(RestartOptions {
        keep_handles: true,
        downtime: Duration::ZERO,
    });
    let mut c = client(server.local_addr());
    assert_eq!(state(&mut c), before + 2);
    assert_eq!(server.nlm().unwrap().counts(), (0, 0));
    let (_, vers, args, port) = recv_proc(&lockd_rx, 16);
    assert_eq!(vers, 3);
    assert!(port < 1024, "statd callback from unprivileged port {port}");
    let mut r = XdrReader::new(&args);
    assert_eq!(r.string(1024).unwrap(), b"127.0.0.1");
    assert_eq!(r.i32().unwrap(), before + 2);
    assert_eq!(r.opaque_fixed(16).unwrap(), &[0x5a; 16]);

    // FREE_ALL drops a client's locks and grants what waited on them.
    assert_eq!(lock(&mut c, &a), NlmStat::Granted as u32);
    let mut w = XdrWriter::new();
    w.string(b"alpha").i32(3);
    c.call(NLM, 4, 23, w.as_bytes()).unwrap();
    assert_eq!(lock(&mut c, &x_now), NlmStat::Granted as u32);

    // SM_UNMON_ALL clears the host stand-in's monitors.
    let mut w = XdrWriter::new();
    w.string(b"client").u32(NLM).u32(3).u32(16);
    hc.call(NSM, 1, 4, w.as_bytes()).unwrap();
    assert!(host.nsm().unwrap().monitored().is_empty());
    server.shutdown();
    host.shutdown();
}

#[test]
fn lock_programs_are_off_unless_asked() {
    let server = NfsServer::start_with(ServerConfig::default(), listeners()).unwrap();
    let mut c = client(server.local_addr());
    assert_eq!(getport(&mut c, NLM, 4), 0);
    assert!(matches!(
        c.call(NLM, 4, 0, &[]),
        Err(stackquake::nfs::client::ClientError::NotAccepted(
            AcceptStat::ProgUnavail
        ))
    ));
    let stop = AtomicBool::new(false);
    let resp = control::execute(&server, &Request::NlmGrace { ms: 10 }, &stop);
    assert!(!resp.ok);
}
