//! The network half of a scenario: link options (switch, stacked VLANs,
//! per-end MTU, offloads) and the `net.*` faults, with their checks.

use super::model::{Ref, Scenario};
use super::quantity::Duration;
use super::validate::{Checker, closest};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

use crate::plan::MTU_RANGE;

/// Per-host settings of one end of a link (`links[i].ends.<host>`).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkEnd {
    /// MTU of this host's end only; overrides the link's `mtu`.
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub mtu: Option<Spanned<u32>>,
    /// MTU of this host's VLAN interfaces by VLAN id; overrides the link's
    /// `vlan_mtu`.
    #[serde(default)]
    #[schemars(with = "std::collections::BTreeMap<u16, u32>")]
    pub vlan_mtu: std::collections::BTreeMap<u16, Spanned<u32>>,
}

/// `net.block` / `net.reject`: which packets to cut. Either `between` two
/// hosts (both directions, rules in the first host's namespace), or from
/// `host` `toward` a host or an address, optionally one protocol and port.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetCut {
    #[serde(default)]
    #[schemars(with = "Option<[String; 2]>")]
    pub between: Option<[Ref; 2]>,
    /// The host whose namespace holds the rule (its outgoing packets).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub host: Option<Ref>,
    /// A host name, or an IPv4 address such as `10.77.0.1`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub toward: Option<Spanned<String>>,
    #[serde(default)]
    pub protocol: Option<NetProtocol>,
    /// Destination port; needs `protocol: tcp` or `udp`.
    #[serde(default)]
    #[schemars(with = "Option<u16>")]
    pub port: Option<Spanned<u16>>,
    /// Only packets of at least this many bytes, IP header included (20 to
    /// 65535): connections open and small calls (an RPC NULL ping) pass
    /// while larger ones (an NFSv4 EXCHANGE_ID) are dropped.
    #[serde(default)]
    #[schemars(with = "Option<u16>")]
    pub min_size: Option<Spanned<u16>>,
    /// Only this share of the matching packets, drawn at random for each
    /// (0.01 to 99.99, in each direction): a lossy path toward the host
    /// rather than a cut. With `net.block`, the loss a staging rehearsal
    /// can make (netem's `net.loss` needs a link of the run's own).
    #[serde(default)]
    #[schemars(with = "Option<f64>")]
    pub percent: Option<Spanned<f64>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NetProtocol {
    Tcp,
    Udp,
    Icmp,
}

/// `net.mtu`: set the interface's MTU; heal restores the old one.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetMtu {
    #[schemars(with = "String")]
    pub host: Ref,
    #[schemars(with = "String")]
    pub peer: Ref,
    #[serde(default)]
    #[schemars(with = "Option<u16>")]
    pub vlan: Option<Spanned<u16>>,
    #[schemars(with = "u32")]
    pub mtu: Spanned<u32>,
}

/// `net.delay`: netem delays every packet the interface toward `peer`
/// sends; or, on a staging client, what it sends `toward` the remote host
/// waits in a queue of the run's expiring table.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetDelay {
    #[schemars(with = "String")]
    pub host: Ref,
    /// The other end of the link whose interface delays (netem).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub peer: Option<Ref>,
    /// A staging rehearsal's remote host (or its IPv4 address): only what
    /// the client sends there is delayed, and the delay ends by itself.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub toward: Option<Spanned<String>>,
    /// With `toward`: only `tcp` or `udp` to `port` (e.g. 2049) waits.
    #[serde(default)]
    pub protocol: Option<NetProtocol>,
    #[serde(default)]
    #[schemars(with = "Option<u16>")]
    pub port: Option<Spanned<u16>>,
    #[serde(default)]
    #[schemars(with = "Option<u16>")]
    pub vlan: Option<Spanned<u16>>,
    #[serde(deserialize_with = "super::quantity::nonzero")]
    pub delay: Duration,
    #[serde(default)]
    pub jitter: Option<Duration>,
}

