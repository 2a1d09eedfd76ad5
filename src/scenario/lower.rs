//! The validated YAML model, lowered into the plan the engine runs: spans
//! dropped, references turned into indices or resolved values, strings
//! parsed once. Runs only after `validate` found nothing, so a lookup that
//! fails here is a validator bug, and says so.

use super::model::{self, Scenario};
use super::nfs_faults::NfsCallMatch;
use super::validate::{flatten_steps, parse_cidr};
use crate::addr::Cidr;
use crate::block::DmTarget;
use crate::net::{Match, Protocol};
use crate::nfs::names;
use crate::nfs::nfs4::status::sequence_flags;
use crate::nfs::{CallMatch, FaultAction, FaultRule};
use crate::plan::{
    AbortProbe, Action, Expectation, ExportOption, Fault, Host, Image, KernelFeature, KernelRange,
    KernelVersion, Link, LinkEnd, NetLink, NfsExport, NfsMount, NfsServer, NfsVersion, Plan,
    ProbeCheck, Requires, SeedContent, SeedFile, Step, Window, Workload, Xfail,
};
use regex::Regex;
use std::collections::BTreeMap;
use std::net::IpAddr;

const VALIDATED: &str = "checked by validate before lowering";

/// Lowers `s` as the matrix case with `values` (empty without a matrix):
/// the `cases:` rules that match it add their requirements and known failure.
pub(super) fn lower(s: &Scenario, values: &[(String, String)]) -> Plan {
    let hosts = s
        .hosts
        .iter()
        .map(|(name, h)| {
            let host = Host {
                addr: h
                    .addr
                    .as_ref()
                    .map(|a| parse_cidr(&a.value).expect(VALIDATED)),
                statd: h.statd.as_ref().map(|k| k.value),
            };
            (name.clone(), host)
        })
        .collect();
    let mut plan = Plan {
        id: s.id.value.clone(),
        title: s.title.clone(),
        source: s.source.clone(),
        tags: s.tags.clone(),
        requires: Requires::default(),
        timeout: s.timeout.0,
        nlm_timeout: s.kernel.nlm_timeout.as_ref().map(|t| t.value.0),
        hosts,
        links: s.links.iter().map(link).collect(),
        nfs_servers: s
            .nfs_servers
            .iter()
            .map(|(name, srv)| (name.clone(), nfs_server(srv)))
            .collect(),
        mounts: s.mounts.iter().map(mount).collect(),
        images: s.images.iter().map(image).collect(),
        workloads: s.workloads.iter().map(workload).collect(),
        steps: Vec::new(),
        expect: s.expect.iter().map(|e| expectation(s, &e.value)).collect(),
        abort: s.abort.iter().enumerate().map(abort_probe).collect(),
        data_check: s
            .data_check
            .as_ref()
            .map_or_else(Default::default, |d| d.value),
        kmsg_allow: s.kmsg_allow.iter().map(|p| regex(&p.value)).collect(),
        xfail: s.xfail.as_ref().map(xfail),
    };
    plan.steps = steps(s, &plan);
    plan.requires = requires(s, &plan);
    for m in &mut plan.mounts {
        m.must_fail = plan
            .expect
            .iter()
            .any(|e| matches!(e, Expectation::MountFails { mount, .. } if *mount == m.id));
    }
    for rule in s.cases.iter().filter(|r| r.applies_to(values)) {
        if let Some(r) = &rule.requires {
            add_requirements(&mut plan.requires, r);
        }
        if let Some(x) = &rule.xfail {
            plan.xfail = Some(xfail(x));
        }
    }
    plan
}

/// A case rule's `requires:` on top of the file's: features and tools are
/// added; targets, when given, narrow the file's (or set them, if it has none).
fn add_requirements(to: &mut Requires, more: &model::Requires) {
    for f in &more.kernel_features {
        if !to.kernel_features.contains(f) {
            to.kernel_features.push(*f);
        }
    }
    for t in &more.tools {
        if !to.tools.contains(t) {
            to.tools.push(t.clone());
        }
    }
    if !more.target.is_empty() {
        to.targets = if to.targets.is_empty() {
            more.target.clone()
        } else {
            to.targets
                .iter()
                .copied()
                .filter(|t| more.target.contains(t))
                .collect()
        };
    }
}

