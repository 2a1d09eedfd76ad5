//! What one link's setup costs through `ip` (what the world does today: a
//! process per step, errors read from its stderr) against netlink requests
//! on one socket (rtnetlink), side by side in one run.
//!
//! Each iteration, in a private network namespace of this process (nothing
//! leaks into the machine's): create a veth pair, give one end an address,
//! bring both ends up, delete it. Rounds alternate the two ways; each
//! prints its median per iteration.
//!
//!   cargo run --release --example netlink_vs_ip -- [ROUNDS] [ITERATIONS]

use futures::TryStreamExt;
use rtnetlink::{Handle, LinkUnspec, LinkVeth};
use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::time::{Duration, Instant};

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn with_ip() {
    ip(&["link", "add", "sqa", "type", "veth", "peer", "name", "sqb"]);
    ip(&["addr", "add", "10.99.0.1/24", "dev", "sqa"]);
    ip(&["link", "set", "sqa", "up"]);
    ip(&["link", "set", "sqb", "up"]);
    ip(&["link", "del", "sqa"]);
}

async fn index(handle: &Handle, name: &str) -> u32 {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    links
        .try_next()
        .await
        .expect("get link")
        .expect("link exists")
        .header
        .index
}

async fn with_netlink(handle: &Handle) {
    handle
        .link()
        .add(LinkVeth::new("sqa", "sqb").build())
        .execute()
        .await
        .expect("add veth");
    let a = index(handle, "sqa").await;
    let b = index(handle, "sqb").await;
    handle
        .address()
        .add(a, IpAddr::V4(Ipv4Addr::new(10, 99, 0, 1)), 24)
        .execute()
        .await
        .expect("add address");
    for i in [a, b] {
        handle
            .link()
            .set(LinkUnspec::new_with_index(i).up().build())
            .execute()
            .await
            .expect("set up");
    }
    handle.link().del(a).execute().await.expect("delete");
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().map_or(5, |a| a.parse().expect("ROUNDS"));
    let iterations: usize = args.next().map_or(50, |a| a.parse().expect("ITERATIONS"));
    // A namespace of our own: `ip` children inherit it, the socket opens in it.
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
        .expect("unshare a network namespace (run as root)");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let handle = rt.block_on(async {
        let (conn, handle, _) = rtnetlink::new_connection().expect("netlink socket");
        tokio::spawn(conn);
        handle
    });
    let (mut by_ip, mut by_netlink) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let t = Instant::now();
        for _ in 0..iterations {
            with_ip();
        }
        let ip_each = t.elapsed() / iterations as u32;
        let t = Instant::now();
        rt.block_on(async {
            for _ in 0..iterations {
                with_netlink(&handle).await;
            }
        });
        let nl_each = t.elapsed() / iterations as u32;
        println!(
            "round {round}: ip {:.3} ms, netlink {:.3} ms per link",
            ip_each.as_secs_f64() * 1e3,
            nl_each.as_secs_f64() * 1e3
        );
        by_ip.push(ip_each);
        by_netlink.push(nl_each);
    }
    let ratios: Vec<f64> = by_ip
        .iter()
        .zip(&by_netlink)
        .map(|(i, n)| i.as_secs_f64() / n.as_secs_f64())
        .collect();
    let (lo, hi) = ratios
        .iter()
        .fold((f64::MAX, 0f64), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
    println!(
        "median per link: ip {:.3} ms, netlink {:.3} ms; ip/netlink {:.1}x (rounds {lo:.1}x..{hi:.1}x)",
        median(by_ip).as_secs_f64() * 1e3,
        median(by_netlink).as_secs_f64() * 1e3,
        ratios.iter().sum::<f64>() / ratios.len() as f64
    );
}
