//! The portmapper's table of registered services and the universal address
//! format (RFC 1833 §2: "h1.h2.h3.h4.p1.p2" for IPv4, RFC 5665 §5.2.3.4 for
//! IPv6), shared by the v2 and v3/v4 wire protocols.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, MutexGuard};

/// At most this many registrations, so a local peer looping on SET cannot
/// grow the table without bound (rpcbind has no limit; we have no reason to).
pub const MAX_REGISTRATIONS: usize = 1024;

/// RFC 1833 §2.1 rpcb: one registered service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub prog: u32,
    pub vers: u32,
    /// "tcp", "udp", "tcp6", "udp6" (RFC 5665 netids).
    pub netid: String,
    /// Universal address.
    pub addr: String,
    pub owner: String,
}

impl Registration {
    pub fn new(prog: u32, vers: u32, netid: &str, addr: SocketAddr, owner: &str) -> Registration {
        Registration {
            prog,
            vers,
            netid: netid.to_string(),
            addr: uaddr(addr),
            owner: owner.to_string(),
        }
    }
}

/// The netid of a transport on an address family.
pub fn netid(ipproto: u32, addr: &SocketAddr) -> &'static str {
    match (ipproto, addr.is_ipv4()) {
        (6, true) => "tcp",
        (6, false) => "tcp6",
        (_, true) => "udp",
        (_, false) => "udp6",
    }
}

/// The IP protocol number of a netid, for the v2 view of the table.
pub fn ipproto(netid: &str) -> Option<u32> {
    match netid {
        "tcp" => Some(6),
        "udp" => Some(17),
        _ => None,
    }
}

/// Formats a socket address as a universal address.
pub fn uaddr(addr: SocketAddr) -> String {
    let p = addr.port();
    format!("{}.{}.{}", addr.ip(), p >> 8, p & 0xff)
}

/// Parses a universal address.
pub fn parse_uaddr(s: &str) -> Option<SocketAddr> {
    let mut parts = s.rsplitn(3, '.');
    let lo: u16 = parts.next()?.parse().ok()?;
    let hi: u16 = parts.next()?.parse().ok()?;
    let ip: IpAddr = parts.next()?.parse().ok()?;
    if hi > 255 || lo > 255 {
        return None;
    }
    Some(SocketAddr::new(ip, hi << 8 | lo))
}

#[derive(Debug, Default)]
pub struct PortRegistry {
    entries: Mutex<Vec<Registration>>,
}

impl PortRegistry {
    pub fn new() -> PortRegistry {
        PortRegistry::default()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Registration>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// RFC 1833 SET: refused (false) when (prog, vers, netid) is already
    /// registered, the address is not a universal address, or the table is full.
    pub fn set(&self, reg: Registration) -> bool {
        if parse_uaddr(&reg.addr).is_none() {
            return false;
        }
        let mut entries = self.lock();
        if entries.len() >= MAX_REGISTRATIONS
            || entries
                .iter()
                .any(|e| e.prog == reg.prog && e.vers == reg.vers && e.netid == reg.netid)
        {
            return false;
        }
        tracing::debug!(prog = reg.prog, vers = reg.vers, netid = %reg.netid, addr = %reg.addr, "portmap set");
        entries.push(reg);
        true
    }

    /// RFC 1833 UNSET: removes (prog, vers) on `netid`, or on every netid
    /// when `None`; false when nothing matched.
    pub fn unset(&self, prog: u32, vers: u32, netid: Option<&str>) -> bool {
        let mut entries = self.lock();
        let before = entries.len();
        entries
            .retain(|e| !(e.prog == prog && e.vers == vers && netid.is_none_or(|n| n == e.netid)));
        entries.len() != before
    }

    /// The registration of (prog, vers) on `netid`.
    pub fn lookup(&self, prog: u32, vers: u32, netid: &str) -> Option<Registration> {
        self.lock()
            .iter()
            .find(|e| e.prog == prog && e.vers == vers && e.netid == netid)
            .cloned()
    }

    pub fn list(&self) -> Vec<Registration> {
        self.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn universal_addresses_round_trip() {
        let a: SocketAddr = "10.1.2.3:2049".parse().unwrap();
        assert_eq!(uaddr(a), "10.1.2.3.8.1");
        assert_eq!(parse_uaddr("10.1.2.3.8.1"), Some(a));
        let b: SocketAddr = "[fd00::1]:111".parse().unwrap();
        assert_eq!(uaddr(b), "fd00::1.0.111");
        assert_eq!(parse_uaddr("fd00::1.0.111"), Some(b));
        assert_eq!(parse_uaddr("10.1.2.3.300.1"), None);
        assert_eq!(parse_uaddr("nonsense"), None);
        assert_eq!(parse_uaddr(""), None);
    }

    #[test]
    fn set_unset_lookup() {
        let r = PortRegistry::new();
        let a: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        assert!(r.set(Registration::new(100024, 1, "udp", a, "statd")));
        assert!(!r.set(Registration::new(100024, 1, "udp", a, "statd")));
        assert!(r.set(Registration::new(100024, 1, "tcp", a, "statd")));
        assert_eq!(r.lookup(100024, 1, "tcp").unwrap().addr, "127.0.0.1.15.160");
        assert!(r.unset(100024, 1, Some("udp")));
        assert!(r.lookup(100024, 1, "udp").is_none());
        assert!(r.unset(100024, 1, None));
        assert!(r.list().is_empty());
        assert!(!r.unset(100024, 1, None));
        let mut bad = Registration::new(1, 1, "tcp", a, "x");
        bad.addr = "not-an-address".into();
        assert!(!r.set(bad));
    }
}