/// What the scenario asks for, plus what its world and faults imply, so no
/// scenario forgets to ask; an image on a dm volume cannot even be built
/// without device-mapper.
fn requires(s: &Scenario, plan: &Plan) -> Requires {
    let mut features = s.requires.kernel_features.clone();
    let faults = || {
        plan.steps.iter().filter_map(|st| match &st.action {
            Action::Fault { fault, .. } => Some(fault),
            _ => None,
        })
    };
    for (needed, f) in [
        (
            plan.links.iter().any(|l| !l.vlans.is_empty()),
            KernelFeature::Vlan,
        ),
        (
            faults().any(|f| matches!(f, Fault::NetDelay { .. } | Fault::NetLoss { .. })),
            KernelFeature::Netem,
        ),
        (plan.images.iter().any(|i| i.dm), KernelFeature::Dm),
        // /proc/sys/fs/nfs/nlm_timeout is lockd's, which comes with NFS.
        (plan.nlm_timeout.is_some(), KernelFeature::Nfs),
    ] {
        if needed && !features.contains(&f) {
            features.push(f);
        }
    }
    Requires {
        targets: s.requires.target.clone(),
        kernel_features: features,
        tools: s.requires.tools.clone(),
    }
}

fn vlan_mtus(m: &BTreeMap<u16, serde_saphyr::Spanned<u32>>) -> BTreeMap<u16, u32> {
    m.iter().map(|(id, mtu)| (*id, mtu.value)).collect()
}

fn link(l: &model::Link) -> Link {
    Link {
        between: [l.between[0].value.clone(), l.between[1].value.clone()],
        mtu: l.mtu,
        switch: l.switch.as_ref().map(|s| s.value.clone()),
        vlans: l.vlans.iter().map(|v| v.value).collect(),
        offloads: l.offloads,
        vlan_mtu: vlan_mtus(&l.vlan_mtu),
        ends: l
            .ends
            .iter()
            .map(|(host, end)| {
                let end = LinkEnd {
                    mtu: end.mtu.as_ref().map(|m| m.value),
                    vlan_mtu: vlan_mtus(&end.vlan_mtu),
                };
                (host.clone(), end)
            })
            .collect(),
    }
}

fn nfs_server(srv: &model::NfsServer) -> NfsServer {
    NfsServer {
        host: srv.host.value.clone(),
        kind: srv.kind.as_ref().map(|k| k.value).unwrap_or_default(),
        exports: srv
            .exports
            .iter()
            .map(|e| NfsExport {
                path: e.path.value.clone(),
                clients: e
                    .clients
                    .as_ref()
                    .map(|c| parse_cidr(&c.value).expect(VALIDATED)),
                read_only: e.options.contains(&ExportOption::Ro),
                squash: ExportOption::squash(&e.options),
                files: e.files.iter().map(seed_file).collect(),
            })
            .collect(),
    }
}

fn seed_file(f: &model::SeedFile) -> SeedFile {
    SeedFile {
        path: f.path.value.clone(),
        content: match (&f.size, &f.content) {
            (_, Some(text)) => SeedContent::Text(text.value.clone()),
            (Some(size), None) => SeedContent::Zeros(size.value.0),
            (None, None) => SeedContent::Text(String::new()),
        },
    }
}

fn mount(m: &model::NfsMount) -> NfsMount {
    NfsMount {
        id: m.id.value.clone(),
        host: m.host.value.clone(),
        server: m.server.value.clone(),
        export: m.export.value.clone(),
        at: m.at.value.clone(),
        options: m.options.as_ref().map(|o| o.value.clone()),
        version: NfsVersion::from_options(m.options.as_ref().map(|o| o.value.as_str()))
            .expect("validated: the mount's NFS version"),
        must_fail: false,
    }
}

fn image(i: &model::Image) -> Image {
    Image {
        id: i.id.value.clone(),
        host: i.host.value.clone(),
        file: i.file.value.clone(),
        size: i.size.value.0,
        mkfs: i.mkfs,
        at: i.at.value.clone(),
        dm: i.dm,
    }
}

