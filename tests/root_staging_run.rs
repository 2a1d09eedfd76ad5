//! `stackquake run --target staging` end to end on this host, with real
//! namespaces and nftables: the test makes a "staging server" namespace
//! with a TCP listener and a "client" namespace joined by a veth, and runs
//! stackquake inside the client namespace (`ip netns exec`), as an
//! operator would on a real client, so the run's table never reaches the
//! host's own namespace. A 2 s `net.block` toward the server must stop a
//! TCP connect while it lasts and let it through after, the table must be
//! gone after the run, and nothing of the run may be left. Without
//! `--allow-external` naming the server, nothing runs and nothing changes.
//! A SIGKILLed run's cut still ends by its timeout.

mod root_world_support;
mod staging_support;

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use root_world_support::{TestRun, leftovers, require_root_and};
use stackquake::journal::Event;
use stackquake::net::{Netns, command_in};
use stackquake::nfs::daemon_ns::{DaemonNs, DaemonProcess};
use stackquake::report::Verdict;
use staging_support::{Rehearsed, rehearse, run_in, spawn_rehearsal, staging, tables_in};

const TOOLS: &[&str] = &["ip", "nft", "bash", "timeout"];

/// A rehearsal against `server:port` with no mounts: TCP connects before,
/// during and after a 2 s block, each given 1 s (`timeout` exits 124).
/// The probe during the cut also lists the element the run added.
fn rehearsal(server: IpAddr, port: u16) -> String {
    let probe = format!("timeout 1 bash -c 'exec 3<>/dev/tcp/{server}/{port}'");
    format!(
        r#"schema_version: 1
id: staging-run-cut
title: A timed cut toward a staging server, from the namespace stackquake runs in
requires: {{ target: [staging], tools: [nft, bash, timeout] }}
timeout: 60s
hosts:
  client: {{}}
  filer: {{ addr: {server}/24 }}
nfs_servers:
  fs1: {{ host: filer, kind: external, exports: [{{ path: /export }}] }}
steps:
  - id: before
    exec: {{ host: client, command: [bash, -c, "{probe}"] }}
    timeout: 5s
  - id: cut
    fault: {{ net.block: {{ host: client, toward: filer }} }}
    for: 2s
  - id: during
    after: before
    offset: 300ms
    exec:
      host: client
      command: [bash, -c, "nft list set inet $(nft list tables | awk '/_ttl$/ {{print $3}}') drop_addr4; {probe}"]
    timeout: 5s
  - id: after
    after: cut
    exec: {{ host: client, command: [bash, -c, "{probe}"] }}
    timeout: 5s
expect:
  - exit_code: {{ step: before, code: 0 }}
  - exit_code: {{ step: during, code: 124 }}
  - exit_code: {{ step: after, code: 0 }}
"#
    )
}

/// What the staging run `run` left behind, leaving out the namespaces
/// this test made itself for client and server: they carry the test's own
/// run id, and two run ids drawn in one second are equal once in 1296
/// (six digits of seconds, two random), which once listed them here.
fn left_by(run: &str, t: &TestRun) -> Vec<String> {
    let mine = format!("sq-{}-", t.run);
    leftovers(run)
        .into_iter()
        .filter(|l| !l.contains(&mine))
        .collect()
}

fn connect(ns: &Netns, to: SocketAddr) -> std::io::Result<()> {
    ns.run(|| TcpStream::connect_timeout(&to, Duration::from_secs(2)).map(drop))
}

