//! The nftables backend: a table `inet sq_<run>` with input, output and
//! forward base chains; each rule tagged with a `sq:<n>` comment, so its
//! kernel rules (one per direction, hook and verdict) can be found again
//! by comment for counters and removal without tracking handles ourselves.

use super::rule::{Action, Protocol, RuleId, SHARE_WHOLE, Selector};
use super::{Firewall, NetError};
use crate::tools;

pub(super) const FAMILY: &str = "inet";

/// Input and output see a host's own traffic; forward sees what a router
/// or switch namespace passes on.
const CHAINS: [&str; 3] = ["input", "output", "forward"];

/// Before the usual filter priority (0), so a run's rules see packets even
/// where a distribution ruleset would accept them first — an accept is not
/// final across base chains, but a drop here is.
const PRIORITY: i32 = -10;

pub(super) fn create_table(fw: &Firewall) -> Result<(), NetError> {
    // `create` (not `add`) fails on an existing table: never adopt one.
    let mut script = format!("create table {FAMILY} {}\n", fw.name);
    for chain in CHAINS {
        script.push_str(&format!(
            "add chain {FAMILY} {} {chain} {{ type filter hook {chain} priority {PRIORITY}; policy accept; }}\n",
            fw.name
        ));
    }
    fw.exec("nft", &["-f", "-"], Some(&script)).map(drop)
}

/// Deletes table `family name` in `netns` (None: the current one): the one
/// removal of a run's nft table, for `Firewall`'s drop and `stackquake
/// cleanup`. Ok(false): it was already gone, or its namespace was.
pub fn delete_table(netns: Option<&str>, family: &str, name: &str) -> Result<bool, NetError> {
    let Some((mut cmd, place)) = super::command_in_named(netns, "nft")? else {
        return Ok(false);
    };
    cmd.args(["delete", "table", family, name]);
    let input = tools::Input {
        stdin: None,
        place: Some(&place),
    };
    let ran = tools::output_with(cmd, input).map(drop);
    Ok(tools::tolerate_absent(ran, &["No such file or directory"])?)
}

/// The statements after `add rule inet <table> <chain>` for one selector.
pub(super) fn rule_bodies(id: RuleId, action: Action, sel: &Selector) -> Vec<String> {
    let ip = if sel.v6 { "ip6" } else { "ip" };
    let mut m = Vec::new();
    if let Some(a) = sel.saddr {
        m.push(format!("{ip} saddr {a}"));
    }
    if let Some(a) = sel.daddr {
        m.push(format!("{ip} daddr {a}"));
    }
    match (sel.protocol, sel.port) {
        (Some(Protocol::Tcp), Some(p)) => m.push(format!("tcp dport {p}")),
        (Some(Protocol::Udp), Some(p)) => m.push(format!("udp dport {p}")),
        (Some(Protocol::Tcp), None) => m.push("meta l4proto tcp".into()),
        (Some(Protocol::Udp), None) => m.push("meta l4proto udp".into()),
        (Some(Protocol::Icmp), _) => m.push(
            if sel.v6 {
                "meta l4proto ipv6-icmp"
            } else {
                "meta l4proto icmp"
            }
            .into(),
        ),
        (None, _) => {}
    }
    if let Some(n) = sel.min_size {
        // skb length at the hooks of an IP family: the IP packet.
        m.push(format!("meta length >= {n}"));
    }
    if let Some(bp) = sel.share {
        // A fresh draw per packet (and per rule: a reject's two rules
        // cover different protocols, so a packet meets one draw).
        m.push(format!("numgen random mod {SHARE_WHOLE} < {bp}"));
    }
    let matched = m.join(" ");
    let comment = format!("comment \"{}\"", id.comment());
    // RSTs are exempt from reject: the reset that the output hook fakes
    // from the peer loops back through input, where the reverse-direction
    // rule would otherwise eat it and turn the prompt ECONNREFUSED into a
    // timeout (and the kernel never answers an RST with an RST anyway).
    let reset = "tcp flags & rst == 0 counter reject with tcp reset";
    let unreachable = "counter reject with icmpx type host-unreachable";
    match (action, sel.protocol) {
        (Action::Drop, _) => vec![format!("{matched} counter drop {comment}")],
        (Action::Delay(_), _) => unreachable!("Firewall::add refuses delays"),
        (Action::Reject, Some(Protocol::Tcp)) => vec![format!("{matched} {reset} {comment}")],
        (Action::Reject, Some(_)) => vec![format!("{matched} {unreachable} {comment}")],
        // A reset only makes sense for TCP; the rest gets the ICMP error.
        (Action::Reject, None) => vec![
            format!("{matched} meta l4proto tcp {reset} {comment}"),
            format!("{matched} meta l4proto != tcp {unreachable} {comment}"),
        ],
    }
}

pub(super) fn add_rules(
    fw: &Firewall,
    id: RuleId,
    action: Action,
    selectors: &[Selector],
) -> Result<(), NetError> {
    let mut script = String::new();
    for chain in CHAINS {
        for sel in selectors {
            for body in rule_bodies(id, action, sel) {
                script.push_str(&format!("add rule {FAMILY} {} {chain} {body}\n", fw.name));
            }
        }
    }
    // One `nft -f` run is one transaction: all of the rule's parts or none.
    fw.exec("nft", &["-f", "-"], Some(&script)).map(drop)
}

