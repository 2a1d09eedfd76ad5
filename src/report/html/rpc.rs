//! What the in-process NFS servers received during each step, by
//! procedure, with a link to each server's capture: the packets beside
//! the timeline.

use super::escape::esc;
use crate::journal::{Event, Journal};
use crate::nfs::pcap::capture_file;
use std::collections::BTreeSet;
use std::fmt::Write;

/// The servers whose calls the journal counted, in order of appearance.
pub fn servers(journal: &Journal) -> Vec<&str> {
    let mut seen = Vec::new();
    for e in &journal.events {
        if let Event::RpcCalls { server, .. } = e
            && !seen.contains(&server.as_str())
        {
            seen.push(server.as_str());
        }
    }
    seen
}

/// Where server `server`'s capture lies relative to the output directory,
/// for a case whose files are in `files_dir`.
pub fn capture_path(files_dir: &str, server: &str) -> String {
    format!("{files_dir}/{}", capture_file(server))
}

/// The table of calls per step and server, busiest procedure first; nothing
/// when no in-process server ran. The captures are in `files_dir`.
pub fn section(out: &mut String, files_dir: &str, journal: &Journal, artifacts: &BTreeSet<String>) {
    let servers = servers(journal);
    if servers.is_empty() {
        return;
    }
    out.push_str("<h3>Calls the NFS server received, per step</h3>");
    let mut links = String::new();
    for server in &servers {
        let rel = capture_path(files_dir, server);
        if artifacts.contains(&rel) {
            let _ = write!(
                links,
                r#" <a data-kind="pcap" data-server="{}" href="{}">{}</a>"#,
                esc(server),
                esc(&super::case::href(&rel)),
                esc(&capture_file(server)),
            );
        }
    }
    if !links.is_empty() {
        // The kernel client binds a random reserved port, and Wireshark
        // tries the lower port's dissector first: port 873 would show the
        // whole capture as rsync.
        let _ = write!(
            out,
            "<p>Packet captures (tshark, Wireshark; with <code>-o tcp.try_heuristic_first:TRUE</code> \
             if the client's port hides NFS behind another protocol):{links}</p>"
        );
    }
    out.push_str(r#"<table class="rpc"><tr><th>step</th><th>server</th><th>calls</th></tr>"#);
    for e in &journal.events {
        let Event::RpcCalls {
            step,
            server,
            calls,
            ..
        } = e
        else {
            continue;
        };
        let mut busiest: Vec<(&String, &u64)> = calls.iter().collect();
        busiest.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let mut cells = String::new();
        for (call, n) in busiest {
            let _ = write!(
                cells,
                r#"<span class="call" data-call="{}" data-count="{n}">{} ×{n}</span> "#,
                esc(call),
                esc(call),
            );
        }
        if cells.is_empty() {
            cells.push_str("none");
        }
        let _ = write!(
            out,
            r#"<tr data-kind="rpc-calls" data-step="{}" data-server="{}"><td>{}</td><td>{}</td><td>{cells}</td></tr>"#,
            esc(step),
            esc(server),
            esc(step),
            esc(server),
        );
    }
    out.push_str("</table>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn calls(step: &str, calls: &[(&str, u64)]) -> Event {
        Event::RpcCalls {
            step: step.into(),
            server: "fs1".into(),
            calls: calls
                .iter()
                .map(|(c, n)| (c.to_string(), *n))
                .collect::<BTreeMap<_, _>>(),
            t_ns: 0,
        }
    }

    #[test]
    fn each_step_lists_its_calls_busiest_first_and_links_the_capture() {
        let journal = Journal {
            run_id: "r".into(),
            events: vec![
                calls("steady", &[("nfsv3 COMMIT", 2), ("nfsv3 WRITE", 90)]),
                calls("cut", &[]),
            ],
        };
        let artifacts = BTreeSet::from([capture_path("case", "fs1")]);
        let mut out = String::new();
        section(&mut out, "case", &journal, &artifacts);
        let write = out
            .find(r#"data-call="nfsv3 WRITE" data-count="90""#)
            .unwrap();
        let commit = out
            .find(r#"data-call="nfsv3 COMMIT" data-count="2""#)
            .unwrap();
        assert!(write < commit, "{out}");
        assert!(
            out.contains(
                r#"data-step="cut" data-server="fs1"><td>cut</td><td>fs1</td><td>none</td>"#
            ),
            "{out}"
        );
        assert!(out.contains(r#"href="case/nfs-fs1.pcap""#), "{out}");
    }

    #[test]
    fn no_server_no_section() {
        let mut out = String::new();
        section(&mut out, "case", &Journal::default(), &BTreeSet::new());
        assert!(out.is_empty());
    }
}