#[test]
fn a_timed_cut_blocks_the_server_while_it_lasts_and_leaves_nothing() {
    require_root_and(TOOLS, &["/proc/self/ns/net"]);
    let t = TestRun::new("root_staging_run");
    let port = 7081;
    let s = staging(&t, 71, port);
    let Rehearsed { out, said, report } = rehearse(&t, &s, &rehearsal(s.server_ip, port));
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert_eq!(report.target, "staging");
    let r = &report.results[0];
    assert_eq!(r.verdict, Verdict::Pass, "{:?}: {said}", r.reason);

    let events = &r.journal.events;
    // The cut was a set element with the step's `for:` as its timeout.
    let during = events
        .iter()
        .find_map(|e| match e {
            Event::Exec { step, output, .. } if step == "during" => Some(output.clone()),
            _ => None,
        })
        .expect("the during probe ran");
    assert!(
        during.contains(&format!("{} timeout 2s", s.server_ip)),
        "{during}"
    );
    // It fired, and lasted its 2 s (healed on time, not by the kernel
    // long after, nor early).
    let injected = events.iter().find_map(|e| match e {
        Event::FaultInjected { step, t_ns, .. } if step == "cut" => Some(*t_ns),
        _ => None,
    });
    let (healed, matched, error) = events
        .iter()
        .find_map(|e| match e {
            Event::FaultHealed {
                step,
                t_ns,
                matched,
                error,
                ..
            } if step == "cut" => Some((*t_ns, *matched, error.clone())),
            _ => None,
        })
        .expect("the cut was healed");
    assert_eq!(error, None);
    assert!(matched.is_some_and(|n| n > 0), "{matched:?}");
    let lasted = Duration::from_nanos(healed - injected.expect("the cut went in"));
    assert!(
        lasted >= Duration::from_millis(1900) && lasted < Duration::from_secs(3),
        "{lasted:?}"
    );

    // Nothing left: no table in the client's namespace (where the run
    // made it) nor anywhere else, no process, mount or scratch directory.
    let tables = tables_in(&s.client);
    assert!(!tables.contains("_ttl"), "{tables}");
    let engine_run = &r.journal.run_id;
    assert_eq!(left_by(engine_run, &t), Vec::<String>::new());
    assert!(
        !Path::new(stackquake::ledger::DEFAULT_ROOT)
            .join("ledger")
            .join(format!("{engine_run}.jsonl"))
            .exists(),
        "the run's ledger still has open entries"
    );
    connect(&s.client, (s.server_ip, port).into()).unwrap();
}

#[test]
fn without_allow_external_nothing_runs_and_nothing_changes() {
    require_root_and(TOOLS, &["/proc/self/ns/net"]);
    let t = TestRun::new("root_staging_run");
    let port = 7082;
    let s = staging(&t, 72, port);
    let file = t.scratch("rehearsal.yaml");
    std::fs::write(&file, rehearsal(s.server_ip, port)).unwrap();
    let before = tables_in(&s.client);
    for allow in [None, Some("10.99.72.9")] {
        let out_dir = t.scratch("out");
        let mut args = Vec::new();
        if let Some(a) = allow {
            args.extend(["--allow-external", a]);
        }
        args.extend([
            "--output",
            out_dir.to_str().unwrap(),
            file.to_str().unwrap(),
        ]);
        let out = run_in(&s.client, &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains(
                "refused: 10.99.72.2 not named by --allow-external; \
                 a rehearsal touches no address the operator did not name"
            ),
            "{err}"
        );
        assert!(!out_dir.exists(), "a refused run wrote reports");
        assert_eq!(tables_in(&s.client), before);
    }
    connect(&s.client, (s.server_ip, port).into()).unwrap();
}

/// A rehearsal whose 3 s cut is followed by a long wait: the test kills
/// stackquake in between.
fn killed_rehearsal(server: IpAddr) -> String {
    format!(
        r#"schema_version: 1
id: staging-run-killed
title: A timed cut outlives the stackquake that made it by its timeout only
requires: {{ target: [staging], tools: [nft] }}
timeout: 120s
hosts:
  client: {{}}
  filer: {{ addr: {server}/24 }}
nfs_servers:
  fs1: {{ host: filer, kind: external, exports: [{{ path: /export }}] }}
steps:
  - id: cut
    fault: {{ net.block: {{ host: client, toward: filer }} }}
    for: 3s
  - {{ id: linger, wait: 60s }}
"#
    )
}

