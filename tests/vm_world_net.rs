//! Network faults that need modules the dev hosts lack, in a guest: a VLAN
//! on a VLAN over a 1500-MTU veth with offloads off (the stacked-VLAN
//! incident: small packets pass, full-size ones are dropped), and netem
//! delay and loss with the qdisc counters that prove they fired.

mod vm_world_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use stackquake::ledger::{Ledger, RunId};
use stackquake::net::{
    Netem, NetemSpec, Netns, VethPair, Vlan, add_address, command_in, link_ifname, link_stats,
    set_offloads, set_up, tcp_listener_in,
};
use vm_world_support::{guest_init, require_guest, require_vm_tools, run_in_guest};

#[test]
#[ignore = "entry point for the guest's PID 1"]
fn guest_entry() {
    guest_init();
}

/// A DF ping of `payload` bytes (IP size = payload + 28); true if answered.
fn ping(ns: &Netns, to: &str, payload: u32, count: u32) -> bool {
    command_in(ns, "ping")
        .args(["-c", &count.to_string(), "-i", "0.2", "-W", "2", "-M", "do"])
        .args(["-s", &payload.to_string(), to])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// Bytes the server received of a `size`-byte send within `window`.
fn send_and_count(
    a: &Netns,
    b: &Netns,
    server: SocketAddr,
    size: usize,
    window: Duration,
) -> usize {
    let listener = tcp_listener_in(b, server).unwrap();
    let reader = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let (mut got, mut buf, start) = (0usize, vec![0u8; 65536], Instant::now());
        while got < size && start.elapsed() < window {
            match conn.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(_) => {} // read timeout: keep waiting until the window ends
            }
        }
        got
    });
    let data = vec![0x5au8; size];
    let writer = a.run(|| TcpStream::connect_timeout(&server, Duration::from_secs(5)).unwrap());
    // Writes land in the socket buffer even when the path eats them; the
    // reader's count is the truth. Write on a thread that may stay blocked.
    std::thread::spawn(move || {
        let mut w = writer;
        let _ = w.write_all(&data);
        std::thread::sleep(Duration::from_secs(30));
    });
    reader.join().unwrap()
}

