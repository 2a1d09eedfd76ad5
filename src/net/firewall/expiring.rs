//! `ExpiringFirewall`: the staging rehearsal's packet filter — one nftables
//! table of the run's own whose rules never change; what is blocked is the
//! set of elements in its named sets, each added with a timeout. The kernel
//! removes an element when its timeout runs out, so a cut ends by itself
//! even if stackquake is SIGKILLed or the operator walks away: on a real
//! client, a rule that outlives its run is an outage (issue 15).
//!
//! nftables only. iptables has no per-rule expiry (ipset timeouts would
//! need a second tool and still leave the jump rules), so a host without
//! `nft` is refused with `NetError::NoNft` rather than given rules that
//! only a living process removes.

use std::time::Duration;

use super::delayer::Delayer;
use super::rule::{Action, Match, Protocol, Rule, SHARE_WHOLE};
use super::{NetError, Netns};
use crate::ledger::{EntryId, Ledger, LedgerObject, RunId};
use crate::tools;

const FAMILY: &str = "inet";

/// Before the usual filter priority (0), as the run firewall's chains.
const PRIORITY: i32 = -10;

/// What one set's fixed rules do to the packets of its elements: drop or
/// reject them, all of them or only those of at least `min_size` bytes,
/// every one or a random `share` (basis points). The table has the sets of
/// the plain drop and reject, and of every other variant its run's cuts
/// use, each known when the table is made: its rules never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Variant {
    pub reject: bool,
    pub min_size: Option<u16>,
    pub share: Option<u16>,
    /// Held this long (by a `Delayer` on the set's queue) instead of cut.
    pub delay: Option<Duration>,
}

impl Variant {
    const PLAIN: [Variant; 2] = [
        Variant {
            reject: false,
            min_size: None,
            share: None,
            delay: None,
        },
        Variant {
            reject: true,
            min_size: None,
            share: None,
            delay: None,
        },
    ];

    /// The variant of a cut toward one remote address.
    pub fn of(rule: &Rule) -> Option<Variant> {
        match rule.matching {
            Match::Toward {
                min_size, share, ..
            } => Some(Variant {
                reject: rule.action == Action::Reject,
                min_size,
                share,
                delay: match rule.action {
                    Action::Delay(d) => Some(d),
                    _ => None,
                },
            }),
            Match::Between(..) => None,
        }
    }

    /// `<drop|reject|delay<ms>>[_ge<size>][_p<share>]_<addr|port><4|6>`.
    fn set_name(self, port: bool, v6: bool) -> String {
        let mut name = match self.delay {
            Some(d) => format!("delay{}", d.as_millis()),
            None => String::from(if self.reject { "reject" } else { "drop" }),
        };
        if let Some(n) = self.min_size {
            name.push_str(&format!("_ge{n}"));
        }
        if let Some(bp) = self.share {
            name.push_str(&format!("_p{bp}"));
        }
        let key = if port { "port" } else { "addr" };
        let family = if v6 { 6 } else { 4 };
        format!("{name}_{key}{family}")
    }

    /// What the rules match beyond the set's elements.
    fn condition(self) -> String {
        let mut c = String::new();
        if let Some(n) = self.min_size {
            c.push_str(&format!(" meta length >= {n}"));
        }
        if let Some(bp) = self.share {
            c.push_str(&format!(" numgen random mod {SHARE_WHOLE} < {bp}"));
        }
        c
    }
}

