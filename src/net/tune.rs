//! Per-interface knobs a scenario turns: MTU (set, and restore on heal),
//! offloads, and the counters that prove a fault did something.

use super::ip::{ip_in, ip_output};
use super::{NetError, Netns, command_in};

/// Counters of one interface (`ip -s -j link show`, stats64).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub mtu: u32,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub rx_errors: u64,
    /// Where a too-long frame lands on a veth (the stacked-VLAN drop).
    pub rx_dropped: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

pub fn link_stats(ns: &Netns, ifname: &str) -> Result<LinkStats, NetError> {
    let args = ["-s", "-j", "link", "show", "dev", ifname];
    let out = ip_output(ns.name(), &args)?;
    parse_link_stats(&out).map_err(|why| NetError::BadOutput {
        command: format!("ip -n {} {}", ns.name(), args.join(" ")),
        why,
    })
}

fn parse_link_stats(json: &str) -> Result<LinkStats, String> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let link = v.get(0).ok_or("no link in output")?;
    let n = |dir: &str, field: &str| -> Result<u64, String> {
        link["stats64"][dir][field]
            .as_u64()
            .ok_or_else(|| format!("no stats64.{dir}.{field}"))
    };
    Ok(LinkStats {
        mtu: link["mtu"].as_u64().ok_or("no mtu")? as u32,
        rx_packets: n("rx", "packets")?,
        rx_bytes: n("rx", "bytes")?,
        rx_errors: n("rx", "errors")?,
        rx_dropped: n("rx", "dropped")?,
        tx_packets: n("tx", "packets")?,
        tx_bytes: n("tx", "bytes")?,
        tx_errors: n("tx", "errors")?,
        tx_dropped: n("tx", "dropped")?,
    })
}

/// Offloads that hide real frame sizes on a veth: with them on, a VLAN tag
/// travels as skb metadata and GSO skips the MTU check, so an oversized
/// stacked-VLAN frame is never dropped (measured, scenario-format.md).
pub const SIZE_HIDING_OFFLOADS: [&str; 7] = ["tso", "gso", "gro", "tx", "rx", "txvlan", "rxvlan"];

/// `ethtool -K <ifname> <feature> on|off …` inside `ns` for every feature
/// in [`SIZE_HIDING_OFFLOADS`]. ethtool succeeds if some features are fixed
/// as long as it could change the others.
pub fn set_offloads(ns: &Netns, ifname: &str, on: bool) -> Result<(), NetError> {
    let state = if on { "on" } else { "off" };
    let mut cmd = command_in(ns, "ethtool");
    cmd.args(["-K", ifname]);
    for f in SIZE_HIDING_OFFLOADS {
        cmd.args([f, state]);
    }
    let place = format!("netns {}", ns.name());
    let input = crate::tools::Input {
        stdin: None,
        place: Some(&place),
    };
    Ok(crate::tools::output_with(cmd, input).map(drop)?)
}

/// The `net.mtu` fault: an MTU change that `restore` (or drop) undoes.
#[derive(Debug)]
pub struct MtuChange {
    netns: String,
    ifname: String,
    original: u32,
    restored: bool,
}

impl MtuChange {
    pub fn apply(ns: &Netns, ifname: &str, mtu: u32) -> Result<MtuChange, NetError> {
        let original = link_stats(ns, ifname)?.mtu;
        ip_in(
            ns.name(),
            &["link", "set", "dev", ifname, "mtu", &mtu.to_string()],
        )?;
        tracing::info!(netns = ns.name(), ifname, original, mtu, "mtu changed");
        Ok(MtuChange {
            netns: ns.name().to_string(),
            ifname: ifname.to_string(),
            original,
            restored: false,
        })
    }

    pub fn original(&self) -> u32 {
        self.original
    }

    pub fn restore(mut self) -> Result<(), NetError> {
        self.undo()
    }

    fn undo(&mut self) -> Result<(), NetError> {
        if self.restored {
            return Ok(());
        }
        self.restored = true;
        if !crate::sys::ns::netns_path(&self.netns).exists() {
            return Ok(());
        }
        let mtu = self.original.to_string();
        ip_in(
            &self.netns,
            &["link", "set", "dev", &self.ifname, "mtu", &mtu],
        )
    }
}

impl Drop for MtuChange {
    fn drop(&mut self) {
        if let Err(e) = self.undo() {
            tracing::error!(ifname = %self.ifname, netns = %self.netns, error = %e, "mtu not restored");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats64_are_read() {
        let json = r#"[{"ifindex":3,"ifname":"va","mtu":1500,"stats64":{
            "rx":{"bytes":10,"packets":2,"errors":0,"dropped":7,"over_errors":0,"multicast":0},
            "tx":{"bytes":30,"packets":4,"errors":1,"dropped":0,"carrier_errors":0,"collisions":0}}}]"#;
        let s = parse_link_stats(json).unwrap();
        assert_eq!(
            (s.mtu, s.rx_packets, s.rx_dropped, s.tx_bytes, s.tx_errors),
            (1500, 2, 7, 30, 1)
        );
        assert!(parse_link_stats("[]").is_err());
    }
}
