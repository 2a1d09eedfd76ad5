//! iproute2 as the link/address backend; every error carries the full
//! command line and stderr.

use std::process::Command;

use super::{NetError, Netns};

/// Runs `ip -n <netns> <args…>` and fails with the command line and stderr.
pub(crate) fn ip_in(netns: &str, args: &[&str]) -> Result<(), NetError> {
    let mut cmd = Command::new("ip");
    cmd.arg("-n").arg(netns).args(args);
    Ok(crate::tools::run(cmd)?)
}

/// Adds `cidr` (e.g. `10.0.0.1/24`) to `ifname` inside `ns`.
pub fn add_address(ns: &Netns, ifname: &str, cidr: &str) -> Result<(), NetError> {
    ip_in(ns.name(), &["addr", "add", cidr, "dev", ifname])
}

pub fn set_up(ns: &Netns, ifname: &str) -> Result<(), NetError> {
    ip_in(ns.name(), &["link", "set", "dev", ifname, "up"])
}

pub fn set_mtu(ns: &Netns, ifname: &str, mtu: u32) -> Result<(), NetError> {
    ip_in(
        ns.name(),
        &["link", "set", "dev", ifname, "mtu", &mtu.to_string()],
    )
}

/// Routes `dst` (an address with prefix) through `ifname` inside `ns`,
/// replacing any route to it.
pub fn route_via(ns: &Netns, dst: &str, ifname: &str) -> Result<(), NetError> {
    ip_in(ns.name(), &["route", "replace", dst, "dev", ifname])
}

/// Runs `ip -n <netns> <args…>` and returns its stdout.
pub fn ip_output(netns: &str, args: &[&str]) -> Result<String, NetError> {
    let mut cmd = Command::new("ip");
    cmd.arg("-n").arg(netns).args(args);
    Ok(crate::tools::output(cmd)?)
}