/// The element of `rule` and the name of its set. Only `Match::Toward`
/// fits: a staging client cuts its own traffic to and from named remote
/// addresses, never traffic between two other hosts.
fn element(rule: &Rule) -> Result<(String, String), NetError> {
    let bad = |why: &str| NetError::BadRule {
        rule: format!("{rule:?}"),
        why: why.to_string(),
    };
    let Match::Toward {
        addr,
        protocol,
        port,
        share,
        ..
    } = rule.matching
    else {
        return Err(bad("an expiring rule names one remote address (toward)"));
    };
    if share.is_some_and(|s| s == 0 || s >= SHARE_WHOLE) {
        return Err(bad("a share is 1 to 9999 basis points"));
    }
    let variant = Variant::of(rule).expect("a cut toward one address");
    match (protocol, port) {
        (None, None) => Ok((variant.set_name(false, addr.is_ipv6()), addr.to_string())),
        (Some(p @ (Protocol::Tcp | Protocol::Udp)), Some(port)) => {
            let proto = if p == Protocol::Tcp { "tcp" } else { "udp" };
            Ok((
                variant.set_name(true, addr.is_ipv6()),
                format!("{addr} . {proto} . {port}"),
            ))
        }
        _ => Err(bad(
            "an expiring rule matches an address, or an address with tcp/udp and a port",
        )),
    }
}

/// The NFQUEUE queue of each delay: numbers from a base the run id picks
/// (so two runs on one client rarely meet; a taken queue fails the bind).
pub type Queues = std::collections::BTreeMap<Duration, u16>;

fn queues_for(run: &RunId, variants: &[Variant]) -> Queues {
    let hash = run
        .as_str()
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    let base = 1024 + (hash % 60_000) as u16;
    let mut delays: Vec<Duration> = variants.iter().filter_map(|v| v.delay).collect();
    delays.sort();
    delays.dedup();
    delays
        .into_iter()
        .enumerate()
        .map(|(i, d)| (d, base + i as u16))
        .collect()
}

/// The plain variants and those of `rules`, each once.
fn variants_for(rules: &[Rule]) -> Vec<Variant> {
    let mut all: Vec<Variant> = Variant::PLAIN
        .into_iter()
        .chain(rules.iter().filter_map(Variant::of))
        .collect();
    all.sort();
    all.dedup();
    all
}

/// The whole table: sets, then the rules that consult them. Rules look at
/// both directions from this host's side: output toward the remote, input
/// from it.
pub fn table_script(name: &str, variants: &[Variant], queues: &Queues) -> String {
    let mut s = format!("table {FAMILY} {name} {{\n");
    for &variant in variants {
        for v6 in [false, true] {
            let addr = if v6 { "ipv6_addr" } else { "ipv4_addr" };
            s.push_str(&format!(
                "  set {} {{ type {addr}; flags timeout; }}\n",
                variant.set_name(false, v6)
            ));
            s.push_str(&format!(
                "  set {} {{ type {addr} . inet_proto . inet_service; flags timeout; }}\n",
                variant.set_name(true, v6)
            ));
        }
    }
    for (chain, to, from) in [("output", "daddr", "dport"), ("input", "saddr", "sport")] {
        s.push_str(&format!(
            "  chain {chain} {{ type filter hook {chain} priority {PRIORITY}; policy accept;\n"
        ));
        for v6 in [false, true] {
            let ip = if v6 { "ip6" } else { "ip" };
            for &variant in variants {
                let cond = variant.condition();
                let addr = format!("{ip} {to} @{}{cond}", variant.set_name(false, v6));
                let port = format!(
                    "{ip} {to} . meta l4proto . th {from} @{}{cond}",
                    variant.set_name(true, v6)
                );
                for m in [addr, port] {
                    if let Some(d) = variant.delay {
                        // What this host sends toward the remote waits; what
                        // comes back does not (netem delays egress alike).
                        if chain == "output" {
                            s.push_str(&format!(
                                "    {m} counter queue num {} bypass\n",
                                queues[&d]
                            ));
                        }
                    } else if !variant.reject {
                        s.push_str(&format!("    {m} counter drop\n"));
                    } else if chain == "output" {
                        s.push_str(&format!(
                            "    {m} meta l4proto tcp counter reject with tcp reset\n"
                        ));
                        s.push_str(&format!(
                            "    {m} meta l4proto != tcp counter reject with icmpx type host-unreachable\n"
                        ));
                    } else {
                        // The reset the output hook fakes loops back through
                        // input as if from the remote: let it pass, or the
                        // prompt ECONNREFUSED becomes a timeout.
                        s.push_str(&format!("    {m} tcp flags & rst == 0 counter drop\n"));
                        s.push_str(&format!("    {m} meta l4proto != tcp counter drop\n"));
                    }
                }
            }
        }
        s.push_str("  }\n");
    }
    s.push_str("}\n");
    s
}

