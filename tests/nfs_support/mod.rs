//! A small NFSv3 client over `RpcClient` for tests that play a hostile or
//! unprivileged client against the in-process server on 127.0.0.1: each
//! call returns the status and, on success, the handle or data it carries.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;

use stackquake::nfs::client::RpcClient;
use stackquake::nfs::export::Squash;
use stackquake::nfs::rpc::{AuthSys, Credential};
use stackquake::nfs::xdr::{XdrReader, XdrWriter};
use stackquake::nfs::{ExportSpec, NfsServer, ServerConfig};

pub const NFS: u32 = 100003;
pub const MOUNT: u32 = 100005;
pub const OK: u32 = 0;
pub const ACCES: u32 = 13;

pub fn serve(dir: &Path, squash: Squash) -> NfsServer {
    NfsServer::start(
        ServerConfig {
            exports: vec![ExportSpec {
                name: "/export".into(),
                dir: dir.to_path_buf(),
                clients: vec![],
                read_only: false,
                squash,
            }],
            ..ServerConfig::default()
        },
        TcpListener::bind("127.0.0.1:0").unwrap(),
    )
    .unwrap()
}

/// One connection acting as `uid`/`gid`.
pub struct Client {
    rpc: RpcClient,
}

/// sattr3 with only a mode set (or nothing).
fn sattr_mode(w: &mut XdrWriter, mode: Option<u32>) {
    match mode {
        Some(m) => w.bool(true).u32(m),
        None => w.bool(false),
    };
    w.bool(false).bool(false).bool(false).u32(0).u32(0);
}

impl Client {
    pub fn connect(server: &NfsServer, uid: u32, gid: u32) -> Client {
        let cred = Credential::Sys(AuthSys {
            stamp: 0,
            machine_name: b"hostile".to_vec(),
            uid,
            gid,
            gids: vec![gid],
        });
        Client {
            rpc: RpcClient::connect(server.local_addr(), cred).unwrap(),
        }
    }

    fn call(&mut self, proc_: u32, args: &XdrWriter) -> Vec<u8> {
        self.rpc.call(NFS, 3, proc_, args.as_bytes()).unwrap()
    }

    /// The status word and, if OK and `handle_follows`, the handle after it.
    fn status_and_handle(body: &[u8], post_op_fh: bool) -> (u32, Vec<u8>) {
        let mut r = XdrReader::new(body);
        let st = r.u32().unwrap();
        if st != OK {
            return (st, vec![]);
        }
        if post_op_fh && !r.bool().unwrap() {
            return (st, vec![]);
        }
        (st, r.opaque(64).unwrap().to_vec())
    }

    pub fn mnt(&mut self) -> Vec<u8> {
        let mut a = XdrWriter::new();
        a.string(b"/export");
        let body = self.rpc.call(MOUNT, 3, 1, a.as_bytes()).unwrap();
        let mut r = XdrReader::new(&body);
        assert_eq!(r.u32().unwrap(), OK, "MNT status");
        r.opaque(64).unwrap().to_vec()
    }

    pub fn lookup(&mut self, dir: &[u8], name: &str) -> (u32, Vec<u8>) {
        let mut a = XdrWriter::new();
        a.opaque(dir).string(name.as_bytes());
        Self::status_and_handle(&self.call(3, &a), false)
    }

    /// CREATE UNCHECKED with a mode.
    pub fn create(&mut self, dir: &[u8], name: &str, mode: u32) -> (u32, Vec<u8>) {
        let mut a = XdrWriter::new();
        a.opaque(dir).string(name.as_bytes()).u32(0);
        sattr_mode(&mut a, Some(mode));
        Self::status_and_handle(&self.call(8, &a), true)
    }

    pub fn mkdir(&mut self, dir: &[u8], name: &str) -> (u32, Vec<u8>) {
        let mut a = XdrWriter::new();
        a.opaque(dir).string(name.as_bytes());
        sattr_mode(&mut a, Some(0o755));
        Self::status_and_handle(&self.call(9, &a), true)
    }

