//! The server's pcap: a libnfs session (MOUNT, NFS) plus portmapper calls
//! over TCP and UDP are captured, and tshark decodes the calls and replies
//! of all three programs from the file. Loopback only, no root; tshark and
//! libnfs-utils must be installed (Debian: tshark, libnfs-utils).

use std::net::{TcpListener, UdpSocket};
use std::process::Command;

use stackquake::nfs::client::RpcClient;
use stackquake::nfs::rpc::{self, AuthSys, Credential};
use stackquake::nfs::xdr::XdrWriter;
use stackquake::nfs::{Listeners, NfsServer, ServerConfig};

fn require(tool: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    assert!(found, "{tool} not found: install Debian package {package}");
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {cmd}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!(
        "$ {cmd} {}\n-> {}\n{stdout}\nstderr: {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd} failed");
    stdout
}

#[test]
fn tshark_decodes_nfs_mount_and_portmap_from_the_capture() {
    require("tshark", "tshark");
    require("nfs-cat", "libnfs-utils");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.txt"), b"captured\n").unwrap();
    let server = NfsServer::start_with(
        ServerConfig::single("/export", dir.path().to_path_buf()),
        Listeners::new(TcpListener::bind("127.0.0.1:0").unwrap())
            .with_udp(UdpSocket::bind("127.0.0.1:0").unwrap()),
    )
    .unwrap();
    let pcap = dir.path().join("nfs.pcap");
    server.start_capture(&pcap).unwrap();
    let port = server.local_addr().port();

    // Portmapper over TCP and over UDP.
    let mut c =
        RpcClient::connect(server.local_addr(), Credential::Sys(AuthSys::default())).unwrap();
    let mut getport = XdrWriter::new();
    getport.u32(100003).u32(3).u32(6).u32(0);
    c.call(100000, 2, 3, getport.as_bytes()).unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let mut w = XdrWriter::new();
    rpc::encode_call(&mut w, 77, 100000, 2, 3, &Credential::None);
    let mut dg = w.into_bytes();
    dg.extend_from_slice(getport.as_bytes());
    udp.send_to(&dg, server.udp_addr().unwrap()).unwrap();
    udp.recv_from(&mut [0u8; 1024]).unwrap();

    // A libnfs session: MNT, FSINFO, LOOKUP, READ, READDIRPLUS.
    let url = format!("nfs://127.0.0.1/export/hello.txt?nfsport={port}&mountport={port}&version=3");
    assert_eq!(run("nfs-cat", &[&url]), "captured\n");
    let url = format!("nfs://127.0.0.1/export/?nfsport={port}&mountport={port}&version=3");
    run("nfs-ls", &[&url]);
    assert_eq!(server.stop_capture().as_deref(), Some(pcap.as_path()));
    server.shutdown();

    // The TCP port is ephemeral: tell tshark it carries RPC (UDP RPC is
    // found by tshark's heuristic). A client on a reserved port that
    // tshark gives another protocol (873: rsync) would still win, since
    // tshark tries the lower port first: RPC's heuristic goes before both.
    let pcap_s = pcap.to_str().unwrap();
    let decode_rpc = format!("tcp.port=={port},rpc");
    // tshark over the capture: packets matching `filter`, printed as `out`.
    let tshark = |filter: &str, out: &[&str]| {
        let mut args = vec![
            "-o",
            "tcp.try_heuristic_first:TRUE",
            "-r",
            pcap_s,
            "-d",
            &decode_rpc,
            "-Y",
            filter,
        ];
        args.extend_from_slice(out);
        run("tshark", &args)
    };
    let fields = |filter: &str| {
        tshark(
            filter,
            &[
                "-T",
                "fields",
                "-e",
                "rpc.msgtyp",
                "-e",
                "rpc.program",
                "-e",
                "rpc.procedure",
            ],
        )
    };
    let nfs = fields("nfs");
    assert!(
        nfs.lines().any(|l| l.starts_with("0\t100003\t")),
        "no NFS call decoded:\n{nfs}"
    );
    assert!(
        nfs.lines().any(|l| l.starts_with("1\t")),
        "no NFS reply decoded:\n{nfs}"
    );
    let read_replies = tshark(
        "nfs.procedure_v3 == 6 && rpc.msgtyp == 1",
        &["-T", "fields", "-e", "nfs.data"],
    );
    assert!(
        !read_replies.trim().is_empty(),
        "no READ reply with data decoded"
    );
    let mount = fields("mount");
    assert!(
        mount.lines().any(|l| l.starts_with("0\t100005\t1")),
        "no MNT call decoded:\n{mount}"
    );
    assert!(
        mount.lines().any(|l| l.starts_with("1\t")),
        "no MOUNT reply decoded:\n{mount}"
    );
    let portmap = fields("portmap");
    let calls = portmap
        .lines()
        .filter(|l| l.starts_with("0\t100000\t3"))
        .count();
    assert_eq!(
        calls, 2,
        "GETPORT over TCP and UDP not both decoded:\n{portmap}"
    );
    assert!(
        portmap.lines().any(|l| l.starts_with("1\t")),
        "no portmap reply decoded:\n{portmap}"
    );
    let errors = tshark("_ws.malformed || _ws.expert.severity == error", &[]);
    assert!(
        errors.trim().is_empty(),
        "tshark found malformed packets:\n{errors}"
    );
}
