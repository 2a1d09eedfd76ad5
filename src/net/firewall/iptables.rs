//! The iptables backend, for hosts without nft: a chain `sq-<run>` in the
//! filter table (IPv4 and IPv6), jumped to first from INPUT, OUTPUT and
//! FORWARD; rules tagged `-m comment --comment sq:<n>` and changed only
//! through `iptables-restore --noflush`, which never flushes other chains.

use super::rule::{Action, Protocol, RuleId, SHARE_WHOLE, Selector};
use super::{Firewall, Installed, NetError};

const HOOK_CHAINS: [&str; 3] = ["INPUT", "OUTPUT", "FORWARD"];

fn tool(v6: bool, base: &str) -> String {
    format!("{}{base}", if v6 { "ip6" } else { "ip" })
}

pub(super) fn create_chain(fw: &Firewall) -> Result<(), NetError> {
    for v6 in [false, true] {
        let exists = fw
            .exec(&tool(v6, "tables"), &["-w", "-n", "-L", &fw.name], None)
            .is_ok();
        if exists {
            return Err(NetError::Exists {
                what: format!("{} chain {}", tool(v6, "tables"), fw.name),
                netns: fw.netns.clone(),
            });
        }
    }
    let mut script = format!("*filter\n:{} - [0:0]\n", fw.name);
    for hook in HOOK_CHAINS {
        script.push_str(&format!("-I {hook} 1 -j {}\n", fw.name));
    }
    script.push_str("COMMIT\n");
    fw.exec(
        &tool(false, "tables-restore"),
        &["-w", "--noflush"],
        Some(&script),
    )?;
    if let Err(e) = fw.exec(
        &tool(true, "tables-restore"),
        &["-w", "--noflush"],
        Some(&script),
    ) {
        let _ = remove_chain(Some(&fw.netns), &fw.name);
        return Err(e);
    }
    Ok(())
}

/// The rule specs (after `-A <chain>`) for one selector.
pub(super) fn rule_specs(id: RuleId, action: Action, sel: &Selector) -> Vec<String> {
    let mut m = Vec::new();
    if let Some(a) = sel.saddr {
        m.push(format!("-s {a}"));
    }
    if let Some(a) = sel.daddr {
        m.push(format!("-d {a}"));
    }
    let icmp = if sel.v6 { "ipv6-icmp" } else { "icmp" };
    match sel.protocol {
        Some(Protocol::Tcp) => m.push("-p tcp".into()),
        Some(Protocol::Udp) => m.push("-p udp".into()),
        Some(Protocol::Icmp) => m.push(format!("-p {icmp}")),
        None => {}
    }
    if let Some(p) = sel.port {
        m.push(format!("--dport {p}"));
    }
    if let Some(n) = sel.min_size {
        m.push(format!("-m length --length {n}:65535"));
    }
    if let Some(bp) = sel.share {
        m.push(format!(
            "-m statistic --mode random --probability {}",
            f64::from(bp) / f64::from(SHARE_WHOLE)
        ));
    }
    m.push(format!("-m comment --comment {}", id.comment()));
    let matched = m.join(" ");
    let unreachable = if sel.v6 {
        "-j REJECT --reject-with icmp6-addr-unreachable"
    } else {
        "-j REJECT --reject-with icmp-host-unreachable"
    };
    // RSTs exempt, as in nft.rs: the faked reset loops back through INPUT.
    let reset = "--tcp-flags RST NONE -j REJECT --reject-with tcp-reset";
    match (action, sel.protocol) {
        (Action::Drop, _) => vec![format!("{matched} -j DROP")],
        (Action::Delay(_), _) => unreachable!("Firewall::add refuses delays"),
        (Action::Reject, Some(Protocol::Tcp)) => vec![format!("{matched} {reset}")],
        (Action::Reject, Some(_)) => vec![format!("{matched} {unreachable}")],
        (Action::Reject, None) => vec![
            format!("-p tcp {matched} {reset}"),
            format!("! -p tcp {matched} {unreachable}"),
        ],
    }
}

fn restore(fw: &Firewall, v6: bool, op: &str, specs: &[&str]) -> Result<(), NetError> {
    if specs.is_empty() {
        return Ok(());
    }
    let mut script = String::from("*filter\n");
    for spec in specs {
        script.push_str(&format!("{op} {} {spec}\n", fw.name));
    }
    script.push_str("COMMIT\n");
    fw.exec(
        &tool(v6, "tables-restore"),
        &["-w", "--noflush"],
        Some(&script),
    )
    .map(drop)
}

fn split(specs: &[(bool, String)], v6: bool) -> Vec<&str> {
    specs
        .iter()
        .filter(|(six, _)| *six == v6)
        .map(|(_, s)| s.as_str())
        .collect()
}