// The point of the expiring firewall, through the whole run: a SIGKILLed
// `run --target staging` heals nothing, yet its cut ends within its `for:`
// and only an inert table is left, which `cleanup --run` removes from the
// run's ledger.
#[test]
fn a_sigkilled_staging_run_leaves_a_cut_that_ends_by_itself() {
    require_root_and(TOOLS, &["/proc/self/ns/net"]);
    let t = TestRun::new("root_staging_run");
    let port = 7083;
    let s = staging(&t, 73, port);
    let server: SocketAddr = (s.server_ip, port).into();
    // `ip netns exec` execs stackquake: the child is stackquake itself.
    let mut child = spawn_rehearsal(&t, &s, &killed_rehearsal(s.server_ip));
    let element = format!("{} timeout 3s", s.server_ip);
    let deadline = Instant::now() + Duration::from_secs(30);
    let (table, cut_at) = loop {
        let ruleset = command_in(&s.client, "nft")
            .args(["list", "ruleset"])
            .output()
            .unwrap();
        let ruleset = String::from_utf8_lossy(&ruleset.stdout).into_owned();
        if ruleset.contains(&element) {
            let table = ruleset
                .lines()
                .find_map(|l| l.strip_prefix("table inet ")?.strip_suffix(" {"))
                .expect("the run's table")
                .to_string();
            break (table, Instant::now());
        }
        assert!(Instant::now() < deadline, "the run never cut: {ruleset}");
        std::thread::sleep(Duration::from_millis(50));
    };
    child.kill().unwrap();
    child.wait().unwrap();

    let e = s
        .client
        .run(|| TcpStream::connect_timeout(&server, Duration::from_millis(500)))
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
    let flowing = loop {
        if connect(&s.client, server).is_ok() {
            break true;
        }
        if cut_at.elapsed() > Duration::from_secs(3 + 3) {
            break false;
        }
    };
    assert!(flowing, "traffic still blocked past the cut's 3 s");
    assert!(
        cut_at.elapsed() >= Duration::from_millis(2500),
        "the cut ended before its 3 s: something else healed it"
    );
    assert!(tables_in(&s.client).contains(&table));

    let run = table
        .strip_prefix("sq_")
        .and_then(|r| r.strip_suffix("_ttl"))
        .expect("sq_<run>_ttl");
    let out = Command::new("ip")
        .args(["netns", "exec", s.client.name()])
        .arg(env!("CARGO_BIN_EXE_stackquake"))
        .args(["cleanup", "--run", run])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(!tables_in(&s.client).contains(&table));
    assert_eq!(left_by(run, &t), Vec::<String>::new());
    assert!(
        !Path::new(stackquake::ledger::DEFAULT_ROOT)
            .join("ledger")
            .join(format!("{run}.jsonl"))
            .exists(),
        "cleanup left the run's ledger"
    );
}

/// A rehearsal whose abort probe needs the server to answer: a 20 s cut
/// makes it fail within about a second.
fn guarded_rehearsal(server: IpAddr, port: u16) -> String {
    format!(
        r#"schema_version: 1
id: staging-run-guarded
title: A probe that needs the server stops the cut that broke it
requires: {{ target: [staging], tools: [nft, bash, timeout] }}
timeout: 60s
hosts:
  client: {{}}
  filer: {{ addr: {server}/24 }}
nfs_servers:
  fs1: {{ host: filer, kind: external, exports: [{{ path: /export }}] }}
steps:
  - {{ id: steady, wait: 1s }}
  - id: cut
    fault: {{ net.block: {{ host: client, toward: filer }} }}
    for: 20s
abort:
  - id: server-answers
    exec: {{ host: client, command: [timeout, '1', bash, -c, 'exec 3<>/dev/tcp/{server}/{port}'] }}
    every: 300ms
    within: 3s
"#
    )
}

