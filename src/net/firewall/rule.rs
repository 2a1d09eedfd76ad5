//! What a firewall rule matches and does, backend-neutral, and its expansion
//! into one-direction selectors.

use std::net::IpAddr;

use super::NetError;

/// What happens to a matched packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Silently discarded: the peer sees a partition (timeouts).
    Drop,
    /// Answered: TCP gets a reset (ECONNREFUSED), everything else an ICMP
    /// host-unreachable (EHOSTUNREACH), so failures are prompt.
    Reject,
    /// Held this long, then let through: only the expiring firewall of a
    /// staging client does this (its packets go to a `Delayer`).
    Delay(std::time::Duration),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
    /// ICMP for IPv4, ICMPv6 for IPv6.
    Icmp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// Everything between two addresses, in both directions.
    Between(IpAddr, IpAddr),
    /// Packets toward `addr`, optionally only one protocol and port.
    Toward {
        addr: IpAddr,
        protocol: Option<Protocol>,
        /// Requires `protocol` Tcp or Udp.
        port: Option<u16>,
        /// Only packets of at least this many bytes (IP header included):
        /// a connection opens and small calls pass while larger ones vanish.
        min_size: Option<u16>,
        /// Only this share of the matching packets, in basis points (1 to
        /// 9999), drawn at random for each: a lossy path rather than a cut.
        share: Option<u16>,
    },
}

/// Basis points: 10000 is every packet.
pub const SHARE_WHOLE: u16 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub matching: Match,
    pub action: Action,
}

impl Rule {
    pub fn block_between(a: IpAddr, b: IpAddr) -> Rule {
        Rule {
            matching: Match::Between(a, b),
            action: Action::Drop,
        }
    }

    pub fn reject_between(a: IpAddr, b: IpAddr) -> Rule {
        Rule {
            matching: Match::Between(a, b),
            action: Action::Reject,
        }
    }
}

/// A rule's handle within its firewall, stable until it is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleId(pub(super) u32);

impl RuleId {
    /// The tag in each kernel rule's comment: `sq:<n>`.
    pub(super) fn comment(self) -> String {
        format!("sq:{}", self.0)
    }

    pub fn number(self) -> u32 {
        self.0
    }
}

/// One direction of one rule: what both backends turn into kernel rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Selector {
    pub v6: bool,
    pub saddr: Option<IpAddr>,
    pub daddr: Option<IpAddr>,
    pub protocol: Option<Protocol>,
    pub port: Option<u16>,
    /// Packets of at least this many bytes, IP header included.
    pub min_size: Option<u16>,
    /// A random share of them, in basis points.
    pub share: Option<u16>,
}

impl Rule {
    pub(super) fn selectors(&self) -> Result<Vec<Selector>, NetError> {
        let bad = |why: &str| NetError::BadRule {
            rule: format!("{self:?}"),
            why: why.to_string(),
        };
        match self.matching {
            Match::Between(a, b) => {
                if a.is_ipv6() != b.is_ipv6() {
                    return Err(bad("addresses of different families"));
                }
                if a == b {
                    return Err(bad("both ends are the same address"));
                }
                let one = |s, d| Selector {
                    v6: a.is_ipv6(),
                    saddr: Some(s),
                    daddr: Some(d),
                    protocol: None,
                    port: None,
                    min_size: None,
                    share: None,
                };
                Ok(vec![one(a, b), one(b, a)])
            }
            Match::Toward {
                addr,
                protocol,
                port,
                min_size,
                share,
            } => {
                if port.is_some() && !matches!(protocol, Some(Protocol::Tcp | Protocol::Udp)) {
                    return Err(bad("a port needs protocol tcp or udp"));
                }
                if share.is_some_and(|s| s == 0 || s >= SHARE_WHOLE) {
                    return Err(bad("a share is 1 to 9999 basis points"));
                }
                Ok(vec![Selector {
                    v6: addr.is_ipv6(),
                    saddr: None,
                    daddr: Some(addr),
                    protocol,
                    port,
                    min_size,
                    share,
                }])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn between_expands_to_both_directions() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let s = Rule::block_between(a, b).selectors().unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].saddr, s[0].daddr), (Some(a), Some(b)));
        assert_eq!((s[1].saddr, s[1].daddr), (Some(b), Some(a)));
    }

    #[test]
    fn nonsense_is_refused() {
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let v6: IpAddr = "fd00::1".parse().unwrap();
        assert!(Rule::block_between(v4, v6).selectors().is_err());
        assert!(Rule::block_between(v4, v4).selectors().is_err());
        let port_only = Rule {
            matching: Match::Toward {
                addr: v4,
                protocol: None,
                port: Some(2049),
                min_size: None,
                share: None,
            },
            action: Action::Drop,
        };
        assert!(port_only.selectors().is_err());
    }
}