/// The nft command that adds `rule` for `ttl`.
pub fn add_element_script(table: &str, rule: &Rule, ttl: Duration) -> Result<String, NetError> {
    let (set, elem) = element(rule)?;
    // nft takes whole milliseconds; an element of 0ms would never expire.
    let ms = ttl.as_millis().max(1);
    Ok(format!(
        "add element {FAMILY} {table} {set} {{ {elem} timeout {ms}ms }}\n"
    ))
}

/// One element as `nft -j list set` shows it: its text, its timeout and
/// what is left of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub set: String,
    pub key: String,
    pub timeout: Duration,
    pub expires: Duration,
}

/// The run's expiring table in one namespace (None: the namespace this
/// process runs in — a real staging client). Dropping it deletes the table.
#[derive(Debug)]
pub struct ExpiringFirewall {
    netns: Option<String>,
    name: String,
    ledger: Ledger,
    entry: EntryId,
    deleted: bool,
    /// The variants its sets were made for.
    variants: Vec<Variant>,
    /// One per delay, holding that queue's packets; after `deleted` in
    /// drop order, so the table stops queueing before they let go.
    delayers: Vec<Delayer>,
}

impl ExpiringFirewall {
    /// `sq_<run>_ttl`: never the name of the run firewall's table.
    pub fn table_name(run: &RunId) -> String {
        format!("sq_{run}_ttl")
    }