/// (chain, handle, packets) of every kernel rule tagged with `id`.
fn tagged(fw: &Firewall, id: RuleId) -> Result<Vec<(String, u64, u64)>, NetError> {
    let out = fw.exec("nft", &["-j", "list", "table", FAMILY, &fw.name], None)?;
    parse_tagged(&out, &id.comment()).map_err(|why| NetError::BadOutput {
        command: format!("nft -j list table {FAMILY} {}", fw.name),
        why,
    })
}

pub(super) fn parse_tagged(json: &str, comment: &str) -> Result<Vec<(String, u64, u64)>, String> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let items = v["nftables"].as_array().ok_or("no \"nftables\" array")?;
    let mut found = Vec::new();
    for rule in items.iter().filter_map(|i| i.get("rule")) {
        if rule["comment"].as_str() != Some(comment) {
            continue;
        }
        let chain = rule["chain"].as_str().ok_or("rule without chain")?;
        let handle = rule["handle"].as_u64().ok_or("rule without handle")?;
        let packets = rule["expr"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|e| e.get("counter")?.get("packets")?.as_u64())
            .ok_or("tagged rule without counter")?;
        found.push((chain.to_string(), handle, packets));
    }
    Ok(found)
}

pub(super) fn packets(fw: &Firewall, id: RuleId) -> Result<u64, NetError> {
    Ok(tagged(fw, id)?.iter().map(|(_, _, p)| p).sum())
}

pub(super) fn remove_rules(fw: &Firewall, id: RuleId) -> Result<(), NetError> {
    let script: String = tagged(fw, id)?
        .iter()
        .map(|(chain, handle, _)| {
            format!("delete rule {FAMILY} {} {chain} handle {handle}\n", fw.name)
        })
        .collect();
    if script.is_empty() {
        return Ok(());
    }
    fw.exec("nft", &["-f", "-"], Some(&script)).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(protocol: Option<Protocol>, port: Option<u16>) -> Selector {
        Selector {
            v6: false,
            saddr: Some("10.0.0.1".parse().unwrap()),
            daddr: Some("10.0.0.2".parse().unwrap()),
            protocol,
            port,
            min_size: None,
            share: None,
        }
    }

    #[test]
    fn min_size_matches_the_ip_packet_length() {
        let sel = Selector {
            min_size: Some(200),
            ..sel(Some(Protocol::Tcp), Some(2049))
        };
        assert_eq!(
            rule_bodies(RuleId(3), Action::Drop, &sel),
            [
                "ip saddr 10.0.0.1 ip daddr 10.0.0.2 tcp dport 2049 meta length >= 200 counter drop comment \"sq:3\""
            ]
        );
    }

    #[test]
    fn a_share_draws_at_random_per_packet() {
        let sel = Selector {
            share: Some(2500),
            ..sel(None, None)
        };
        assert_eq!(
            rule_bodies(RuleId(5), Action::Drop, &sel),
            [
                "ip saddr 10.0.0.1 ip daddr 10.0.0.2 numgen random mod 10000 < 2500 counter drop comment \"sq:5\""
            ]
        );
    }

    #[test]
    fn drop_and_reject_bodies() {
        assert_eq!(
            rule_bodies(RuleId(3), Action::Drop, &sel(None, None)),
            vec!["ip saddr 10.0.0.1 ip daddr 10.0.0.2 counter drop comment \"sq:3\""]
        );
        let r = rule_bodies(RuleId(4), Action::Reject, &sel(None, None));
        assert_eq!(r.len(), 2);
        assert!(
            r[0].contains("meta l4proto tcp tcp flags & rst == 0 counter reject with tcp reset")
        );
        assert!(r[1].ends_with("reject with icmpx type host-unreachable comment \"sq:4\""));
        let r = rule_bodies(
            RuleId(5),
            Action::Reject,
            &sel(Some(Protocol::Tcp), Some(2049)),
        );
        assert_eq!(
            r,
            vec![
                "ip saddr 10.0.0.1 ip daddr 10.0.0.2 tcp dport 2049 tcp flags & rst == 0 counter reject with tcp reset comment \"sq:5\""
            ]
        );
    }

    #[test]
    fn counters_are_found_by_comment_only() {
        let json = r#"{"nftables":[{"metainfo":{}},{"table":{"name":"t"}},
          {"rule":{"family":"inet","table":"t","chain":"input","handle":4,"comment":"sq:1",
            "expr":[{"match":{}},{"counter":{"packets":7,"bytes":588}},{"drop":null}]}},
          {"rule":{"family":"inet","table":"t","chain":"output","handle":9,"comment":"sq:1",
            "expr":[{"counter":{"packets":2,"bytes":100}},{"drop":null}]}},
          {"rule":{"family":"inet","table":"t","chain":"output","handle":10,"comment":"sq:11",
            "expr":[{"counter":{"packets":50,"bytes":1}},{"drop":null}]}}]}"#;
        let got = parse_tagged(json, "sq:1").unwrap();
        assert_eq!(
            got,
            vec![("input".to_string(), 4, 7), ("output".to_string(), 9, 2)]
        );
    }
}