pub(super) fn add_rules(
    fw: &Firewall,
    id: RuleId,
    action: Action,
    selectors: &[Selector],
) -> Result<Vec<(bool, String)>, NetError> {
    let specs: Vec<(bool, String)> = selectors
        .iter()
        .flat_map(|s| rule_specs(id, action, s).into_iter().map(|r| (s.v6, r)))
        .collect();
    // A rule is of one family (rule.rs refuses mixed addresses), so this is
    // one iptables-restore transaction.
    for v6 in [false, true] {
        restore(fw, v6, "-A", &split(&specs, v6))?;
    }
    Ok(specs)
}

pub(super) fn remove_rules(fw: &Firewall, rule: &Installed) -> Result<(), NetError> {
    for v6 in [false, true] {
        restore(fw, v6, "-D", &split(&rule.specs, v6))?;
    }
    Ok(())
}

pub(super) fn packets(fw: &Firewall, id: RuleId) -> Result<u64, NetError> {
    let mut total = 0;
    for v6 in [false, true] {
        let out = fw.exec(&tool(v6, "tables-save"), &["-c", "-t", "filter"], None)?;
        total += count_tagged(&out, &fw.name, &id.comment());
    }
    Ok(total)
}

/// Sums `[packets:bytes]` of the `-A <chain>` lines carrying `comment`.
pub(super) fn count_tagged(save: &str, chain: &str, comment: &str) -> u64 {
    save.lines()
        .filter_map(|line| {
            let (counters, rest) = line.strip_prefix('[')?.split_once(']')?;
            let mut words = rest.split_whitespace();
            if words.next() != Some("-A") || words.next() != Some(chain) {
                return None;
            }
            words
                .any(|w| w.trim_matches('"') == comment)
                .then(|| counters.split(':').next()?.parse::<u64>().ok())?
        })
        .sum()
}

/// Removes chain `chain` (jumps, rules, the chain) for IPv4 and IPv6 in
/// `netns` (None = here): the one removal of a run's iptables chain, for
/// `Firewall`'s drop and `stackquake cleanup`. Returns whether anything
/// existed; a namespace that is gone took its chains with it.
pub fn remove_chain(netns: Option<&str>, chain: &str) -> Result<bool, NetError> {
    let run = |v6: bool, args: &[&str]| -> Result<Option<String>, NetError> {
        let Some((mut cmd, place)) = super::command_in_named(netns, &tool(v6, "tables"))? else {
            return Ok(None);
        };
        cmd.arg("-w").args(args);
        let input = crate::tools::Input {
            stdin: None,
            place: Some(&place),
        };
        Ok(Some(crate::tools::output_with(cmd, input)?))
    };
    let mut existed = false;
    for v6 in [false, true] {
        match run(v6, &["-n", "-L", chain]) {
            Ok(Some(_)) => {}
            Ok(None) => return Ok(existed),
            Err(_) => continue,
        }
        existed = true;
        for hook in HOOK_CHAINS {
            // A jump may have been added twice by hand; remove every copy.
            for _ in 0..16 {
                if run(v6, &["-D", hook, "-j", chain]).is_err() {
                    break;
                }
            }
        }
        run(v6, &["-F", chain])?;
        run(v6, &["-X", chain])?;
    }
    Ok(existed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_of_tagged_lines_are_summed() {
        let save = "*filter\n:INPUT ACCEPT [10:100]\n\
            [0:0] -A INPUT -j sq-x\n\
            [3:252] -A sq-x -s 10.0.0.1/32 -d 10.0.0.2/32 -m comment --comment sq:1 -j DROP\n\
            [4:336] -A sq-x -s 10.0.0.2/32 -d 10.0.0.1/32 -m comment --comment \"sq:1\" -j DROP\n\
            [9:9] -A sq-x -d 10.0.0.3/32 -m comment --comment sq:12 -j DROP\n\
            [8:8] -A other -m comment --comment sq:1 -j DROP\nCOMMIT\n";
        assert_eq!(count_tagged(save, "sq-x", "sq:1"), 7);
        assert_eq!(count_tagged(save, "sq-x", "sq:12"), 9);
    }

    #[test]
    fn a_share_is_a_random_probability() {
        let sel = Selector {
            v6: false,
            saddr: None,
            daddr: Some("10.0.0.2".parse().unwrap()),
            protocol: None,
            port: None,
            min_size: None,
            share: Some(2500),
        };
        assert_eq!(
            rule_specs(RuleId(4), Action::Drop, &sel),
            [
                "-d 10.0.0.2 -m statistic --mode random --probability 0.25 -m comment --comment sq:4 -j DROP"
            ]
        );
    }

    #[test]
    fn reject_without_protocol_resets_tcp_first() {
        let sel = Selector {
            v6: false,
            saddr: None,
            daddr: Some("10.0.0.2".parse().unwrap()),
            protocol: None,
            port: None,
            min_size: None,
            share: None,
        };
        let specs = rule_specs(RuleId(2), Action::Reject, &sel);
        assert_eq!(
            specs,
            vec![
                "-p tcp -d 10.0.0.2 -m comment --comment sq:2 --tcp-flags RST NONE -j REJECT --reject-with tcp-reset",
                "! -p tcp -d 10.0.0.2 -m comment --comment sq:2 -j REJECT --reject-with icmp-host-unreachable",
            ]
        );
    }
}
