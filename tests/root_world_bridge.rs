//! A bridge "switch" namespace joining two hosts; the `net.mtu` fault and
//! its restore; veth offloads off; link counters.

mod root_world_support;

use std::process::Stdio;

use root_world_support::{TestRun, netns_entries_of, require_root_and};
use stackquake::net::{
    Bridge, MtuChange, Netns, add_address, command_in, link_ifname, link_stats, set_offloads,
    set_up,
};

/// One DF ping answered out of up to three (a first ARP on a loaded
/// 2-core machine can take longer than one ping's wait).
fn ping(ns: &Netns, to: &str, size: u32) -> bool {
    command_in(ns, "ping")
        .args([
            "-c",
            "3",
            "-i",
            "0.2",
            "-W",
            "2",
            "-M",
            "do",
            "-s",
            &size.to_string(),
            to,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[test]
fn two_hosts_talk_through_a_switch_namespace() {
    require_root_and(&["ip", "ping", "ethtool"], &["/proc/self/ns/net"]);
    let t = TestRun::new("root_world_bridge");
    {
        let sw = Netns::create(&Netns::name_for(&t.run, "switch"), &t.ledger).unwrap();
        let h1 = Netns::create(&Netns::name_for(&t.run, "h1"), &t.ledger).unwrap();
        let h2 = Netns::create(&Netns::name_for(&t.run, "h2"), &t.ledger).unwrap();
        let br = Bridge::create(&sw, "br0", &t.ledger).unwrap();
        let mut links = Vec::new();
        for (i, (h, ip)) in [(&h1, "10.254.7.1/24"), (&h2, "10.254.7.2/24")]
            .into_iter()
            .enumerate()
        {
            let (host_if, port_if) = (
                link_ifname(&t.run, i as u8, 'a'),
                link_ifname(&t.run, i as u8, 'b'),
            );
            links.push(
                br.connect(&sw, h, &host_if, &port_if, None, &t.ledger)
                    .unwrap(),
            );
            add_address(h, &host_if, ip).unwrap();
            set_up(h, &host_if).unwrap();
        }
        let (if1, port2) = (link_ifname(&t.run, 0, 'a'), link_ifname(&t.run, 1, 'b'));
        // The ports are enslaved to the bridge in the switch namespace.
        let shown = command_in(&sw, "ip")
            .args(["-o", "link", "show", "master", "br0"])
            .output()
            .unwrap();
        let shown = String::from_utf8_lossy(&shown.stdout);
        assert_eq!(shown.lines().count(), 2, "{shown}");

        let before = link_stats(&sw, &port2).unwrap();
        assert!(ping(&h1, "10.254.7.2", 56), "no path through the bridge");
        let after = link_stats(&sw, &port2).unwrap();
        assert!(
            after.tx_packets > before.tx_packets,
            "the switch port toward h2 carried nothing: {before:?} → {after:?}"
        );

        // net.mtu: 1280 on h1's link refuses a 1400-byte DF ping, restore heals.
        assert!(ping(&h1, "10.254.7.2", 1400));
        let change = MtuChange::apply(&h1, &if1, 1280).unwrap();
        assert_eq!(change.original(), 1500);
        assert_eq!(link_stats(&h1, &if1).unwrap().mtu, 1280);
        assert!(!ping(&h1, "10.254.7.2", 1400), "1400 bytes passed mtu 1280");
        assert!(ping(&h1, "10.254.7.2", 1200));
        change.restore().unwrap();
        assert_eq!(link_stats(&h1, &if1).unwrap().mtu, 1500);
        assert!(ping(&h1, "10.254.7.2", 1400));
        // Drop restores too.
        drop(MtuChange::apply(&h1, &if1, 1300).unwrap());
        assert_eq!(link_stats(&h1, &if1).unwrap().mtu, 1500);

        set_offloads(&h1, &if1, false).unwrap();
        let k = command_in(&h1, "ethtool")
            .args(["-k", &if1])
            .output()
            .unwrap();
        let k = String::from_utf8_lossy(&k.stdout);
        for feature in [
            "tcp-segmentation-offload: off",
            "generic-segmentation-offload: off",
            "generic-receive-offload: off",
            "tx-vlan-offload: off",
            "rx-vlan-offload: off",
        ] {
            assert!(k.contains(feature), "{feature} not set:\n{k}");
        }
        assert!(ping(&h1, "10.254.7.2", 1400), "offloads off broke the link");
        drop(links);
        br.delete().unwrap();
    }
    assert!(netns_entries_of(&t.run).is_empty());
    assert_eq!(t.ledger.open_entries(), 0);
    assert!(t.ledger.finish().unwrap());
}