/// `net.loss`: netem drops this percentage of the packets the interface sends.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetLoss {
    #[schemars(with = "String")]
    pub host: Ref,
    #[schemars(with = "String")]
    pub peer: Ref,
    #[serde(default)]
    #[schemars(with = "Option<u16>")]
    pub vlan: Option<Spanned<u16>>,
    #[schemars(with = "f64")]
    pub percent: Spanned<f64>,
}

fn check_vlan_id(c: &mut Checker, id: &Spanned<u16>, path: String) -> bool {
    if (1..=4094).contains(&id.value) {
        return true;
    }
    c.at(
        id.referenced,
        path,
        format!("VLAN id {} is outside 1..=4094", id.value),
        Some("802.1Q reserves 0 and 4095".into()),
    );
    false
}

fn check_mtu(c: &mut Checker, mtu: u32, loc: Location, path: String) {
    if !MTU_RANGE.contains(&mtu) {
        c.at(
            loc,
            path,
            format!(
                "MTU {mtu} is outside {}..={}",
                MTU_RANGE.start(),
                MTU_RANGE.end()
            ),
            Some("Ethernet's usual MTU is 1500".into()),
        );
    }
}

/// Each VLAN MTU names a VLAN of the link and is a valid MTU.
fn check_vlan_mtu(
    c: &mut Checker,
    mtus: &std::collections::BTreeMap<u16, Spanned<u32>>,
    vlans: &[u16],
    path: &str,
) {
    for (id, mtu) in mtus {
        if !vlans.contains(id) {
            let listed: Vec<String> = vlans.iter().map(u16::to_string).collect();
            c.at(
                mtu.referenced,
                format!("{path}.{id}"),
                format!("VLAN {id} is not on this link"),
                Some(if listed.is_empty() {
                    "this link has no `vlans`".into()
                } else {
                    format!("this link's VLANs: {}", listed.join(", "))
                }),
            );
        }
        check_mtu(c, mtu.value, mtu.referenced, format!("{path}.{id}"));
    }
}

/// Links: switch names, VLAN lists, per-end MTUs.
pub(super) fn check_links(c: &mut Checker, s: &Scenario) {
    check_shared_ports(c, s);
    for (i, link) in s.links.iter().enumerate() {
        let at = link.between[0].referenced;
        if let Some(m) = link.mtu {
            check_mtu(c, m, at, format!("links[{i}].mtu"));
        }
        if let Some(sw) = &link.switch {
            let name = &sw.value;
            if name.is_empty()
                || name.len() > 8
                || !name.chars().all(|ch| ch.is_ascii_alphanumeric())
            {
                c.at(
                    sw.referenced,
                    format!("links[{i}].switch"),
                    format!("switch name `{name}` must be 1-8 letters or digits"),
                    None,
                );
            } else if s.hosts.contains_key(name) {
                c.at(
                    sw.referenced,
                    format!("links[{i}].switch"),
                    format!("switch `{name}` has the name of a host"),
                    Some("a switch is a namespace of its own; name it e.g. sw1".into()),
                );
            }
        }
        let mut seen = Vec::new();
        for (j, id) in link.vlans.iter().enumerate() {
            let path = format!("links[{i}].vlans[{j}]");
            if check_vlan_id(c, id, path.clone()) && seen.contains(&id.value) {
                c.at(
                    id.referenced,
                    path,
                    format!("VLAN {} appears twice on this link", id.value),
                    Some("list each VLAN once, outermost first: vlans: [20, 100]".into()),
                );
            }
            seen.push(id.value);
        }
        let vlans: Vec<u16> = link.vlans.iter().map(|v| v.value).collect();
        check_vlan_mtu(c, &link.vlan_mtu, &vlans, &format!("links[{i}].vlan_mtu"));
        let ends: Vec<&str> = link.between.iter().map(|b| b.value.as_str()).collect();
        for (host, end) in &link.ends {
            check_vlan_mtu(
                c,
                &end.vlan_mtu,
                &vlans,
                &format!("links[{i}].ends.{host}.vlan_mtu"),
            );
            if !ends.contains(&host.as_str()) {
                c.at(
                    at,
                    format!("links[{i}].ends.{host}"),
                    format!("`{host}` is not an end of this link"),
                    Some(format!("this link's ends: {}", ends.join(", "))),
                );
            }
            if let Some(m) = &end.mtu {
                check_mtu(
                    c,
                    m.value,
                    m.referenced,
                    format!("links[{i}].ends.{host}.mtu"),
                );
            }
        }
    }
}

