//! nfs-utils daemons in a host's `DaemonNs`, on this machine (rpcbind and
//! rpc.statd need no kernel NFS): private mounts, readiness asked of
//! rpcbind the way the kernel's lockd asks, and nothing left behind.

mod root_world_support;

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use root_world_support::{TestRun, leftovers, require_root_and};
use stackquake::net::Netns;
use stackquake::nfs::daemon_ns::DaemonNs;
use stackquake::nfs::peer::Peer;
use stackquake::nfs::{nsm, portmap};

fn local_getport(ns: &Netns, prog: u32, vers: u32) -> Option<u16> {
    let peer = Peer {
        from: Ipv4Addr::LOCALHOST.into(),
        to: Ipv4Addr::LOCALHOST.into(),
        portmap_port: 111,
        privileged: false,
        timeout: Duration::from_secs(2),
    };
    ns.run(|| peer.getport(prog, vers).ok())
}

#[test]
fn statd_counts_as_up_only_while_it_answers_at_its_registered_port() {
    require_root_and(
        &["rpcbind", "rpc.statd", "unshare", "nsenter"],
        &["/proc/self/ns/net", "/proc/self/ns/mnt"],
    );
    let t = TestRun::new("root_world_daemons");
    let ns = Netns::create(&Netns::name_for(&t.run, "client"), &t.ledger).unwrap();
    ns.set_loopback_up().unwrap();
    let tag = format!("sqtest{}", t.run);
    let dns = DaemonNs::start(&ns, &tag, Some(&t.ledger)).unwrap();

    // Private tmpfs over /var/lib/nfs and /run, seen only from inside.
    let anchor_mounts = dns.output("cat", &["/proc/self/mountinfo"]).unwrap();
    let ours: Vec<&str> = anchor_mounts.lines().filter(|l| l.contains(&tag)).collect();
    assert_eq!(ours.len(), 2, "{ours:?}");
    assert!(
        ours.iter().any(|l| l.contains(" /var/lib/nfs ")),
        "{ours:?}"
    );
    assert!(ours.iter().any(|l| l.contains(" /run ")), "{ours:?}");
    let host_mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!host_mounts.contains(&tag), "the tmpfs leaked to the host");

    assert!(!dns.answers(portmap::PROGRAM, 2), "no rpcbind yet");
    let rpcbind = dns.start_rpcbind().unwrap();
    assert!(dns.answers(portmap::PROGRAM, 2));
    assert!(!dns.answers(nsm::PROGRAM, nsm::VERSION), "no statd yet");

    let statd = dns.start_statd().unwrap();
    assert!(dns.answers(nsm::PROGRAM, nsm::VERSION));
    assert!(dns.path("var/lib/nfs/state").exists());
    let port = local_getport(&ns, nsm::PROGRAM, nsm::VERSION).expect("statd registered");

    // SIGKILL: statd cannot unregister. rpcbind still names its port, which
    // is why readiness is a NULL call there and not the GETPORT alone.
    let statd_pid = statd.pid();
    drop(statd);
    assert!(!Path::new(&format!("/proc/{statd_pid}")).exists());
    assert_eq!(
        local_getport(&ns, nsm::PROGRAM, nsm::VERSION),
        Some(port),
        "a killed statd's registration stays"
    );
    assert!(!dns.answers(nsm::PROGRAM, nsm::VERSION));

    // A restart re-registers and is ready once it answers.
    let statd = dns.start_statd().unwrap();
    assert!(dns.answers(nsm::PROGRAM, nsm::VERSION));

    let pids = [statd.pid(), rpcbind.pid()];
    drop(statd);
    drop(rpcbind);
    drop(dns);
    for pid in pids {
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "pid {pid}");
    }
    ns.delete().unwrap();
    let left = leftovers(&t.run.to_string());
    assert!(left.is_empty(), "{left:#?}");
    assert_eq!(t.ledger.open_entries(), 0, "ledger entries still open");
}