fn workload(w: &model::Workload) -> Workload {
    Workload {
        id: w.id.value.clone(),
        host: w.host.value.clone(),
        op: w.op.value,
        path: w.path.as_ref().map(|p| p.value.clone()),
        every: w.every.0,
        fsync: w.fsync,
        deadline: w.deadline.0,
        record_size: w.record_size.0,
        count: w.count,
        lock: w.lock,
        hold: w.hold.map(|h| h.0).unwrap_or_default(),
        command: w.command.clone().unwrap_or_default(),
        mount: w.mount.as_ref().map(|m| m.value.clone()),
        parallel: w.parallel.unwrap_or(4),
        hold_open: w.hold_open,
        start: w.start.as_ref().map(|r| r.value.clone()),
        stop: w.stop.as_ref().map(|r| r.value.clone()),
    }
}

fn abort_probe((i, p): (usize, &model::AbortProbe)) -> AbortProbe {
    let check = if let Some(e) = &p.exec {
        ProbeCheck::Command {
            host: e.host.value.clone(),
            command: e.command.value.clone(),
        }
    } else if let Some(file) = &p.readable {
        ProbeCheck::Readable {
            path: file.value.clone(),
        }
    } else {
        ProbeCheck::OpLatency {
            workload: p.workload.as_ref().expect(VALIDATED).value.clone(),
        }
    };
    AbortProbe {
        id: p.id.value.clone(),
        path: format!("abort[{i}]"),
        check,
        every: p.every.as_ref().map_or(PROBE_EVERY, |e| e.value.0),
        within: p.within.value.0,
    }
}

/// How often an `exec` or `readable` probe runs unless it says.
const PROBE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

fn xfail(x: &model::Xfail) -> Xfail {
    Xfail {
        reason: x.reason.clone(),
        link: x.link.clone(),
        kernel: x.kernel.as_ref().map(kernel_range).unwrap_or_default(),
    }
}

fn kernel_range(k: &model::KernelRange) -> KernelRange {
    let version =
        |v: &Option<serde_saphyr::Spanned<String>>| v.as_ref().map(|v| KernelVersion::of(&v.value));
    KernelRange {
        from: version(&k.from),
        until: version(&k.until),
    }
}

fn regex(pattern: &str) -> Regex {
    Regex::new(pattern).expect(VALIDATED)
}

fn steps(s: &Scenario, plan: &Plan) -> Vec<Step> {
    let flat = flatten_steps(&s.steps);
    let index = |id: &str| {
        flat.iter()
            .position(|(_, st)| st.id.value == id)
            .expect(VALIDATED)
    };
    let mut out: Vec<Step> = flat
        .iter()
        .map(|(path, st)| {
            let action = if let Some(children) = &st.parallel {
                Action::Parallel(children.iter().map(|c| index(&c.id.value)).collect())
            } else if let Some(f) = &st.fault {
                Action::Fault {
                    fault: fault(&f.value, plan),
                    heal_after: st.for_.map(|d| d.0),
                    kept: st.heal.as_ref().is_some_and(|h| !h.value),
                }
            } else if let Some(message) = &st.pause {
                Action::Pause {
                    message: message.value.clone(),
                }
            } else if let Some(e) = &st.exec {
                Action::Exec {
                    host: e.host.value.clone(),
                    command: e.command.value.clone(),
                    ready: e
                        .ready
                        .as_ref()
                        .map(|r| Regex::new(&r.value).expect(VALIDATED)),
                }
            } else {
                Action::Wait(st.wait.expect(VALIDATED).0)
            };
            Step {
                id: st.id.value.clone(),
                path: path.clone(),
                group: None,
                after: st.after.as_ref().map(|a| index(&a.value)),
                offset: st.offset.map(|d| d.0).unwrap_or_default(),
                timeout: st.timeout.as_ref().map(|t| t.value.0),
                action,
            }
        })
        .collect();
    for g in 0..out.len() {
        if let Action::Parallel(members) = &out[g].action {
            for m in members.clone() {
                out[m].group = Some(g);
            }
        }
    }
    out
}