// The abort rail on a real client: the probe fails under the cut, the
// run deletes the cut's element at once (not at its 20 s timeout), and
// ends ABORTED with exit 3, leaving nothing.
#[test]
fn a_failing_abort_probe_ends_the_cut_at_once_and_the_run_aborted() {
    require_root_and(TOOLS, &["/proc/self/ns/net"]);
    let t = TestRun::new("root_staging_run");
    let port = 7089;
    let s = staging(&t, 79, port);
    let started = Instant::now();
    let Rehearsed { out, said, report } = rehearse(&t, &s, &guarded_rehearsal(s.server_ip, port));
    let took = started.elapsed();
    let r = &report.results[0];
    assert_eq!(r.verdict, Verdict::Aborted, "{:?}: {said}", r.reason);
    assert_eq!(out.status.code(), Some(3), "{said}");
    let reason = r.reason.as_deref().unwrap();
    assert!(
        reason.starts_with("abort probe server-answers failed: `timeout 1 bash -c")
            && reason.contains("exited 124"),
        "{reason}"
    );
    let events = &r.journal.events;
    let failed_at = events
        .iter()
        .find_map(|e| match e {
            Event::ProbeFailed { t_ns, .. } => Some(*t_ns),
            _ => None,
        })
        .expect("the probe failed");
    let (injected, healed) = events.iter().fold((None, None), |(i, h), e| match e {
        Event::FaultInjected { step, t_ns, .. } if step == "cut" => (Some(*t_ns), h),
        Event::FaultHealed {
            step, t_ns, error, ..
        } if step == "cut" => {
            assert_eq!(error, &None);
            (i, Some(*t_ns))
        }
        _ => (i, h),
    });
    let (injected, healed) = (injected.unwrap(), healed.expect("the cut was healed"));
    assert!(injected < failed_at && failed_at <= healed, "{events:?}");
    // Healed by the abort, long before its 20 s: the run did not wait it out.
    assert!(
        Duration::from_nanos(healed - injected) < Duration::from_secs(10),
        "healed {:?} after the cut",
        Duration::from_nanos(healed - injected)
    );
    assert!(took < Duration::from_secs(20), "the run took {took:?}");
    assert!(!tables_in(&s.client).contains("_ttl"));
    assert_eq!(left_by(&r.journal.run_id, &t), Vec::<String>::new());
    connect(&s.client, (s.server_ip, port).into()).unwrap();
}

/// A rehearsal with a path that drops what exceeds 1000 bytes, then one
/// that loses half the packets each way; pings measure both from inside.
fn degraded_rehearsal(server: IpAddr) -> String {
    let ping =
        |size: u32, count: u32| format!("ping -n -q -c {count} -i 0.05 -W 1 -s {size} {server}");
    format!(
        r#"schema_version: 1
id: staging-run-degraded
title: A path toward the staging server that drops big packets, then loses half
requires: {{ target: [staging], tools: [nft, bash, ping] }}
timeout: 90s
hosts:
  client: {{}}
  filer: {{ addr: {server}/24 }}
nfs_servers:
  fs1: {{ host: filer, kind: external, exports: [{{ path: /export }}] }}
steps:
  - id: sized
    parallel:
      - id: mtu
        fault: {{ net.block: {{ host: client, toward: filer, min_size: 1001 }} }}
        for: 6s
      - id: small-and-big
        offset: 300ms
        exec: {{ host: client, command: [bash, -c, "{small} && ! {big}"] }}
        timeout: 5s
  - id: degraded
    parallel:
      - id: lossy
        fault: {{ net.block: {{ host: client, toward: filer, percent: 50 }} }}
        for: 15s
      - id: sampled
        offset: 300ms
        exec: {{ host: client, command: [bash, -c, "{sample}; true"] }}
        timeout: 14s
expect:
  - exit_code: {{ step: small-and-big, code: 0 }}
"#,
        small = ping(100, 2),
        big = ping(1200, 2),
        sample = ping(100, 100),
    )
}

// The sized and lossy cuts a staging client can make, both self-expiring
// elements: while the first lasts, small pings pass and 1200-byte ones
// vanish (a path MTU black hole, as a VLAN stacked on a VLAN made); while
// the second lasts, about three in four round trips fail (half of the
// requests, then half of the replies).
#[test]
fn sized_and_lossy_cuts_degrade_the_path_while_they_last() {
    require_root_and(&["ip", "nft", "bash", "ping"], &["/proc/self/ns/net"]);
    let t = TestRun::new("root_staging_run");
    let s = staging(&t, 78, 7088);
    let Rehearsed { said, report, .. } = rehearse(&t, &s, &degraded_rehearsal(s.server_ip));
    let r = &report.results[0];
    assert_eq!(r.verdict, Verdict::Pass, "{:?}: {said}", r.reason);
    let sampled = r
        .journal
        .events
        .iter()
        .find_map(|e| match e {
            Event::Exec { step, output, .. } if step == "sampled" => Some(output.clone()),
            _ => None,
        })
        .expect("the lossy path was sampled");
    let loss: f64 = sampled
        .split_whitespace()
        .find_map(|w| w.strip_suffix('%')?.parse().ok())
        .unwrap_or_else(|| panic!("no loss in {sampled}"));
    // 75% expected; 100 round trips put 50..95 about six deviations out.
    assert!((50.0..=95.0).contains(&loss), "{loss}% lost: {sampled}");
    for step in ["mtu", "lossy"] {
        let matched = r.journal.events.iter().find_map(|e| match e {
            Event::FaultHealed {
                step: s, matched, ..
            } if s == step => Some(*matched),
            _ => None,
        });
        assert!(
            matched.flatten().is_some_and(|n| n > 0),
            "{step}: {matched:?}"
        );
    }
    assert!(!tables_in(&s.client).contains("_ttl"));
    assert_eq!(left_by(&r.journal.run_id, &t), Vec::<String>::new());
}

