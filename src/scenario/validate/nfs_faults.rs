//! Checks of the `nfs.*` call faults: the server and export exist, the
//! `match:` names a known program, procedure and client network, and the
//! status of `nfs.error` is an nfsstat3. Names come from the server's own
//! tables (`nfs::names`), so scenario and control socket agree.

use super::{Checker, closest};
use serde_saphyr::{Location, Spanned};

use crate::nfs::names::{self, UnknownName};
use crate::nfs::nfs4::status::{SEQUENCE_FLAGS, sequence_flags};
use crate::scenario::model::{Scenario, ServerKind};
use crate::scenario::nfs_faults::NfsCallMatch;
use crate::scenario::steps::Fault;

const PROGRAMS: [&str; 5] = ["nfs", "mount", "portmap", "nlm", "nsm"];

pub(super) fn check(c: &mut Checker, s: &Scenario, fault: &Fault, path: &str) {
    let server = match fault {
        Fault::NfsRestart { server, .. }
        | Fault::NfsExpireLease { server, .. }
        | Fault::NfsSequenceFlags { server, .. } => server,
        f => match f.nfs_call() {
            Some((server, _)) => server,
            None => return,
        },
    };
    let known = c.reference(
        server,
        format!("{path}.server"),
        "nfs server",
        s.nfs_servers.keys().map(String::as_str),
    );
    // knfsd restarts (Knfsd::restart) but keeps its handles: they name
    // the export's fsid and the inode.
    let knfsd_can = matches!(
        fault,
        Fault::NfsRestart {
            lose_handles: false,
            ..
        }
    );
    if known
        && let Some(kind) = &s.nfs_servers[&server.value].kind
        && kind.value != ServerKind::Inproc
        && !(kind.value == ServerKind::Knfsd && knfsd_can)
    {
        let hint = if kind.value == ServerKind::Knfsd {
            if matches!(fault, Fault::NfsRestart { .. }) {
                "knfsd keeps its file handles across a restart: drop `lose_handles`".to_string()
            } else if matches!(fault, Fault::NfsSequenceFlags { .. }) {
                "knfsd raises SEQUENCE status flags only from its own state: use kind: inproc"
                    .to_string()
            } else if matches!(fault, Fault::NfsExpireLease { .. }) {
                "knfsd's leases run out only with time: cut the client off (net.block \
                 `between` the hosts) for longer than its 90 s lease, or use kind: inproc"
                    .to_string()
            } else {
                format!(
                    "{} acts in stackquake's own server (kind: inproc); knfsd takes \
                     nfs.unexport, nfs.restart and network faults",
                    fault.kind()
                )
            }
        } else {
            format!(
                "{} acts in stackquake's own server (kind: inproc); a `{}` server has no fault hook",
                fault.kind(),
                kind.value.name()
            )
        };
        c.at(
            server.referenced,
            format!("{path}.server"),
            format!("`{}` is not an inproc server", server.value),
            Some(hint),
        );
    }
    if let Fault::NfsExpireLease {
        client: Some(host), ..
    } = fault
        && c.reference(
            host,
            format!("{path}.client"),
            "host",
            s.hosts.keys().map(String::as_str),
        )
        && s.hosts[&host.value].addr.is_none()
    {
        c.at(
            host.referenced,
            format!("{path}.client"),
            format!("host `{}` has no address", host.value),
            Some("the server knows its clients by the address they registered from: give the host an `addr`".into()),
        );
    }
    if let Fault::NfsSequenceFlags { flags, .. } = fault {
        check_sequence_flags(c, flags, server.referenced, &format!("{path}.flags"));
    }
    if let Some((_, m)) = fault.nfs_call() {
        let exports: Vec<&str> = if known {
            s.nfs_servers[&server.value]
                .exports
                .iter()
                .map(|e| e.path.value.as_str())
                .collect()
        } else {
            Vec::new()
        };
        check_match(c, m, known.then_some(exports), &format!("{path}.match"));
    }
    if let Fault::NfsError { status, .. } = fault
        && names::status(&status.value).is_none()
    {
        let wrong = status.value.to_ascii_uppercase();
        let wrong = if wrong.starts_with("NFS3") {
            wrong
        } else {
            format!("NFS3ERR_{wrong}")
        };
        let hint = match closest(&wrong, names::status_names()) {
            Some(n) => format!("did you mean `{n}`?"),
            None => format!(
                "valid: {}",
                names::status_names().collect::<Vec<_>>().join(", ")
            ),
        };
        c.at(
            status.referenced,
            format!("{path}.status"),
            format!("unknown NFS3 status `{}`", status.value),
            Some(hint),
        );
    }
}