fn fault(f: &model::Fault, plan: &Plan) -> Fault {
    use model::Fault as F;
    let s = |r: &model::Ref| r.value.clone();
    match f {
        F::NfsUnexport { server, export } => Fault::NfsUnexport {
            server: s(server),
            export: s(export),
        },
        F::XfsShutdown { fs } => Fault::XfsShutdown { image: s(fs) },
        F::NetBlock(cut) => net_cut(cut, false, plan),
        F::NetReject(cut) => net_cut(cut, true, plan),
        F::NetMtu(m) => Fault::NetMtu {
            link: net_link(&m.host, &m.peer, &m.vlan),
            mtu: m.mtu.value,
        },
        F::NetDelay(d) => match (&d.peer, &d.toward) {
            (Some(peer), _) => Fault::NetDelay {
                link: net_link(&d.host, peer, &d.vlan),
                delay: d.delay.0,
                jitter: d.jitter.map(|j| j.0),
            },
            (None, Some(toward)) => Fault::DelayToward {
                host: d.host.value.clone(),
                matching: Match::Toward {
                    addr: toward
                        .value
                        .parse::<IpAddr>()
                        .unwrap_or_else(|_| addr_of(plan, &toward.value)),
                    protocol: d.protocol.map(protocol),
                    port: d.port.as_ref().map(|p| p.value),
                    min_size: None,
                    share: None,
                },
                delay: d.delay.0,
            },
            (None, None) => unreachable!("{VALIDATED}"),
        },
        F::NetLoss(l) => Fault::NetLoss {
            link: net_link(&l.host, &l.peer, &l.vlan),
            percent: l.percent.value,
        },
        F::BlockDetach { image } => Fault::BlockDetach { image: s(image) },
        F::BlockError { .. } | F::BlockDelay { .. } | F::BlockFlakey { .. } => {
            let image = f.block_image().expect("a block fault");
            Fault::BlockTable {
                image: s(image),
                target: dm_target(f),
            }
        }
        F::NfsDelay { .. }
        | F::NfsStall { .. }
        | F::NfsDrop { .. }
        | F::NfsClose { .. }
        | F::NfsError { .. } => {
            let (server, m) = f.nfs_call().expect("a call fault");
            let (matcher, nth) = m.resolve().expect(VALIDATED);
            let action = match f {
                F::NfsDelay { delay, .. } => FaultAction::Delay(delay.0),
                F::NfsStall { .. } => FaultAction::StallUntilHealed,
                F::NfsDrop { .. } => FaultAction::DropReply,
                F::NfsClose { .. } => FaultAction::CloseConnection,
                F::NfsError { status, .. } => {
                    FaultAction::ReplyStatus(names::status(&status.value).expect(VALIDATED))
                }
                _ => unreachable!("matched above"),
            };
            Fault::NfsCall {
                server: s(server),
                rule: FaultRule {
                    matcher,
                    action,
                    nth,
                },
            }
        }
        F::NfsRestart {
            server,
            lose_handles,
        } => Fault::NfsRestart {
            server: s(server),
            lose_handles: *lose_handles,
        },
        F::NfsExpireLease { server, client } => Fault::NfsExpireLease {
            server: s(server),
            // Validation made sure the host has an address.
            client: client
                .as_ref()
                .and_then(|h| plan.hosts.get(&h.value))
                .and_then(|h| h.addr.as_ref())
                .map(Cidr::addr),
        },
        F::NfsSequenceFlags { server, flags } => Fault::NfsSequenceFlags {
            server: s(server),
            // Validation made sure every name is known.
            flags: sequence_flags(flags.iter().map(|f| f.value.as_str())).unwrap_or(0),
        },
        F::NlmDown { server, mode } => Fault::NlmDown {
            server: s(server),
            mode: *mode,
        },
        F::NsmDown { server, mode } => Fault::NsmDown {
            server: s(server),
            mode: *mode,
        },
        F::NlmGrace { server } => Fault::NlmGrace { server: s(server) },
        F::ProcKill { host, daemon } => Fault::ProcKill {
            host: s(host),
            daemon: *daemon,
        },
        F::HostCrash { host } => Fault::HostCrash { host: s(host) },
    }
}