/// What the tests of the client's own statd run.
const STATD_TOOLS: &[&str] = &[
    "ip",
    "bash",
    "timeout",
    "rpcinfo",
    "rpcbind",
    "rpc.statd",
    "nsenter",
];

/// The client's own rpcbind and rpc.statd, as a real client runs them:
/// started by the test in the client namespace (with a mount namespace of
/// their own for /run and /var/lib/nfs), nothing of the run's.
fn own_daemons(t: &TestRun, client: &Netns) -> (DaemonNs, DaemonProcess) {
    let dns = DaemonNs::start(client, &format!("sq-own-{}", t.run), Some(&t.ledger)).unwrap();
    // The original statd is killed by the run; rpcbind lives on with the
    // test (dropping it would kill it).
    let rpcbind = dns.start_rpcbind().unwrap();
    std::mem::forget(dns.start_statd().unwrap());
    (dns, rpcbind)
}

/// Pids of `program` in network namespace `ns`.
fn pids_of(program: &str, ns: &Netns) -> Vec<u32> {
    let out = Command::new("ip")
        .args(["netns", "pids", ns.name()])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm"))
                .is_ok_and(|c| c.trim_end() == program)
        })
        .collect()
}

/// Whether the statd of the client namespace answers an RPC NULL call.
fn statd_answers(client: &Netns) -> bool {
    command_in(client, "timeout")
        .args(["3", "rpcinfo", "-T", "tcp", "127.0.0.1", "100024", "1"])
        .output()
        .unwrap()
        .status
        .success()
}