/// Links through one switch that share a host share that host's port, so
/// they must describe it alike.
fn check_shared_ports(c: &mut Checker, s: &Scenario) {
    let mut first: std::collections::BTreeMap<(&str, &str), usize> = Default::default();
    for (i, link) in s.links.iter().enumerate() {
        let Some(sw) = &link.switch else { continue };
        for end in &link.between {
            let Some(&j) = first.get(&(end.value.as_str(), sw.value.as_str())) else {
                first.insert((end.value.as_str(), sw.value.as_str()), i);
                continue;
            };
            let other = &s.links[j];
            let ids = |l: &super::model::Link| l.vlans.iter().map(|v| v.value).collect::<Vec<_>>();
            if ids(link) != ids(other) || link.mtu != other.mtu || link.offloads != other.offloads {
                c.at(
                    sw.referenced,
                    format!("links[{i}]"),
                    format!(
                        "`{}` joins switch `{}` once, but links[{j}] and links[{i}] describe its port differently",
                        end.value, sw.value
                    ),
                    Some("give both links the same vlans, mtu and offloads".into()),
                );
            }
        }
    }
}

/// The link joining `host` and `peer`, if the scenario declares one.
fn link_between<'s>(s: &'s Scenario, host: &str, peer: &str) -> Option<&'s super::model::Link> {
    s.links.iter().find(|l| {
        let [a, b] = [&l.between[0].value, &l.between[1].value];
        (a == host && b == peer) || (a == peer && b == host)
    })
}

fn hosts(s: &Scenario) -> Vec<&str> {
    s.hosts.keys().map(String::as_str).collect()
}

/// `host` and `peer` exist and are linked; `vlan`, if given, is on that link.
fn check_iface(
    c: &mut Checker,
    s: &Scenario,
    host: &Ref,
    peer: &Ref,
    vlan: Option<&Spanned<u16>>,
    path: &str,
) {
    let known = hosts(s);
    let ok = c.reference(host, format!("{path}.host"), "host", known.clone())
        & c.reference(peer, format!("{path}.peer"), "host", known);
    if !ok {
        return;
    }
    let Some(link) = link_between(s, &host.value, &peer.value) else {
        let peers: Vec<&str> = s
            .links
            .iter()
            .filter_map(|l| {
                let [a, b] = [&l.between[0].value, &l.between[1].value];
                (*a == host.value)
                    .then_some(b.as_str())
                    .or((*b == host.value).then_some(a.as_str()))
            })
            .collect();
        c.at(
            peer.referenced,
            format!("{path}.peer"),
            format!("no link joins `{}` and `{}`", host.value, peer.value),
            Some(if peers.is_empty() {
                format!("`{}` has no links", host.value)
            } else {
                format!("`{}` is linked to: {}", host.value, peers.join(", "))
            }),
        );
        return;
    };
    if let Some(v) = vlan
        && !link.vlans.iter().any(|id| id.value == v.value)
    {
        let ids: Vec<String> = link.vlans.iter().map(|id| id.value.to_string()).collect();
        c.at(
            v.referenced,
            format!("{path}.vlan"),
            format!("the link has no VLAN {}", v.value),
            Some(if ids.is_empty() {
                "the link has no VLANs; leave `vlan` out for its veth end".into()
            } else {
                format!("its VLANs: {}", ids.join(", "))
            }),
        );
    }
}