/// The dm table a `block.*` fault loads in place of the linear one.
fn dm_target(f: &model::Fault) -> DmTarget {
    use model::Fault as F;
    match f {
        F::BlockError { start, sectors, .. } => match (start, sectors) {
            (None, None) => DmTarget::Error,
            (start, sectors) => DmTarget::ErrorRange {
                start: start.as_ref().map_or(0, |s| s.value),
                sectors: sectors.as_ref().map_or(u64::MAX, |n| n.value),
            },
        },
        F::BlockDelay {
            delay, write_delay, ..
        } => DmTarget::Delay {
            read: delay.value.0,
            write: write_delay.as_ref().map(|w| w.value.0),
        },
        F::BlockFlakey { up, down, .. } => DmTarget::Flakey {
            up: up.value.0,
            down: down.value.0,
        },
        _ => DmTarget::Error,
    }
}

fn net_link(
    host: &model::Ref,
    peer: &model::Ref,
    vlan: &Option<serde_saphyr::Spanned<u16>>,
) -> NetLink {
    NetLink {
        host: host.value.clone(),
        peer: peer.value.clone(),
        vlan: vlan.as_ref().map(|v| v.value),
    }
}

fn protocol(p: model::NetProtocol) -> Protocol {
    match p {
        model::NetProtocol::Tcp => Protocol::Tcp,
        model::NetProtocol::Udp => Protocol::Udp,
        model::NetProtocol::Icmp => Protocol::Icmp,
    }
}

/// A host's address (validation made sure it has one).
fn addr_of(plan: &Plan, host: &str) -> IpAddr {
    plan.hosts[host]
        .addr
        .as_ref()
        .map(Cidr::addr)
        .expect(VALIDATED)
}

/// A cut's rule, with host names turned into their addresses.
fn net_cut(cut: &model::NetCut, reject: bool, plan: &Plan) -> Fault {
    let addr_of = |host: &str| addr_of(plan, host);
    let (host, matching) = match (&cut.between, &cut.host, &cut.toward) {
        (Some([a, b]), _, _) => (
            a.value.clone(),
            Match::Between(addr_of(&a.value), addr_of(&b.value)),
        ),
        (None, Some(host), Some(toward)) => {
            let addr = toward
                .value
                .parse::<IpAddr>()
                .unwrap_or_else(|_| addr_of(&toward.value));
            let protocol = cut.protocol.map(protocol);
            let matching = Match::Toward {
                addr,
                protocol,
                port: cut.port.as_ref().map(|p| p.value),
                min_size: cut.min_size.as_ref().map(|n| n.value),
                share: cut
                    .percent
                    .as_ref()
                    .map(|p| super::network::percent_basis_points(p.value).expect(VALIDATED)),
            };
            (host.value.clone(), matching)
        }
        _ => unreachable!("{VALIDATED}"),
    };
    Fault::NetCut {
        reject,
        host,
        matching,
    }
}

fn window(during: &model::During, after: &Option<model::Ref>) -> Window {
    Window {
        during: during
            .as_ref()
            .and_then(|d| Some((d.first()?.value.clone(), d.last()?.value.clone()))),
        after: after.as_ref().map(|a| a.value.clone()),
    }
}

