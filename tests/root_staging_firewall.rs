//! The staging rehearsal's expiring firewall between two namespaces on this
//! host: a cut held by a process that is SIGKILLed mid-block ends by itself
//! within its TTL (traffic flows again, no `cleanup` run), heals one by one
//! or all at once, rejects promptly, and leaves every table and chain that
//! is not its own exactly as it found them.

mod root_world_support;

use std::io::{BufRead, BufReader, ErrorKind};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use root_world_support::{TestRun, require_root_and};
use stackquake::ledger::{Ledger, RunId};
use stackquake::net::{
    Action, Delayer, ExpiringFirewall, Match, Netns, Protocol, Rule, VethPair, add_address,
    command_in, link_ifname, set_up, tcp_listener_in,
};

const TOOLS: &[&str] = &["ip", "nft"];

/// A staging client and a "remote" server on a veth, the server listening.
struct Pair {
    client: Netns,
    _server: Netns,
    server_ip: IpAddr,
    _veth: VethPair,
}

fn pair(t: &TestRun, subnet: u8, port: u16) -> Pair {
    let client = Netns::create(&Netns::name_for(&t.run, "client"), &t.ledger).unwrap();
    let server = Netns::create(&Netns::name_for(&t.run, "server"), &t.ledger).unwrap();
    let (ifa, ifb) = (link_ifname(&t.run, 0, 'a'), link_ifname(&t.run, 0, 'b'));
    let veth = VethPair::create((&client, &ifa), (&server, &ifb), None, &t.ledger).unwrap();
    add_address(&client, &ifa, &format!("10.252.{subnet}.1/24")).unwrap();
    add_address(&server, &ifb, &format!("10.252.{subnet}.2/24")).unwrap();
    add_address(&server, &ifb, &format!("10.252.{subnet}.3/24")).unwrap();
    for (ns, ifname) in [(&client, &ifa), (&server, &ifb)] {
        ns.set_loopback_up().unwrap();
        set_up(ns, ifname).unwrap();
    }
    // One listener on every address of the server: .2 is the named
    // remote, .3 a neighbour the rehearsal does not name.
    let listener = tcp_listener_in(&server, ([0, 0, 0, 0], port).into()).unwrap();
    std::thread::spawn(move || for _ in listener.incoming() {});
    Pair {
        client,
        _server: server,
        server_ip: format!("10.252.{subnet}.2").parse().unwrap(),
        _veth: veth,
    }
}

fn connect(ns: &Netns, to: SocketAddr, timeout: Duration) -> std::io::Result<()> {
    ns.run(|| TcpStream::connect_timeout(&to, timeout).map(drop))
}

