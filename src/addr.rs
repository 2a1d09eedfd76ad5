//! Address prefixes (`10.77.0.1/24`, `10.0.0.0/8`, `::1`), parsed once:
//! a scenario's host addresses and export clients, the NFS server's export
//! table and its fault hook's client match all hold this one type.

use std::net::IpAddr;

/// An address with a prefix length; without `/len` it is the whole address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid client network {0:?}")]
pub struct CidrError(pub String);

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, CidrError> {
        let bad = || CidrError(s.to_string());
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.parse::<u8>().map_err(|_| bad())?,
            None => max,
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(Cidr { addr, prefix })
    }

    /// The address as written (a host's own address, not the network's).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The address if it is IPv4 (every scenario host address is).
    pub fn ipv4(&self) -> Option<std::net::Ipv4Addr> {
        match self.addr {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        }
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d.
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - self.prefix as u32).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - self.prefix as u32).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_contains_its_network_and_mapped_v4() {
        let c = Cidr::parse("10.77.0.1/24").unwrap();
        assert_eq!(c.addr().to_string(), "10.77.0.1");
        assert_eq!(c.prefix(), 24);
        assert!(c.contains("10.77.0.200".parse().unwrap()));
        assert!(c.contains("::ffff:10.77.0.9".parse().unwrap()));
        assert!(!c.contains("10.78.0.1".parse().unwrap()));
        assert_eq!(Cidr::parse("::1").unwrap().prefix(), 128);
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("host").is_err());
    }
}
