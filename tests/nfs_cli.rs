//! `stackquake nfs serve` and `stackquake nfs fault`: the binary serves a
//! directory on 127.0.0.1, the control socket unexports it (nfs-cat fails),
//! adds and lists a rule, re-exports it (nfs-cat works) and shuts it down.
//! Loopback only, no root; libnfs-utils must be installed.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_stackquake");

/// Kills the server if the test fails half-way.
struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn fault(control: &Path, args: &[&str]) -> Output {
    let out = Command::new(BIN)
        .args(["nfs", "fault", "--control", control.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    eprintln!(
        "$ stackquake nfs fault {}\n-> {}\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn nfs_cat(port: u16) -> Output {
    let url = format!("nfs://127.0.0.1/export/f.txt?nfsport={port}&mountport={port}&version=3");
    let out = Command::new("nfs-cat")
        .arg(&url)
        .output()
        .expect("nfs-cat not found: install Debian package libnfs-utils");
    eprintln!(
        "$ nfs-cat {url}\n-> {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn serve_then_unexport_and_reexport_through_the_control_socket() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("f.txt"), b"from the binary\n").unwrap();
    let control = dir.path().join("ctl.sock");
    let export = format!("{}:/export", data.display());
    let mut child = Command::new(BIN)
        .args([
            "nfs",
            "serve",
            "--export",
            &export,
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--control", control.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut served = Served(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    eprintln!("server: {line}");
    let tcp = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("tcp="))
        .expect("no listening line");
    let port: u16 = tcp.rsplit(':').next().unwrap().parse().unwrap();

    let out = nfs_cat(port);
    assert!(out.status.success());
    assert_eq!(out.stdout, b"from the binary\n");

    assert!(fault(&control, &["unexport", "/export"]).status.success());
    let out = nfs_cat(port);
    assert!(
        !out.status.success(),
        "nfs-cat worked on an unexported export"
    );

    // A rule by name, listed back by name; healing it by id.
    let out = fault(&control, &["status", "--proc", "READ", "NFS3ERR_IO"]);
    assert!(out.status.success());
    let id = String::from_utf8_lossy(&out.stdout)
        .trim()
        .strip_prefix("rule ")
        .expect("no rule id")
        .to_string();
    let out = fault(&control, &["list"]);
    let listed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        listed.contains("proc=READ") && listed.contains("NFS3ERR_IO"),
        "{listed}"
    );
    assert!(fault(&control, &["heal", &id]).status.success());
    assert!(
        !fault(&control, &["heal", &id]).status.success(),
        "healed a rule twice"
    );
    assert!(
        String::from_utf8_lossy(&fault(&control, &["list"]).stdout)
            .trim()
            .is_empty()
    );
    // Bad input is refused before reaching the server.
    assert_eq!(
        fault(&control, &["stall", "--proc", "FROB"]).status.code(),
        Some(2)
    );

    // NFSv4.1 SEQUENCE status flags by name; an unknown one is refused
    // with the valid names, none stops them.
    let out = fault(&control, &["sequence-flags", "--flag", "restart_reclaim"]);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("`restart_reclaim`") && said.contains("restart_reclaim_needed"),
        "{said}"
    );
    let raised = fault(&control, &["sequence-flags", "--flag", "cb_path_down"]);
    assert!(raised.status.success());
    assert!(fault(&control, &["sequence-flags"]).status.success());

    assert!(fault(&control, &["reexport", "/export"]).status.success());
    let out = nfs_cat(port);
    assert!(out.status.success());
    assert_eq!(out.stdout, b"from the binary\n");

    assert!(fault(&control, &["shutdown"]).status.success());
    let status = served.0.wait().unwrap();
    assert!(status.success(), "server exited with {status}");
    assert!(!control.exists(), "control socket left behind");
}

/// Issue 11 §3 through the binary: the connection caps are flags, a
/// connection over them closes the longest-idle one and says so, and a
/// log that is not a terminal (here a pipe) has no colour codes.
#[test]
fn serve_caps_connections_and_logs_plain_text_to_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let control = dir.path().join("ctl.sock");
    let export = format!("{}:/export", dir.path().display());
    let mut child = Command::new(BIN)
        .args(["nfs", "serve", "--export", &export])
        .args(["--listen", "127.0.0.1:0", "--no-udp"])
        .args(["--control", control.to_str().unwrap()])
        .args([
            "--max-connections",
            "4",
            "--max-connections-per-client",
            "1",
        ])
        .args(["--idle-timeout", "0s"])
        .env("STACKQUAKE_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut served = Served(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let tcp: std::net::SocketAddr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("tcp="))
        .expect("no listening line")
        .parse()
        .unwrap();

    // Over the per-client cap, the new connection closes the idle one.
    let mut first = std::net::TcpStream::connect(tcp).unwrap();
    first
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let second = std::net::TcpStream::connect(tcp).unwrap();
    let mut b = [0u8; 1];
    match std::io::Read::read(&mut first, &mut b) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        r => panic!("the idle connection over the per-client cap was kept: {r:?}"),
    }
    drop(second);

    assert!(fault(&control, &["shutdown"]).status.success());
    assert!(served.0.wait().unwrap().success());
    let mut log = String::new();
    std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut log).unwrap();
    eprintln!("server log:\n{log}");
    assert!(
        log.contains("connection cap (1 from 127.0.0.1, max connections per client) reached")
            && log.contains("closed the longest-idle connection from 127.0.0.1:"),
        "no line about the connection closed for the new one"
    );
    assert!(!log.contains('\x1b'), "colour codes in a piped log");
}