/// Kills what the test left in the client namespace (a statd started
/// again belongs to no ledger).
fn kill_all_in(ns: &Netns) {
    for program in ["rpc.statd", "rpcbind", "sh"] {
        for pid in pids_of(program, ns) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

fn killed_statd_rehearsal(server: IpAddr, lasts: &str, linger: &str) -> String {
    let answers = "timeout 3 rpcinfo -T tcp 127.0.0.1 100024 1";
    format!(
        r#"schema_version: 1
id: staging-run-statd-killed
title: The client's own statd killed for a while, and back
requires: {{ target: [staging], tools: [rpcinfo, timeout, bash] }}
timeout: 90s
hosts:
  client: {{}}
  filer: {{ addr: {server}/24 }}
nfs_servers:
  fs1: {{ host: filer, kind: external, exports: [{{ path: /export }}] }}
steps:
  - id: before
    exec: {{ host: client, command: [bash, -c, "{answers}"] }}
    timeout: 5s
  - id: kill
    fault: {{ proc.kill: {{ host: client, daemon: statd }} }}
    for: {lasts}
  - id: during
    after: before
    offset: 500ms
    exec: {{ host: client, command: [bash, -c, "! {answers}"] }}
    timeout: 5s
  - id: after
    after: kill
    exec: {{ host: client, command: [bash, -c, "{answers}"] }}
    timeout: 5s
  - {{ id: linger, wait: {linger} }}
expect:
  - exit_code: {{ step: before, code: 0 }}
  - exit_code: {{ step: during, code: 0 }}
  - exit_code: {{ step: after, code: 0 }}
"#
    )
}

// proc.kill on a real client: the statd serving the client's namespace is
// killed (and only it: the filer's statd of the same name lives on), does
// not answer while the step lasts, answers again after the heal started it
// with its own command line, and no watchdog is left.
#[test]
fn the_clients_own_statd_is_killed_and_started_again() {
    require_root_and(STATD_TOOLS, &["/proc/self/ns/net"]);
    let t = TestRun::new("root_staging_run");
    let s = staging(&t, 77, 7087);
    let own = own_daemons(&t, &s.client);
    let theirs = own_daemons(&t, &s.server);
    let bystander = pids_of("rpc.statd", &s.server);
    let before = pids_of("rpc.statd", &s.client);
    assert_eq!(before.len(), 1, "{before:?}");
    let Rehearsed { said, report, .. } =
        rehearse(&t, &s, &killed_statd_rehearsal(s.server_ip, "3s", "1s"));
    let after = pids_of("rpc.statd", &s.client);
    let watchdogs = pids_of("sh", &s.client);
    let r = &report.results[0];
    let bystander_after = pids_of("rpc.statd", &s.server);
    kill_all_in(&s.client);
    kill_all_in(&s.server);
    assert_eq!(r.verdict, Verdict::Pass, "{:?}: {said}", r.reason);
    assert_eq!(after.len(), 1, "{after:?}");
    assert_ne!(after, before, "the statd running now is a new one");
    assert_eq!(watchdogs, Vec::<u32>::new(), "a watchdog was left");
    assert_eq!(bystander_after, bystander);
    assert_eq!(left_by(&r.journal.run_id, &t), Vec::<String>::new());
    drop((own, theirs));
}

// The dead-man's switch: stackquake SIGKILLed while the client's statd is
// down heals nothing, yet the watchdog it left starts the statd again
// about `for:` + 5 s after the kill, with nobody running anything.
#[test]
fn a_sigkilled_run_leaves_a_watchdog_that_brings_the_statd_back() {
    require_root_and(STATD_TOOLS, &["/proc/self/ns/net"]);
    let t = TestRun::new("root_staging_run");
    let s = staging(&t, 76, 7086);
    let own = own_daemons(&t, &s.client);
    let before = pids_of("rpc.statd", &s.client);
    let mut child = spawn_rehearsal(&t, &s, &killed_statd_rehearsal(s.server_ip, "3s", "60s"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !pids_of("rpc.statd", &s.client).is_empty() {
        assert!(Instant::now() < deadline, "the run never killed statd");
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed_at = Instant::now();
    child.kill().unwrap();
    child.wait().unwrap();
    let dead = dead_run_of(child.id());
    assert!(
        !statd_answers(&s.client),
        "statd answered with nobody to start it"
    );
    let back = loop {
        let now = pids_of("rpc.statd", &s.client);
        if !now.is_empty() && statd_answers(&s.client) {
            break Some(now);
        }
        if killed_at.elapsed() > Duration::from_secs(3 + 5 + 5) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let waited = killed_at.elapsed();
    kill_all_in(&s.client);
    let back = back.expect("the watchdog never started statd again");
    assert_ne!(back, before);
    assert!(
        waited >= Duration::from_secs(3 + 5 - 1),
        "statd was back {waited:?} after the kill: something else started it"
    );
    // The rest of what the killed run left (its scratch directory) goes
    // with `cleanup`, as its ledger says.
    let out = Command::new("ip")
        .args(["netns", "exec", s.client.name()])
        .arg(env!("CARGO_BIN_EXE_stackquake"))
        .args(["cleanup", "--run", &dead.run])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(left_by(&dead.run, &t), Vec::<String>::new());
    let scratch = std::env::temp_dir().join("stackquake").join(&dead.run);
    assert!(!scratch.exists(), "{} left", scratch.display());
    assert!(!dead.ledger.exists(), "cleanup left the run's ledger");
    drop(own);
}

/// The dead run whose process was `pid`, as `stackquake run` finds it.
fn dead_run_of(pid: u32) -> stackquake::ledger::DeadRun {
    let root = Path::new(stackquake::ledger::DEFAULT_ROOT);
    stackquake::ledger::dead_runs(root)
        .into_iter()
        .find(|d| d.pid == pid)
        .unwrap_or_else(|| panic!("no dead run of process {pid} under {}", root.display()))
}