    pub fn symlink(&mut self, dir: &[u8], name: &str, target: &Path) -> u32 {
        let mut a = XdrWriter::new();
        a.opaque(dir).string(name.as_bytes());
        sattr_mode(&mut a, None);
        a.string(target.as_os_str().as_encoded_bytes());
        Self::status_and_handle(&self.call(10, &a), true).0
    }

    pub fn remove(&mut self, dir: &[u8], name: &str) -> u32 {
        let mut a = XdrWriter::new();
        a.opaque(dir).string(name.as_bytes());
        XdrReader::new(&self.call(12, &a)).u32().unwrap()
    }

    pub fn rename(&mut self, from_dir: &[u8], from: &str, to_dir: &[u8], to: &str) -> u32 {
        let mut a = XdrWriter::new();
        a.opaque(from_dir).string(from.as_bytes());
        a.opaque(to_dir).string(to.as_bytes());
        XdrReader::new(&self.call(14, &a)).u32().unwrap()
    }

    pub fn setattr_mode(&mut self, fh: &[u8], mode: u32) -> u32 {
        let mut a = XdrWriter::new();
        a.opaque(fh);
        sattr_mode(&mut a, Some(mode));
        a.bool(false);
        XdrReader::new(&self.call(2, &a)).u32().unwrap()
    }

    /// SETATTR as the Linux client truncates (ftruncate, open with
    /// O_TRUNC): the size and mtime SET_TO_SERVER_TIME, atime untouched.
    pub fn setattr_truncate(&mut self, fh: &[u8], size: u64) -> u32 {
        let mut a = XdrWriter::new();
        a.opaque(fh);
        a.bool(false).bool(false).bool(false);
        a.bool(true).u64(size);
        a.u32(0).u32(1);
        a.bool(false);
        XdrReader::new(&self.call(2, &a)).u32().unwrap()
    }

    /// READ: the status and the data.
    pub fn read(&mut self, fh: &[u8], count: u32) -> (u32, Vec<u8>) {
        let mut a = XdrWriter::new();
        a.opaque(fh).u64(0).u32(count);
        let body = self.call(6, &a);
        let mut r = XdrReader::new(&body);
        let st = r.u32().unwrap();
        if st != OK {
            return (st, vec![]);
        }
        if r.bool().unwrap() {
            // fattr3: 21 words
            for _ in 0..21 {
                r.u32().unwrap();
            }
        }
        let _count = r.u32().unwrap();
        let _eof = r.bool().unwrap();
        (st, r.opaque(1 << 20).unwrap().to_vec())
    }

    /// WRITE FILE_SYNC at offset 0.
    pub fn write(&mut self, fh: &[u8], data: &[u8]) -> u32 {
        let mut a = XdrWriter::new();
        a.opaque(fh)
            .u64(0)
            .u32(data.len() as u32)
            .u32(2)
            .opaque(data);
        XdrReader::new(&self.call(7, &a)).u32().unwrap()
    }

    /// ACCESS: the status and the granted bits.
    pub fn access(&mut self, fh: &[u8], wanted: u32) -> (u32, u32) {
        let mut a = XdrWriter::new();
        a.opaque(fh).u32(wanted);
        let body = self.call(4, &a);
        let mut r = XdrReader::new(&body);
        let st = r.u32().unwrap();
        if st != OK {
            return (st, 0);
        }
        if r.bool().unwrap() {
            for _ in 0..21 {
                r.u32().unwrap();
            }
        }
        (st, r.u32().unwrap())
    }

    /// GETATTR: the status only.
    pub fn getattr(&mut self, fh: &[u8]) -> u32 {
        let mut a = XdrWriter::new();
        a.opaque(fh);
        XdrReader::new(&self.call(1, &a)).u32().unwrap()
    }
}
