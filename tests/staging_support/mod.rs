//! A staging client and its "remote" server, for tests of `run --target
//! staging`: two namespaces of the test's own on a veth, a TCP listener on
//! the server, and stackquake run inside the client namespace (`ip netns
//! exec`), as an operator runs it on a real client, so the run's table
//! never reaches this host's own namespace.

#![allow(dead_code)]

use std::net::IpAddr;
use std::process::{Child, Command, Output, Stdio};

use super::root_world_support::TestRun;
use stackquake::net::{
    Netns, VethPair, add_address, command_in, link_ifname, set_up, tcp_listener_in,
};
use stackquake::report::RunReport;

/// The client namespace, and the server's namespace with a listener on
/// `10.99.<subnet>.2:<port>`.
pub struct Staging {
    pub client: Netns,
    pub server: Netns,
    _veth: VethPair,
    pub server_ip: IpAddr,
}

pub fn staging(t: &TestRun, subnet: u8, port: u16) -> Staging {
    let client = Netns::create(&Netns::name_for(&t.run, "client"), &t.ledger).unwrap();
    let server = Netns::create(&Netns::name_for(&t.run, "filer"), &t.ledger).unwrap();
    let (ifa, ifb) = (link_ifname(&t.run, 0, 'a'), link_ifname(&t.run, 0, 'b'));
    let veth = VethPair::create((&client, &ifa), (&server, &ifb), None, &t.ledger).unwrap();
    add_address(&client, &ifa, &format!("10.99.{subnet}.1/24")).unwrap();
    add_address(&server, &ifb, &format!("10.99.{subnet}.2/24")).unwrap();
    for (ns, ifname) in [(&client, &ifa), (&server, &ifb)] {
        ns.set_loopback_up().unwrap();
        set_up(ns, ifname).unwrap();
    }
    let listener = tcp_listener_in(&server, ([0, 0, 0, 0], port).into()).unwrap();
    std::thread::spawn(move || for _ in listener.incoming() {});
    Staging {
        client,
        server,
        _veth: veth,
        server_ip: format!("10.99.{subnet}.2").parse().unwrap(),
    }
}

/// `stackquake run --target staging` inside the client namespace.
pub fn run_in(client: &Netns, args: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", client.name()])
        .arg(env!("CARGO_BIN_EXE_stackquake"))
        .args(["run", "--target", "staging"])
        .args(args)
        .output()
        .unwrap()
}

/// Starts the rehearsal `yaml` on the client, for a test that kills it:
/// `ip netns exec` execs stackquake, so the child is stackquake itself.
pub fn spawn_rehearsal(t: &TestRun, s: &Staging, yaml: &str) -> Child {
    let file = t.scratch("rehearsal.yaml");
    std::fs::write(&file, yaml).unwrap();
    let allow = s.server_ip.to_string();
    Command::new("ip")
        .args(["netns", "exec", s.client.name()])
        .arg(env!("CARGO_BIN_EXE_stackquake"))
        .args(["run", "--target", "staging", "--allow-external", &allow])
        .arg("--output")
        .arg(t.scratch("out"))
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// A finished rehearsal: how stackquake exited, all it said, its report.
pub struct Rehearsed {
    pub out: Output,
    pub said: String,
    pub report: RunReport,
}

/// Runs the rehearsal `yaml` on the client, the server's address allowed.
pub fn rehearse(t: &TestRun, s: &Staging, yaml: &str) -> Rehearsed {
    let file = t.scratch("rehearsal.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out_dir = t.scratch("out");
    let allow = s.server_ip.to_string();
    let out = run_in(
        &s.client,
        &[
            "--allow-external",
            &allow,
            "--output",
            out_dir.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report = RunReport::read(&out_dir).unwrap_or_else(|e| panic!("{e}: {said}"));
    Rehearsed { out, said, report }
}

pub fn tables_in(ns: &Netns) -> String {
    let out = command_in(ns, "nft")
        .args(["list", "tables"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