    /// The run's table, with sets for the plain drop and reject and for
    /// whatever else `cuts` (the run's every cut) need.
    pub fn create(
        ns: Option<&Netns>,
        run: &RunId,
        ledger: &Ledger,
        cuts: &[Rule],
    ) -> Result<ExpiringFirewall, NetError> {
        if tools::which("nft").is_none() {
            return Err(NetError::NoNft);
        }
        let name = Self::table_name(run);
        let netns = ns.map(|n| n.name().to_string());
        let object = LedgerObject::NftTable {
            netns: netns.clone(),
            family: FAMILY.to_string(),
            name: name.clone(),
        };
        let what = object.to_string();
        let entry = ledger
            .record(object)
            .map_err(|source| NetError::Ledger { what, source })?;
        let mut fw = ExpiringFirewall {
            netns,
            name,
            ledger: ledger.clone(),
            entry,
            deleted: false,
            variants: variants_for(cuts),
            delayers: Vec::new(),
        };
        let queues = queues_for(run, &fw.variants);
        // `create` fails on an existing table: never adopt one.
        let script = format!(
            "create table {FAMILY} {}\n{}",
            fw.name,
            table_script(&fw.name, &fw.variants, &queues)
        );
        if let Err(e) = fw.nft(&["-f", "-"], Some(&script)) {
            fw.deleted = true;
            let _ = fw.ledger.done(fw.entry);
            return Err(if queues.is_empty() {
                e
            } else {
                NetError::BadRule {
                    rule: "queue num … bypass".into(),
                    why: format!(
                        "a delay needs nftables' queue expression (CONFIG_NFT_QUEUE) and \
                         nfnetlink_queue, which this kernel may lack: {e}"
                    ),
                }
            });
        }
        // Queued packets wait for a listener only once the table exists;
        // until one binds, `bypass` lets them through.
        let netns = fw.netns.as_deref().map(crate::sys::ns::netns_path);
        for (&delay, &queue) in &queues {
            let delayer = Delayer::start(netns.clone(), queue, delay)
                .map_err(|source| NetError::Delayer { queue, source })?;
            fw.delayers.push(delayer);
        }
        tracing::info!(netns = ?fw.netns, name = %fw.name, "created expiring firewall");
        Ok(fw)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The remote address a cut names, if it is one this firewall takes.
    pub fn remote(rule: &Rule) -> Option<std::net::IpAddr> {
        element(rule).ok()?;
        match rule.matching {
            Match::Toward { addr, .. } => Some(addr),
            Match::Between(..) => None,
        }
    }

    /// The set and element text a cut becomes, as `plan` shows it.
    pub fn element_of(rule: &Rule) -> Result<(String, String), NetError> {
        element(rule)
    }

    /// Cuts what `rule` matches for `ttl`; the kernel heals it after that.
    pub fn cut(&self, rule: &Rule, ttl: Duration) -> Result<(), NetError> {
        if !Variant::of(rule).is_some_and(|v| self.variants.contains(&v)) {
            return Err(NetError::BadRule {
                rule: format!("{rule:?}"),
                why: "the run's table was made without a set for this kind of cut".into(),
            });
        }
        let script = add_element_script(&self.name, rule, ttl)?;
        self.nft(&["-f", "-"], Some(&script)).map(drop)?;
        tracing::info!(name = %self.name, ?rule, ?ttl, "expiring cut added");
        Ok(())
    }

    /// Heals one cut now; Ok(false) if it had already expired.
    pub fn heal(&self, rule: &Rule) -> Result<bool, NetError> {
        let (set, elem) = element(rule)?;
        let script = format!("delete element {FAMILY} {} {set} {{ {elem} }}\n", self.name);
        match self.nft(&["-f", "-"], Some(&script)) {
            Ok(_) => Ok(true),
            Err(NetError::Command(e)) if e.stderr_says(&["No such file or directory"]) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Heals every cut at once (an abort, the end of a run).
    pub fn heal_all(&self) -> Result<(), NetError> {
        let mut script = String::new();
        for variant in &self.variants {
            for port in [false, true] {
                for v6 in [false, true] {
                    script.push_str(&format!(
                        "flush set {FAMILY} {} {}\n",
                        self.name,
                        variant.set_name(port, v6)
                    ));
                }
            }
        }
        self.nft(&["-f", "-"], Some(&script)).map(drop)
    }

    /// Packets the fixed rules consulting `rule`'s set have acted on so
    /// far, both directions. Elements carry no counters of their own (and
    /// an expired element would take its count with it), so a cut's count
    /// is the difference across its life; cuts in the same set at the same
    /// time share it.
    pub fn packets(&self, rule: &Rule) -> Result<u64, NetError> {
        let (set, _) = element(rule)?;
        let out = self.nft(&["-j", "list", "table", FAMILY, &self.name], None)?;
        parse_set_packets(&out, &set).map_err(|why| NetError::BadOutput {
            command: format!("nft -j list table {FAMILY} {}", self.name),
            why,
        })
    }

    /// Every element still in force.
    pub fn elements(&self) -> Result<Vec<Element>, NetError> {
        let out = self.nft(&["-j", "list", "table", FAMILY, &self.name], None)?;
        parse_elements(&out).map_err(|why| NetError::BadOutput {
            command: format!("nft -j list table {FAMILY} {}", self.name),
            why,
        })
    }

    /// Deletes the table now; drop does the same but only logs.
    pub fn delete(mut self) -> Result<(), NetError> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<(), NetError> {
        if self.deleted {
            return Ok(());
        }
        self.deleted = true;
        super::delete_nft_table(self.netns.as_deref(), FAMILY, &self.name)?;
        if let Err(e) = self.ledger.done(self.entry) {
            tracing::warn!(name = %self.name, error = %e, "cannot mark firewall done in ledger");
        }
        Ok(())
    }

    fn nft(&self, args: &[&str], stdin: Option<&str>) -> Result<String, NetError> {
        let Some((mut cmd, place)) = super::command_in_named(self.netns.as_deref(), "nft")? else {
            return Err(NetError::OpenNetns {
                path: crate::sys::ns::netns_path(self.netns.as_deref().unwrap_or_default()),
                source: std::io::ErrorKind::NotFound.into(),
            });
        };
        cmd.args(args);
        let input = tools::Input {
            stdin,
            place: Some(&place),
        };
        Ok(tools::output_with(cmd, input)?)
    }
}

impl Drop for ExpiringFirewall {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            tracing::error!(name = %self.name, error = %e, "expiring firewall left behind");
        }
    }
}

/// The elements of every set in `nft -j list table` output.
pub fn parse_elements(json: &str) -> Result<Vec<Element>, String> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let items = v["nftables"].as_array().ok_or("no \"nftables\" array")?;
    let mut found = Vec::new();
    for set in items.iter().filter_map(|i| i.get("set")) {
        let name = set["name"].as_str().ok_or("set without name")?;
        for e in set["elem"].as_array().into_iter().flatten() {
            let inner = e.get("elem").ok_or("element without timeout")?;
            let secs = |k: &str| inner[k].as_u64().map(Duration::from_secs);
            found.push(Element {
                set: name.to_string(),
                key: key_text(&inner["val"]),
                timeout: secs("timeout").ok_or("element without timeout")?,
                expires: secs("expires").unwrap_or_default(),
            });
        }
    }
    Ok(found)
}