fn check_match(c: &mut Checker, m: &NfsCallMatch, exports: Option<Vec<&str>>, path: &str) {
    // Resolved as the lowering will (names::call_target); the checks here
    // only explain a name that does not resolve.
    let version = m.version.as_ref().map(|v| v.value);
    let resolved = names::call_target(
        m.program.as_ref().map(|p| p.value.as_str()),
        version,
        m.procedure.as_ref().map(|p| p.value.as_str()),
    );
    match resolved {
        Ok(_) => {}
        Err(UnknownName::Program(_)) => {
            let p = m.program.as_ref().expect("only a named program is unknown");
            let hint = match closest(&p.value, PROGRAMS.iter().copied()) {
                Some(n) => format!("did you mean `{n}`?"),
                None => format!("valid: {} or an RPC program number", PROGRAMS.join(", ")),
            };
            c.at(
                p.referenced,
                format!("{path}.program"),
                format!("unknown RPC program `{}`", p.value),
                Some(hint),
            );
            return;
        }
        Err(UnknownName::Procedure(_)) => {
            let p = m
                .procedure
                .as_ref()
                .expect("only a named procedure is unknown");
            let program = m.program.as_ref().and_then(|p| names::program(&p.value));
            let v4_ops = crate::nfs::nfs4::ops::NAMES
                .iter()
                .filter(|n| !n.is_empty());
            let nfs = crate::nfs::nfs3::PROGRAM;
            let choices: Vec<&str> = match (program, version) {
                (None | Some(100003), Some(4)) => v4_ops.copied().collect(),
                (Some(prog), _) if prog != nfs => names::procedure_names(prog).to_vec(),
                (Some(_), _) => names::procedure_names(nfs)
                    .iter()
                    .chain(v4_ops)
                    .copied()
                    .collect(),
                (None, _) => names::procedure_names(nfs)
                    .iter()
                    .chain(&names::procedure_names(crate::nfs::mount::PROGRAM)[1..])
                    .chain(v4_ops)
                    .copied()
                    .collect(),
            };
            let of = match (&m.program, version) {
                (_, Some(4)) => "NFSv4 (COMPOUND operations)".to_string(),
                (Some(p), _) => format!("program {}", p.value),
                (None, _) => "NFSv3, MOUNT or NFSv4".to_string(),
            };
            let hint = match closest(&p.value, choices.iter().copied()) {
                Some(n) => format!("did you mean `{n}`?"),
                None if choices.is_empty() => "give this program's procedures by number".into(),
                None => format!("valid: {}", choices.join(", ")),
            };
            c.at(
                p.referenced,
                format!("{path}.procedure"),
                format!("unknown procedure `{}` of {of}", p.value),
                Some(hint),
            );
        }
    }
    if let (Some(e), Some(exports)) = (&m.export, exports) {
        c.reference(e, format!("{path}.export"), "export", exports);
    }
    if let Some(a) = &m.client
        && crate::nfs::export::Cidr::parse(&a.value).is_err()
    {
        c.at(
            a.referenced,
            format!("{path}.client"),
            format!("`{}` is not an address or network", a.value),
            Some("e.g. 10.77.0.2 or 10.77.0.0/24".into()),
        );
    }
    if let Some(n) = &m.nth
        && n.value == 0
    {
        c.at(
            n.referenced,
            format!("{path}.nth"),
            "`nth` counts from 1".into(),
            Some("nth: 1 is the first matching call".into()),
        );
    }
}

/// `nfs.sequence_flags`: at least one flag, each a name RFC 8881
/// §18.46.3 gives one (lower case, without SEQ4_STATUS_).
fn check_sequence_flags(c: &mut Checker, flags: &[Spanned<String>], at: Location, path: &str) {
    let valid = || SEQUENCE_FLAGS.iter().map(|(n, _)| *n);
    if flags.is_empty() {
        c.at(
            at,
            path.to_string(),
            "no flags: the fault would change nothing".into(),
            Some(format!("valid: {}", valid().collect::<Vec<_>>().join(", "))),
        );
    }
    for (i, flag) in flags.iter().enumerate() {
        let wanted = flag.value.to_ascii_lowercase();
        let wanted = wanted.trim_start_matches("seq4_status_");
        if sequence_flags([flag.value.as_str()]).is_ok() {
            continue;
        }
        let hint = match valid()
            .find(|n| *n == wanted)
            .or_else(|| closest(wanted, valid()))
        {
            Some(n) => format!("did you mean `{n}`?"),
            None => format!("valid: {}", valid().collect::<Vec<_>>().join(", ")),
        };
        c.at(
            flag.referenced,
            format!("{path}[{i}]"),
            format!("unknown SEQUENCE status flag `{}`", flag.value),
            Some(hint),
        );
    }
}