pub(super) fn check_cut(c: &mut Checker, s: &Scenario, cut: &NetCut, path: &str, at: Location) {
    let known = hosts(s);
    match (&cut.between, &cut.host, &cut.toward) {
        (Some(between), None, None) => {
            for (j, end) in between.iter().enumerate() {
                c.reference(end, format!("{path}.between[{j}]"), "host", known.clone());
                check_addressed(c, s, end, format!("{path}.between[{j}]"));
            }
            if between[0].value == between[1].value {
                c.at(
                    between[1].referenced,
                    format!("{path}.between"),
                    "a cut is between two different hosts".into(),
                    None,
                );
            }
            if cut.protocol.is_some()
                || cut.port.is_some()
                || cut.min_size.is_some()
                || cut.percent.is_some()
            {
                c.at(
                    at,
                    path.to_string(),
                    "`protocol`, `port`, `min_size` and `percent` go with `host` and `toward`"
                        .into(),
                    Some("between: [a, b] cuts everything in both directions".into()),
                );
            }
        }
        (None, Some(host), Some(toward)) => {
            c.reference(host, format!("{path}.host"), "host", known.clone());
            let is_addr = toward.value.parse::<std::net::Ipv4Addr>().is_ok();
            if !is_addr {
                check_addressed(c, s, toward, format!("{path}.toward"));
            }
            if !is_addr && !s.hosts.contains_key(&toward.value) {
                let hint = closest(&toward.value, known.iter().copied())
                    .map(|h| format!("did you mean `{h}`?"))
                    .unwrap_or_else(|| format!("hosts: {}", known.join(", ")));
                c.at(
                    toward.referenced,
                    format!("{path}.toward"),
                    format!("`{}` is neither a host nor an IPv4 address", toward.value),
                    Some(hint),
                );
            }
            if let Some(port) = &cut.port
                && !matches!(cut.protocol, Some(NetProtocol::Tcp | NetProtocol::Udp))
            {
                c.at(
                    port.referenced,
                    format!("{path}.port"),
                    "a port needs `protocol: tcp` or `protocol: udp`".into(),
                    None,
                );
            }
            if let Some(size) = &cut.min_size
                && size.value < 20
            {
                c.at(
                    size.referenced,
                    format!("{path}.min_size"),
                    format!("{} bytes is less than an IP header", size.value),
                    Some("min_size counts the whole IP packet: 20 to 65535".into()),
                );
            }
            if let Some(p) = &cut.percent
                && percent_basis_points(p.value).is_none()
            {
                c.at(
                    p.referenced,
                    format!("{path}.percent"),
                    format!(
                        "{}% is not a share from 0.01 to 99.99 in steps of 0.01",
                        p.value
                    ),
                    Some("leave `percent` out to cut every packet; e.g. percent: 10".into()),
                );
            }
        }
        _ => c.at(
            at,
            path.to_string(),
            "say either `between: [a, b]` or `host` with `toward`".into(),
            Some("e.g. { between: [client, server] } or { host: client, toward: server, protocol: tcp, port: 2049 }".into()),
        ),
    }
}

/// A cut matches packets by address, so a host it names needs one.
fn check_addressed(c: &mut Checker, s: &Scenario, host: &Spanned<String>, path: String) {
    if s.hosts.get(&host.value).is_some_and(|h| h.addr.is_none()) {
        c.at(
            host.referenced,
            path,
            format!(
                "host `{}` has no `addr`; a cut matches packets by address",
                host.value
            ),
            Some(format!(
                "give it one, e.g. hosts: {{ {}: {{ addr: 10.77.0.2/24 }} }}",
                host.value
            )),
        );
    }
}

pub(super) fn check_mtu_fault(c: &mut Checker, s: &Scenario, f: &NetMtu, path: &str) {
    check_iface(c, s, &f.host, &f.peer, f.vlan.as_ref(), path);
    check_mtu(c, f.mtu.value, f.mtu.referenced, format!("{path}.mtu"));
}

/// The longest a staging delay holds a packet: longer is a cut, and a
/// queue of packets held that long is memory of ours.
pub(crate) const DELAY_TOWARD_MAX: std::time::Duration = std::time::Duration::from_secs(10);

