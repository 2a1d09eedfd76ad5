//! The `net.delay` / `net.loss` faults: a netem root qdisc on one interface
//! (`tc qdisc add dev X root netem …`), with its counters as proof it fired.
//! Needs sch_netem, which the dev hosts lack: use it in a guest.

use std::time::Duration;

use super::{NetError, Netns};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct NetemSpec {
    pub delay: Option<Duration>,
    /// Only with `delay`.
    pub jitter: Option<Duration>,
    /// 0.0..=100.0
    pub loss_percent: Option<f64>,
}

impl NetemSpec {
    /// The words after `netem`.
    pub fn tc_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(d) = self.delay {
            a.extend(["delay".to_string(), format!("{}us", d.as_micros())]);
            if let Some(j) = self.jitter {
                a.push(format!("{}us", j.as_micros()));
            }
        }
        if let Some(p) = self.loss_percent {
            a.extend(["loss".to_string(), format!("{p}%")]);
        }
        a
    }
}

/// Counters of a qdisc (`tc -s -j qdisc show`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QdiscStats {
    pub packets: u64,
    pub bytes: u64,
    /// Packets netem discarded (its `loss`).
    pub drops: u64,
}

/// A netem qdisc installed as the root of an interface; removed on drop
/// (the interface's default qdisc comes back).
#[derive(Debug)]
pub struct Netem {
    netns: String,
    ifname: String,
    removed: bool,
}

fn tc(netns: &str, args: &[&str]) -> Result<String, NetError> {
    let mut cmd = std::process::Command::new("tc");
    cmd.args(["-n", netns]).args(args);
    Ok(crate::tools::output(cmd)?)
}

impl Netem {
    pub fn add(ns: &Netns, ifname: &str, spec: &NetemSpec) -> Result<Netem, NetError> {
        let words = spec.tc_args();
        if words.is_empty() {
            return Err(NetError::BadRule {
                rule: format!("{spec:?}"),
                why: "netem with neither delay nor loss".into(),
            });
        }
        let mut args = vec!["qdisc", "add", "dev", ifname, "root", "netem"];
        args.extend(words.iter().map(String::as_str));
        tc(ns.name(), &args)?;
        tracing::info!(netns = ns.name(), ifname, ?spec, "netem added");
        Ok(Netem {
            netns: ns.name().to_string(),
            ifname: ifname.to_string(),
            removed: false,
        })
    }

    pub fn stats(&self) -> Result<QdiscStats, NetError> {
        let args = ["-s", "-j", "qdisc", "show", "dev", &self.ifname, "root"];
        let out = tc(&self.netns, &args)?;
        parse_netem_stats(&out).map_err(|why| NetError::BadOutput {
            command: format!("tc -n {} {}", self.netns, args.join(" ")),
            why,
        })
    }

    pub fn remove(mut self) -> Result<(), NetError> {
        self.undo()
    }

    fn undo(&mut self) -> Result<(), NetError> {
        if self.removed {
            return Ok(());
        }
        self.removed = true;
        if !crate::sys::ns::netns_path(&self.netns).exists() {
            return Ok(());
        }
        tc(&self.netns, &["qdisc", "del", "dev", &self.ifname, "root"]).map(drop)
    }
}

impl Drop for Netem {
    fn drop(&mut self) {
        if let Err(e) = self.undo() {
            tracing::error!(ifname = %self.ifname, netns = %self.netns, error = %e, "netem left behind");
        }
    }
}

fn parse_netem_stats(json: &str) -> Result<QdiscStats, String> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let q = v
        .as_array()
        .into_iter()
        .flatten()
        .find(|q| q["kind"] == "netem")
        .ok_or("no netem qdisc")?;
    let n = |f: &str| q[f].as_u64().ok_or_else(|| format!("no {f}"));
    Ok(QdiscStats {
        packets: n("packets")?,
        bytes: n("bytes")?,
        drops: n("drops")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_to_tc_words() {
        let s = NetemSpec {
            delay: Some(Duration::from_millis(100)),
            jitter: Some(Duration::from_millis(5)),
            loss_percent: Some(10.0),
        };
        assert_eq!(s.tc_args(), ["delay", "100000us", "5000us", "loss", "10%"]);
        assert!(NetemSpec::default().tc_args().is_empty());
    }

    #[test]
    fn stats_of_the_netem_qdisc() {
        let json = r#"[{"kind":"netem","handle":"8001:","root":true,"bytes":840,"packets":10,"drops":3,"overlimits":0}]"#;
        assert_eq!(
            parse_netem_stats(json).unwrap(),
            QdiscStats {
                packets: 10,
                bytes: 840,
                drops: 3
            }
        );
        assert!(parse_netem_stats(r#"[{"kind":"noqueue"}]"#).is_err());
    }
}