fn expectation(sc: &model::Scenario, e: &model::Expectation) -> Expectation {
    use model::Expectation as E;
    let s = |r: &model::Ref| r.value.clone();
    match e {
        E::Errno {
            workload,
            errno,
            during,
            after,
        } => Expectation::Errno {
            workload: s(workload),
            errno: crate::errno::by_name(&errno.value).expect(VALIDATED),
            window: window(during, after),
        },
        E::NoErrors {
            workload,
            during,
            after,
        } => Expectation::NoErrors {
            workload: s(workload),
            window: window(during, after),
        },
        E::Kmsg {
            pattern,
            absent,
            during,
            after,
        } => Expectation::Kmsg {
            pattern: regex(&pattern.value),
            absent: *absent,
            window: window(during, after),
        },
        E::Hang {
            workload,
            state,
            wchan,
            stack,
            kernel,
            during,
            after,
        } => Expectation::Hang {
            workload: s(workload),
            state: *state,
            wchan: wchan.as_ref().map(|w| regex(&w.value)),
            stack: stack.as_ref().map(|k| regex(&k.value)),
            window: window(during, after),
            kernel: kernel.as_deref().map(kernel_range).unwrap_or_default(),
        },
        E::NoHang {
            workload,
            during,
            after,
        } => Expectation::NoHang {
            workload: s(workload),
            window: window(during, after),
        },
        E::StallsAtLeast {
            workload,
            duration,
            during,
            after,
        } => Expectation::StallsAtLeast {
            workload: s(workload),
            duration: duration.0,
            window: window(during, after),
        },
        E::ResumesWithin {
            workload,
            duration,
            after,
        } => Expectation::ResumesWithin {
            workload: s(workload),
            duration: duration.0,
            after: s(after),
        },
        E::Data { workload, verify } => Expectation::Data {
            workload: s(workload),
            verify: *verify,
        },
        E::ExitCode { step, code } => Expectation::ExitCode {
            step: s(step),
            code: *code,
        },
        E::FsState { fs, state, at } => Expectation::FsState {
            image: s(fs),
            state: *state,
            at: at.as_ref().map(s),
        },
        E::MountFails { mount, errno } => Expectation::MountFails {
            mount: s(mount),
            errno: errno
                .as_ref()
                .map(|e| crate::errno::by_name(&e.value).expect(VALIDATED)),
        },
        E::Mounted { mount, present, at } => Expectation::Mounted {
            mount: s(mount),
            present: *present,
            at: at.as_ref().map(s),
        },
        E::MutualExclusion { workloads } => Expectation::MutualExclusion {
            workloads: workloads
                .iter()
                .map(|w| {
                    let lock = sc
                        .workloads
                        .iter()
                        .find(|d| d.id.value == w.value)
                        .expect(VALIDATED)
                        .lock;
                    (s(w), lock.unwrap_or(crate::plan::LockMode::Ex))
                })
                .collect(),
        },
        E::Order {
            first,
            then,
            at_least,
            at_most,
        } => Expectation::Order {
            first: event_ref(&first.value),
            then: event_ref(&then.value),
            at_least: at_least.as_ref().map(|d| d.value.0),
            at_most: at_most.as_ref().map(|d| d.value.0),
        },
        E::NeverResumes { workload, after } => Expectation::NeverResumes {
            workload: s(workload),
            after: s(after),
        },
    }
}

/// A validated reference: exactly one of workload (with op), step or
/// fault (with at).
fn event_ref(r: &model::EventRef) -> crate::plan::EventRef {
    use crate::plan::EventRef as R;
    let at = || r.at.as_ref().expect(VALIDATED).value;
    match (&r.workload, &r.step, &r.fault) {
        (Some(w), None, None) => R::Op {
            workload: w.value.clone(),
            op: r.op.as_ref().expect(VALIDATED).value,
        },
        (None, Some(st), None) => R::Step {
            step: st.value.clone(),
            edge: at(),
        },
        (None, None, Some(f)) => R::Fault {
            step: f.value.clone(),
            edge: at(),
        },
        _ => panic!("{VALIDATED}"),
    }
}

impl NfsCallMatch {
    /// The hook's matcher and `nth`; None if a name does not resolve (the
    /// validator reports which, with the valid choices).
    pub(super) fn resolve(&self) -> Option<(CallMatch, Option<u64>)> {
        let target = names::call_target(
            self.program.as_ref().map(|p| p.value.as_str()),
            self.version.as_ref().map(|v| v.value),
            self.procedure.as_ref().map(|p| p.value.as_str()),
        )
        .ok()?;
        let client = match &self.client {
            Some(c) => Some(Cidr::parse(&c.value).ok()?),
            None => None,
        };
        let matcher = CallMatch {
            prog: target.prog,
            vers: target.vers,
            proc_: target.proc_,
            op: target.op,
            export: self
                .export
                .as_ref()
                .map(|e| crate::nfs::export::normalize_name(&e.value)),
            client,
        };
        Some((matcher, self.nth.as_ref().map(|n| n.value)))
    }
}