/// The packets counted by every rule that matches against set `set`, in
/// `nft -j list table` output.
pub fn parse_set_packets(json: &str, set: &str) -> Result<u64, String> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let items = v["nftables"].as_array().ok_or("no \"nftables\" array")?;
    let reference = format!("@{set}");
    let mut packets = 0;
    for rule in items.iter().filter_map(|i| i.get("rule")) {
        let exprs = rule["expr"].as_array().ok_or("rule without expr")?;
        let consults = exprs
            .iter()
            .any(|e| e["match"]["right"].as_str() == Some(reference.as_str()));
        if !consults {
            continue;
        }
        let counted = exprs.iter().find_map(|e| e["counter"]["packets"].as_u64());
        packets += counted.ok_or("a rule of the run's table without counter")?;
    }
    Ok(packets)
}

/// `10.0.0.1` or `10.0.0.1 . tcp . 2049` from an element's JSON value.
fn key_text(v: &serde_json::Value) -> String {
    match v.get("concat").and_then(|c| c.as_array()) {
        Some(parts) => parts.iter().map(key_text).collect::<Vec<_>>().join(" . "),
        None => match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn toward(addr: &str, port: Option<(Protocol, u16)>, action: Action) -> Rule {
        Rule {
            matching: Match::Toward {
                addr: addr.parse().unwrap(),
                protocol: port.map(|p| p.0),
                port: port.map(|p| p.1),
                min_size: None,
                share: None,
            },
            action,
        }
    }

    #[test]
    fn elements_go_to_the_set_of_their_verdict_key_and_family() {
        let r = toward("10.0.0.9", None, Action::Drop);
        assert_eq!(
            add_element_script("t", &r, Duration::from_secs(30)).unwrap(),
            "add element inet t drop_addr4 { 10.0.0.9 timeout 30000ms }\n"
        );
        let r = toward("fd00::9", Some((Protocol::Tcp, 2049)), Action::Reject);
        assert_eq!(
            add_element_script("t", &r, Duration::from_millis(1500)).unwrap(),
            "add element inet t reject_port6 { fd00::9 . tcp . 2049 timeout 1500ms }\n"
        );
    }

    #[test]
    fn only_cuts_toward_one_remote_fit() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(element(&Rule::block_between(a, b)).is_err());
        let icmp = Rule {
            matching: Match::Toward {
                addr: a,
                protocol: Some(Protocol::Icmp),
                port: None,
                min_size: None,
                share: None,
            },
            action: Action::Drop,
        };
        assert!(element(&icmp).is_err());
    }

    #[test]
    fn sized_and_lossy_cuts_get_sets_of_their_own_with_their_condition() {
        let sized = Rule {
            matching: Match::Toward {
                addr: "10.0.0.9".parse().unwrap(),
                protocol: None,
                port: None,
                min_size: Some(1401),
                share: None,
            },
            action: Action::Drop,
        };
        let lossy = Rule {
            matching: Match::Toward {
                addr: "10.0.0.9".parse().unwrap(),
                protocol: Some(Protocol::Tcp),
                port: Some(2049),
                min_size: None,
                share: Some(1250),
            },
            action: Action::Drop,
        };
        assert_eq!(
            element(&sized).unwrap(),
            ("drop_ge1401_addr4".into(), "10.0.0.9".into())
        );
        assert_eq!(element(&lossy).unwrap().0, "drop_p1250_port4");
        let variants = variants_for(&[sized.clone(), lossy, sized]);
        assert_eq!(variants.len(), 4, "{variants:?}");
        let t = table_script("t", &variants, &Queues::new());
        assert_eq!(t.matches("flags timeout").count(), 16);
        assert!(t.contains("ip daddr @drop_ge1401_addr4 meta length >= 1401 counter drop"));
        assert!(t.contains("ip saddr @drop_ge1401_addr4 meta length >= 1401 counter drop"));
        assert!(t.contains(
            "ip daddr . meta l4proto . th dport @drop_p1250_port4 numgen random mod 10000 < 1250 counter drop"
        ));
        // A share outside 1..=9999 is no loss at all (or all of it): a cut.
        let mut whole = toward("10.0.0.9", None, Action::Drop);
        if let Match::Toward { share, .. } = &mut whole.matching {
            *share = Some(10_000);
        }
        assert!(element(&whole).is_err());
    }

    #[test]
    fn every_set_has_timeouts_and_every_rule_a_set() {
        let t = table_script("sq_x_ttl", &variants_for(&[]), &Queues::new());
        assert_eq!(t.matches("flags timeout").count(), 8);
        for line in t.lines().filter(|l| l.contains("counter")) {
            assert!(line.contains(" @"), "a rule outside the sets: {line}");
        }
        assert!(t.contains("ip daddr . meta l4proto . th dport @drop_port4 counter drop"));
        assert!(t.contains("ip6 saddr @reject_addr6 tcp flags & rst == 0 counter drop"));
    }

    #[test]
    fn a_sets_packets_are_the_sum_of_the_rules_that_consult_it() {
        let json = r#"{"nftables":[{"metainfo":{}},
          {"rule":{"chain":"output","expr":[
            {"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"daddr"}},"right":"@drop_addr4"}},
            {"counter":{"packets":5,"bytes":300}},{"drop":null}]}},
          {"rule":{"chain":"input","expr":[
            {"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"saddr"}},"right":"@drop_addr4"}},
            {"counter":{"packets":2,"bytes":120}},{"drop":null}]}},
          {"rule":{"chain":"input","expr":[
            {"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"saddr"}},"right":"@reject_addr4"}},
            {"counter":{"packets":9,"bytes":540}},{"drop":null}]}}]}"#;
        assert_eq!(parse_set_packets(json, "drop_addr4").unwrap(), 7);
        assert_eq!(parse_set_packets(json, "reject_addr4").unwrap(), 9);
        assert_eq!(parse_set_packets(json, "drop_port4").unwrap(), 0);
    }

    #[test]
    fn listed_elements_are_read_back() {
        let json = r#"{"nftables":[{"metainfo":{}},
          {"set":{"family":"inet","name":"drop_addr4","table":"t","type":"ipv4_addr",
            "flags":["timeout"],"elem":[{"elem":{"val":"10.0.0.9","timeout":30,"expires":28}}]}},
          {"set":{"family":"inet","name":"drop_port4","table":"t",
            "type":["ipv4_addr","inet_proto","inet_service"],"flags":["timeout"],
            "elem":[{"elem":{"val":{"concat":["10.0.0.9","tcp",2049]},"timeout":5,"expires":4}}]}},
          {"set":{"family":"inet","name":"reject_addr4","table":"t","type":"ipv4_addr","flags":["timeout"]}}]}"#;
        let got = parse_elements(json).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].key, "10.0.0.9");
        assert_eq!(got[0].expires, Duration::from_secs(28));
        assert_eq!(got[1].key, "10.0.0.9 . tcp . 2049");
        assert_eq!(got[1].timeout, Duration::from_secs(5));
    }
}