#[test]
#[ignore = "runs inside the guest booted by stacked_vlan_drops_full_frames_and_netem_fires"]
fn guest_stacked_vlan_and_netem() {
    require_guest();
    let st = Command::new("modprobe")
        .args(["-a", "8021q", "sch_netem"])
        .status()
        .unwrap();
    assert!(st.success(), "modprobe 8021q sch_netem");
    let run = RunId::generate();
    let root = tempfile::tempdir().unwrap();
    let ledger = Ledger::create(root.path(), &run, Path::new("vm_world_net")).unwrap();
    {
        let a = Netns::create(&Netns::name_for(&run, "a"), &ledger).unwrap();
        let b = Netns::create(&Netns::name_for(&run, "b"), &ledger).unwrap();
        let (ifa, ifb) = (link_ifname(&run, 0, 'a'), link_ifname(&run, 0, 'b'));
        let _veth = VethPair::create((&a, &ifa), (&b, &ifb), Some(1500), &ledger).unwrap();
        let mut vlans = Vec::new();
        for (ns, parent, ip) in [(&a, &ifa, "10.200.0.1/24"), (&b, &ifb, "10.200.0.2/24")] {
            set_offloads(ns, parent, false).unwrap();
            set_up(ns, parent).unwrap();
            let outer = Vlan::create(ns, parent, "v20", 20, &ledger).unwrap();
            set_up(ns, "v20").unwrap();
            let inner = Vlan::create(ns, "v20", "v20.100", 100, &ledger).unwrap();
            set_up(ns, "v20.100").unwrap();
            add_address(ns, "v20.100", ip).unwrap();
            ns.set_loopback_up().unwrap();
            vlans.push((inner, outer));
        }
        let shown = command_in(&a, "ip")
            .args(["-d", "link", "show", "v20.100"])
            .output()
            .unwrap();
        let shown = String::from_utf8_lossy(&shown.stdout);
        assert!(shown.contains("vlan protocol 802.1Q id 100"), "{shown}");
        assert!(shown.contains("v20.100@v20"), "{shown}");
        assert_eq!(link_stats(&a, "v20.100").unwrap().mtu, 1500);

        // IP 1496 (payload 1468) fits a 1500 frame with two inline tags.
        assert!(ping(&a, "10.200.0.2", 1468, 3), "IP 1496 did not pass");
        let before = link_stats(&b, &ifb).unwrap();
        // IP 1500: 1500 + 14 + 8 bytes on a 1500-MTU veth, dropped on receipt.
        assert!(!ping(&a, "10.200.0.2", 1472, 3), "IP 1500 passed two tags");
        let after = link_stats(&b, &ifb).unwrap();
        let dropped = after.rx_dropped - before.rx_dropped;
        assert!(dropped >= 3, "rx_dropped on {ifb} grew by {dropped}");
        println!(
            "FACT stacked vlan: IP 1496 passes, IP 1500 dropped; rx_dropped +{dropped} on the receiving veth"
        );

        let small = send_and_count(
            &a,
            &b,
            "10.200.0.2:7100".parse().unwrap(),
            100,
            Duration::from_secs(5),
        );
        assert_eq!(small, 100, "a 100-byte send did not arrive");
        let big = send_and_count(
            &a,
            &b,
            "10.200.0.2:7101".parse().unwrap(),
            200_000,
            Duration::from_secs(5),
        );
        assert!(
            big < 200_000,
            "a 200 KB send completed over the stacked vlan"
        );
        println!(
            "FACT stacked vlan: 100-byte TCP send arrived, 200 KB send stalled at {big} bytes after 5 s"
        );

        // netem delay on a's veth: a TCP connect waits for the delayed SYN.
        let spec = NetemSpec {
            delay: Some(Duration::from_millis(100)),
            ..NetemSpec::default()
        };
        let netem = Netem::add(&a, &ifa, &spec).unwrap();
        let server: SocketAddr = "10.200.0.2:7102".parse().unwrap();
        let _l = tcp_listener_in(&b, server).unwrap();
        let t0 = Instant::now();
        a.run(|| TcpStream::connect_timeout(&server, Duration::from_secs(5)).unwrap());
        let took = t0.elapsed();
        assert!(took >= Duration::from_millis(100), "connect took {took:?}");
        let stats = netem.stats().unwrap();
        assert!(stats.packets >= 1, "{stats:?}");
        println!("FACT netem delay 100ms: connect took {took:?}, qdisc {stats:?}");
        netem.remove().unwrap();
        let shown = Command::new("tc")
            .args(["-n", a.name(), "qdisc", "show", "dev", &ifa])
            .output()
            .unwrap();
        assert!(!String::from_utf8_lossy(&shown.stdout).contains("netem"));

        let loss = Netem::add(
            &a,
            &ifa,
            &NetemSpec {
                loss_percent: Some(50.0),
                ..NetemSpec::default()
            },
        )
        .unwrap();
        let out = command_in(&a, "ping")
            .args(["-c", "20", "-i", "0.05", "-W", "1", "-q", "10.200.0.2"])
            .output()
            .unwrap();
        let stats = loss.stats().unwrap();
        let summary = String::from_utf8_lossy(&out.stdout);
        assert!(stats.drops > 0 && stats.drops < 20, "{stats:?}\n{summary}");
        println!(
            "FACT netem loss 50%: qdisc {stats:?}; ping: {}",
            summary.lines().find(|l| l.contains("loss")).unwrap_or("")
        );
        drop(loss);
        drop(vlans);
    }
    assert_eq!(ledger.open_entries(), 0);
    assert!(ledger.finish().unwrap());
}

#[test]
fn stacked_vlan_drops_full_frames_and_netem_fires() {
    require_vm_tools();
    let out = run_in_guest(
        "guest_stacked_vlan_and_netem",
        Duration::from_secs(180),
        512,
    );
    assert!(out.contains("FACT stacked vlan: IP 1496 passes"), "{out}");
}