pub(super) fn check_delay(c: &mut Checker, s: &Scenario, f: &NetDelay, path: &str) {
    match (&f.peer, &f.toward) {
        (Some(peer), None) => {
            check_iface(c, s, &f.host, peer, f.vlan.as_ref(), path);
            if f.protocol.is_some() || f.port.is_some() {
                c.at(
                    f.host.referenced,
                    path.to_string(),
                    "`protocol` and `port` go with `toward`: netem delays all the \
                     interface sends"
                        .into(),
                    None,
                );
            }
        }
        (None, Some(toward)) => check_delay_toward(c, s, f, toward, path),
        _ => c.at(
            f.host.referenced,
            path.to_string(),
            "say either `peer` (netem on the link to it) or `toward` (a staging \
             client's delay toward the remote host)"
                .into(),
            None,
        ),
    }
    if f.jitter.is_some_and(|j| j.0 > f.delay.0) {
        c.at(
            f.host.referenced,
            format!("{path}.jitter"),
            "jitter is larger than the delay".into(),
            Some("netem varies the delay by ± jitter".into()),
        );
    }
}

/// `toward` delays through a staging rehearsal's expiring table: a fixed
/// delay toward one remote host, with nothing to put back if the run dies.
fn check_delay_toward(
    c: &mut Checker,
    s: &Scenario,
    f: &NetDelay,
    toward: &Spanned<String>,
    path: &str,
) {
    c.reference(&f.host, format!("{path}.host"), "host", hosts(s));
    let remotes = super::validate::remote_hosts(s);
    let is_addr = toward.value.parse::<std::net::Ipv4Addr>().is_ok();
    if remotes.is_empty() {
        c.at(
            toward.referenced,
            format!("{path}.toward"),
            "`toward` delays what a staging client sends to its remote server".into(),
            Some("on a link of the run's own, name the `peer`: netem delays its interface".into()),
        );
    } else if !is_addr && !remotes.contains(toward.value.as_str()) {
        c.at(
            toward.referenced,
            format!("{path}.toward"),
            format!("`{}` is not the rehearsal's remote host", toward.value),
            Some(format!(
                "remote hosts: {}",
                remotes.into_iter().collect::<Vec<_>>().join(", ")
            )),
        );
    }
    if let Some(v) = &f.vlan {
        c.at(
            v.referenced,
            format!("{path}.vlan"),
            "`vlan` picks a link's interface; `toward` delays by address".into(),
            None,
        );
    }
    // The run's table keys its sets by address, or address, protocol and
    // port: one needs the other.
    if f.port.is_some() != matches!(f.protocol, Some(NetProtocol::Tcp | NetProtocol::Udp)) {
        c.at(
            toward.referenced,
            format!("{path}.port"),
            "a staging delay names a `port` with `protocol: tcp` or `udp`, or neither".into(),
            Some("e.g. protocol: tcp, port: 2049".into()),
        );
    }
    if f.jitter.is_some() {
        c.at(
            toward.referenced,
            format!("{path}.jitter"),
            "a staging delay is fixed: each packet waits `delay`, in order".into(),
            Some("leave `jitter` out".into()),
        );
    }
    if f.delay.0 > DELAY_TOWARD_MAX {
        c.at(
            toward.referenced,
            format!("{path}.delay"),
            format!(
                "{} is longer than a staging delay may hold packets (10s)",
                f.delay
            ),
            Some("for longer, cut instead: net.block".into()),
        );
    }
}

pub(super) fn check_loss(c: &mut Checker, s: &Scenario, f: &NetLoss, path: &str) {
    check_iface(c, s, &f.host, &f.peer, f.vlan.as_ref(), path);
    if !(f.percent.value > 0.0 && f.percent.value <= 100.0) {
        c.at(
            f.percent.referenced,
            format!("{path}.percent"),
            format!("loss of {}% is outside (0, 100]", f.percent.value),
            Some("e.g. percent: 30".into()),
        );
    }
}

/// A cut's `percent` as basis points (1 to 9999), if it is one: the kernel
/// draws in steps of 0.01%.
pub(crate) fn percent_basis_points(percent: f64) -> Option<u16> {
    let bp = (percent * 100.0).round();
    ((1.0..=9999.0).contains(&bp) && (percent * 100.0 - bp).abs() < 1e-6).then_some(bp as u16)
}