fn nft_in(ns: &Netns, args: &[&str]) -> String {
    let out = command_in(ns, "nft").args(args).output().unwrap();
    assert!(out.status.success(), "nft {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn toward(addr: IpAddr, port: Option<u16>, action: Action) -> Rule {
    Rule {
        matching: Match::Toward {
            addr,
            protocol: port.map(|_| Protocol::Tcp),
            port,
            min_size: None,
            share: None,
        },
        action,
    }
}

const CHILD_ENV: &str = "SQ_STAGING_FW_CHILD";
const TTL: Duration = Duration::from_secs(4);

/// Runs inside the client namespace (started with `ip netns exec`), as a
/// staging run does on a real client: the table goes into the namespace
/// the process is in.
#[test]
#[ignore = "entry point of the child process of sigkilled_cut_expires_within_its_ttl"]
fn expiring_cut_child() {
    let spec = std::env::var(CHILD_ENV).expect("only run by the SIGKILL test");
    let mut parts = spec.split('|');
    let (root, run, remote) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let run = RunId::parse(run).unwrap();
    let ledger = Ledger::create(Path::new(root), &run, Path::new("staging.yaml")).unwrap();
    let fw = ExpiringFirewall::create(None, &run, &ledger, &[]).unwrap();
    fw.cut(&toward(remote.parse().unwrap(), None, Action::Drop), TTL)
        .unwrap();
    println!("READY");
    std::mem::forget(fw);
    std::thread::sleep(Duration::from_secs(600));
}

#[test]
fn sigkilled_cut_expires_within_its_ttl() {
    require_root_and(TOOLS, &["/proc/self/ns/net"]);
    let t = TestRun::new("root_staging_firewall");
    let p = pair(&t, 1, 7061);
    let server: SocketAddr = (p.server_ip, 7061).into();
    connect(&p.client, server, Duration::from_secs(2)).unwrap();

    let child_run = RunId::generate();
    let mut child = Command::new("ip")
        .args(["netns", "exec", p.client.name()])
        .arg(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "expiring_cut_child", "--nocapture"])
        .env(
            CHILD_ENV,
            format!("{}|{child_run}|{}", t.root.path().display(), p.server_ip),
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("READY") {
                let _ = tx.send(Instant::now());
                return;
            }
        }
    });
    let cut_at = rx.recv_timeout(Duration::from_secs(60));
    // SIGKILL: no drop, no heal, no teardown.
    child.kill().unwrap();
    child.wait().unwrap();
    let cut_at = cut_at.expect("child never cut the link");
    let table = ExpiringFirewall::table_name(&child_run);

    let e = connect(&p.client, server, Duration::from_millis(500)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
    let listed = nft_in(&p.client, &["list", "table", "inet", &table]);
    assert!(
        listed.contains(&format!("{} timeout 4s", p.server_ip)),
        "{listed}"
    );

    // Within the TTL (plus the kernel's garbage collection slack) the
    // element is gone and traffic flows, with nobody left to heal it.
    let deadline = cut_at + TTL + Duration::from_secs(3);
    let flowing = loop {
        if connect(&p.client, server, Duration::from_millis(300)).is_ok() {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
    };
    assert!(flowing, "traffic still blocked past the cut's TTL");
    assert!(
        cut_at.elapsed() >= TTL - Duration::from_millis(500),
        "the cut ended before its TTL: something else healed it"
    );
    let json = nft_in(&p.client, &["-j", "list", "table", "inet", &table]);
    let elements = stackquake::net::parse_expiring_elements(&json).unwrap();
    assert!(elements.is_empty(), "{elements:?}");
    // The inert table stays until `cleanup` removes it: run from the
    // client's namespace, as an operator would on the client, it replays
    // the dead run's ledger entry and deletes the table there.
    assert!(nft_in(&p.client, &["list", "tables"]).contains(&table));
    let root = t.root.path().to_path_buf();
    let report = p.client.run(move || stackquake::cleanup::cleanup(&root));
    let removed = report.removed.join("\n");
    assert!(removed.contains(&table), "{removed}");
    assert!(!nft_in(&p.client, &["list", "tables"]).contains(&table));
    drop(p);
}

#[test]
fn heals_one_cut_all_cuts_and_rejects_promptly() {
    require_root_and(TOOLS, &["/proc/self/ns/net"]);
    let t = TestRun::new("root_staging_firewall");
    let p = pair(&t, 2, 7062);
    let server: SocketAddr = (p.server_ip, 7062).into();
    let fw = ExpiringFirewall::create(Some(&p.client), &t.run, &t.ledger, &[]).unwrap();
    let long = Duration::from_secs(120);

    let port_cut = toward(p.server_ip, Some(7062), Action::Drop);
    fw.cut(&port_cut, long).unwrap();
    let e = connect(&p.client, server, Duration::from_millis(500)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut, "{e}");
    let els = fw.elements().unwrap();
    assert_eq!(els.len(), 1, "{els:?}");
    assert_eq!(els[0].set, "drop_port4");
    assert_eq!(els[0].key, format!("{} . tcp . 7062", p.server_ip));
    assert_eq!(els[0].timeout, long);
    assert!(fw.heal(&port_cut).unwrap());
    assert!(!fw.heal(&port_cut).unwrap(), "a second heal found the cut");
    connect(&p.client, server, Duration::from_secs(2)).unwrap();

    let reject = toward(p.server_ip, None, Action::Reject);
    fw.cut(&reject, long).unwrap();
    let e = connect(&p.client, server, Duration::from_secs(5)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
    fw.cut(&toward(p.server_ip, None, Action::Drop), long)
        .unwrap();
    assert_eq!(fw.elements().unwrap().len(), 2);
    fw.heal_all().unwrap();
    assert!(fw.elements().unwrap().is_empty());
    connect(&p.client, server, Duration::from_secs(2)).unwrap();

    // Something other than a cut toward one remote is refused.
    let between = Rule::block_between(p.server_ip, "10.252.2.1".parse().unwrap());
    assert!(fw.cut(&between, long).is_err());
    fw.delete().unwrap();
    assert!(!nft_in(&p.client, &["list", "tables"]).contains("ttl"));
    drop(p);
    assert_eq!(t.ledger.open_entries(), 0);
}

#[test]
fn foreign_tables_chains_and_sets_are_never_touched() {
    require_root_and(TOOLS, &["/proc/self/ns/net"]);
    let t = TestRun::new("root_staging_firewall");
    let p = pair(&t, 3, 7063);
    let neighbour: SocketAddr = ("10.252.3.3".parse::<IpAddr>().unwrap(), 7063).into();
    // Someone else's tables: a set with a timeout element, base chains on
    // the same hooks as ours, a regular chain and a jump to it.
    let theirs = r#"table inet theirs {
    set watched { type ipv4_addr; flags timeout; elements = { 10.99.0.7 timeout 1h }; }
    chain input {
        type filter hook input priority 0; policy accept;
        ip saddr @watched counter drop
        jump audit
    }
    chain audit {
        ip saddr 10.99.0.1 counter drop
    }
    chain output {
        type filter hook output priority -10; policy accept;
        ip daddr 10.99.0.2 counter drop
    }
}
table ip filter {
    chain INPUT {
        type filter hook input priority 0; policy accept;
        ip saddr 10.99.0.3 drop
    }
}
"#;
    let mut nft = command_in(&p.client, "nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut nft.stdin.take().unwrap(), theirs.as_bytes()).unwrap();
    assert!(nft.wait().unwrap().success());
    // Their rules without counters and expiry, which move on their own.
    let stable = |ns: &Netns| {
        nft_in(ns, &["-s", "list", "table", "inet", "theirs"])
            .lines()
            .filter(|l| !l.contains("expires"))
            .collect::<Vec<_>>()
            .join("\n")
            + &nft_in(ns, &["-s", "list", "table", "ip", "filter"])
    };
    let before_tables = nft_in(&p.client, &["list", "tables"]);
    let before = stable(&p.client);
    assert!(before.contains("10.99.0.7"), "{before}");

    let fw = ExpiringFirewall::create(Some(&p.client), &t.run, &t.ledger, &[]).unwrap();
    let server_ip = p.server_ip;
    fw.cut(
        &toward(server_ip, None, Action::Drop),
        Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!(stable(&p.client), before);
    // The neighbour the rehearsal does not name is still reachable.
    connect(&p.client, neighbour, Duration::from_secs(2)).unwrap();
    fw.heal_all().unwrap();
    fw.cut(
        &toward(server_ip, Some(7063), Action::Reject),
        Duration::from_secs(60),
    )
    .unwrap();
    fw.delete().unwrap();
    assert_eq!(stable(&p.client), before);
    assert_eq!(nft_in(&p.client, &["list", "tables"]), before_tables);

    // A table already named like ours is refused, not adopted or deleted.
    let ours = ExpiringFirewall::table_name(&t.run);
    nft_in(&p.client, &["add", "table", "inet", &ours]);
    assert!(ExpiringFirewall::create(Some(&p.client), &t.run, &t.ledger, &[]).is_err());
    assert!(nft_in(&p.client, &["list", "tables"]).contains(&ours));
    drop(p);
    assert_eq!(t.ledger.open_entries(), 0);
}

/// The round-trip time of one ping from `ns` to `to`, in milliseconds.
fn ping_ms(ns: &Netns, to: IpAddr) -> f64 {
    let out = command_in(ns, "ping")
        .args(["-n", "-c", "1", "-W", "3"])
        .arg(to.to_string())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.split("time=")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no reply: {text}"))
}

// The userspace half of a staging delay, on this host's kernel: the test
// queues what the client sends to the server with iptables' NFQUEUE
// (--queue-bypass, as the run's nft rule says `bypass`; this kernel has
// no nft queue expression). A delayer holds each packet 300 ms; once it
// is gone, nobody listens and packets pass at once instead of vanishing.
#[test]
fn a_delayer_holds_each_queued_packet_and_a_gone_one_is_bypassed() {
    require_root_and(&["ip", "iptables", "ping"], &["/proc/self/ns/net"]);
    let t = TestRun::new("root_staging_firewall");
    let p = pair(&t, 4, 7064);
    let queue = 4711;
    let out = command_in(&p.client, "iptables")
        .args(["-A", "OUTPUT", "-d"])
        .arg(p.server_ip.to_string())
        .args(["-j", "NFQUEUE", "--queue-num", "4711", "--queue-bypass"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let before = ping_ms(&p.client, p.server_ip);
    let path = format!("/run/netns/{}", p.client.name());
    let delayer = Delayer::start(Some(path.into()), queue, Duration::from_millis(300)).unwrap();
    let held: Vec<f64> = (0..3).map(|_| ping_ms(&p.client, p.server_ip)).collect();
    drop(delayer);
    let after = ping_ms(&p.client, p.server_ip);
    for ms in &held {
        assert!(
            *ms >= 300.0 && *ms < 1000.0,
            "{held:?} (before {before} ms)"
        );
    }
    assert!(after < 100.0, "{after} ms once the delayer is gone");
    // The queue is free again: a second delayer may bind it.
    let again = Delayer::start(
        Some(format!("/run/netns/{}", p.client.name()).into()),
        queue,
        Duration::from_millis(1),
    );
    assert!(again.is_ok(), "{:?}", again.err());
}
