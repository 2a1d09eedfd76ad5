//! Real namespaces and veth links: build two hosts, ping across, tear down.

mod root_world_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;

use root_world_support::{TestRun, netns_entries_of, require_root_and};
use stackquake::net::{
    Netns, VethPair, add_address, command_in, link_ifname, set_mtu, set_up, tcp_listener_in,
};

fn host_links() -> String {
    let out = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .expect("ip link");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn two_namespaces_ping_across_a_veth_and_vanish_on_drop() {
    require_root_and(&["ip", "ping"], &["/proc/self/ns/net"]);
    let t = TestRun::new("root_world_net");
    let (ifa, ifb) = (link_ifname(&t.run, 0, 'a'), link_ifname(&t.run, 0, 'b'));
    let names = (
        Netns::name_for(&t.run, "client"),
        Netns::name_for(&t.run, "server"),
    );
    {
        let a = Netns::create(&names.0, &t.ledger).unwrap();
        let b = Netns::create(&names.1, &t.ledger).unwrap();
        assert!(a.path().exists());
        // `ip netns` sees ours.
        let listed = Command::new("ip").args(["netns", "list"]).output().unwrap();
        assert!(String::from_utf8_lossy(&listed.stdout).contains(&names.0));

        let veth = VethPair::create((&a, &ifa), (&b, &ifb), Some(1400), &t.ledger).unwrap();
        // Neither end is in the host namespace.
        assert!(!host_links().contains(&ifa) && !host_links().contains(&ifb));
        a.set_loopback_up().unwrap();
        b.set_loopback_up().unwrap();
        add_address(&a, &ifa, "10.251.0.1/30").unwrap();
        add_address(&b, &ifb, "10.251.0.2/30").unwrap();
        set_up(&a, &ifa).unwrap();
        set_up(&b, &ifb).unwrap();
        set_mtu(&b, &ifb, 1300).unwrap();

        let shown = command_in(&b, "ip")
            .args(["-o", "link", "show", &ifb])
            .output()
            .unwrap();
        let shown = String::from_utf8_lossy(&shown.stdout);
        assert!(shown.contains("mtu 1300"), "{shown}");

        let ping = command_in(&a, "ping")
            .args(["-c", "2", "-W", "2", "10.251.0.2"])
            .output()
            .unwrap();
        assert!(
            ping.status.success(),
            "ping across the veth failed: {}{}",
            String::from_utf8_lossy(&ping.stdout),
            String::from_utf8_lossy(&ping.stderr)
        );
        // The addresses exist only inside the namespaces (never ping from the
        // host: that would route to the real network).
        let host_addrs = Command::new("ip")
            .args(["-o", "addr", "show"])
            .output()
            .unwrap();
        assert!(!String::from_utf8_lossy(&host_addrs.stdout).contains("10.251.0."));

        // A listener made inside b accepts a connection made from a thread inside a.
        let addr: SocketAddr = "10.251.0.2:7049".parse().unwrap();
        let listener = tcp_listener_in(&b, addr).unwrap();
        let client = std::thread::spawn({
            let a_file = a.file().unwrap();
            move || {
                nix::sched::setns(a_file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                let mut s = TcpStream::connect(addr).unwrap();
                s.write_all(b"hello").unwrap();
            }
        });
        let (mut conn, peer) = listener.accept().unwrap();
        let mut got = String::new();
        conn.read_to_string(&mut got).unwrap();
        client.join().unwrap();
        assert_eq!(got, "hello");
        assert_eq!(peer.ip().to_string(), "10.251.0.1");

        // Netns::run really runs elsewhere: the caller's namespace is unchanged.
        let inside = a.run(|| std::fs::read_link("/proc/thread-self/ns/net").unwrap());
        let here = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
        assert_ne!(inside, here);

        assert_eq!(t.ledger.open_entries(), 3);
        drop(veth);
    }
    assert!(
        netns_entries_of(&t.run).is_empty(),
        "left: {:?}",
        netns_entries_of(&t.run)
    );
    assert!(!host_links().contains(&ifa));
    assert_eq!(t.ledger.open_entries(), 0);
    assert!(t.ledger.finish().unwrap(), "clean run deletes its ledger");
    assert!(!t.ledger.path().exists());
}

#[test]
fn command_in_runs_the_child_inside_the_namespace() {
    require_root_and(&["ip"], &["/proc/self/ns/net"]);
    let t = TestRun::new("root_world_net");
    let ns = Netns::create(&Netns::name_for(&t.run, "solo"), &t.ledger).unwrap();
    // A fresh namespace has only lo: the child sees none of the host's links.
    let out = command_in(&ns, "ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains(": lo:"), "{text}");
    ns.delete().unwrap();
    assert!(netns_entries_of(&t.run).is_empty());
    assert!(t.ledger.finish().unwrap());
}
