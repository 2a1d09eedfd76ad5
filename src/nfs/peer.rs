//! Calls this server makes to other hosts' RPC services: NLM's GRANTED
//! callback to a client's lockd and NSM's SM_NOTIFY to a peer's statd. The
//! peer's port is asked of its portmapper (RFC 1833 PMAPPROC_GETPORT); the
//! call leaves from the server's own address, because the Linux client
//! matches a GRANTED callback against the server address it locked with
//! (fs/lockd/clntlock.c nlmclnt_grant).

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

use nix::sys::socket::{
    AddressFamily, SockFlag, SockType, SockaddrStorage, bind, connect, setsockopt, socket, sockopt,
};
use nix::sys::time::TimeVal;

use super::rpc::{self, AcceptStat, Credential, ReplyHeader};
use super::xdr::{XdrError, XdrReader, XdrWriter};
use super::{portmap, rpc::AuthSys};

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("calling {peer}: {source}")]
    Io { peer: SocketAddr, source: io::Error },
    #[error("program {prog} version {vers} not registered with the portmapper of {peer}")]
    NotRegistered { peer: IpAddr, prog: u32, vers: u32 },
    #[error("{peer} closed the connection before replying")]
    Closed { peer: SocketAddr },
    #[error("malformed reply from {peer}: {source}")]
    Decode { peer: SocketAddr, source: XdrError },
    #[error("{peer} did not accept the call: {stat:?}")]
    NotAccepted { peer: SocketAddr, stat: AcceptStat },
    #[error("{peer} denied the call")]
    Denied { peer: SocketAddr },
    #[error("no free reserved port on {0}")]
    NoReservedPort(IpAddr),
}

/// How to reach one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// Our address, the source of every connection.
    pub from: IpAddr,
    pub to: IpAddr,
    /// The peer's portmapper port (111 everywhere but in tests).
    pub portmap_port: u16,
    /// Leave from a port below 1024: the Linux lockd only believes an NSM
    /// callback from a privileged loopback port (fs/lockd/svcproc.c,
    /// nlm_privileged_requester).
    pub privileged: bool,
    pub timeout: Duration,
}

impl Peer {
    /// Asks the peer's portmapper where (prog, vers) listens on TCP.
    pub fn getport(&self, prog: u32, vers: u32) -> Result<u16, PeerError> {
        let mut args = XdrWriter::new();
        args.u32(prog).u32(vers).u32(portmap::IPPROTO_TCP).u32(0);
        let pm = SocketAddr::new(self.to, self.portmap_port);
        let body = self.call_at(pm, false, portmap::PROGRAM, 2, 3, args.as_bytes())?;
        let port = XdrReader::new(&body)
            .u32()
            .map_err(|source| PeerError::Decode { peer: pm, source })?;
        match u16::try_from(port) {
            Ok(p) if p != 0 => Ok(p),
            _ => Err(PeerError::NotRegistered {
                peer: self.to,
                prog,
                vers,
            }),
        }
    }

    /// Looks the program up and calls it; returns the result bytes.
    pub fn call(
        &self,
        prog: u32,
        vers: u32,
        proc_: u32,
        args: &[u8],
    ) -> Result<Vec<u8>, PeerError> {
        let port = self.getport(prog, vers)?;
        self.call_at(
            SocketAddr::new(self.to, port),
            self.privileged,
            prog,
            vers,
            proc_,
            args,
        )
    }

    /// Calls (prog, vers) at a known address (no portmapper query).
    pub fn call_addr(
        &self,
        addr: SocketAddr,
        prog: u32,
        vers: u32,
        proc_: u32,
        args: &[u8],
    ) -> Result<Vec<u8>, PeerError> {
        self.call_at(addr, self.privileged, prog, vers, proc_, args)
    }

    fn call_at(
        &self,
        peer: SocketAddr,
        privileged: bool,
        prog: u32,
        vers: u32,
        proc_: u32,
        args: &[u8],
    ) -> Result<Vec<u8>, PeerError> {
        let io = |source| PeerError::Io { peer, source };
        let mut stream = self.connect(peer, privileged)?;
        stream.set_read_timeout(Some(self.timeout)).map_err(io)?;
        stream.set_write_timeout(Some(self.timeout)).map_err(io)?;
        let xid = next_xid();
        let mut w = XdrWriter::with_capacity(args.len() + 128);
        let cred = Credential::Sys(AuthSys {
            machine_name: b"stackquake".to_vec(),
            ..AuthSys::default()
        });
        rpc::encode_call(&mut w, xid, prog, vers, proc_, &cred);
        let mut body = w.into_bytes();
        body.extend_from_slice(args);
        rpc::write_record(&mut stream, &body).map_err(io)?;
        loop {
            let reply = rpc::read_record(&mut stream, 1 << 20)
                .map_err(io)?
                .ok_or(PeerError::Closed { peer })?;
            let mut r = XdrReader::new(&reply);
            let header =
                rpc::parse_reply(&mut r).map_err(|source| PeerError::Decode { peer, source })?;
            match header {
                ReplyHeader::Accepted { xid: x, .. } | ReplyHeader::Denied { xid: x }
                    if x != xid =>
                {
                    continue;
                }
                ReplyHeader::Denied { .. } => return Err(PeerError::Denied { peer }),
                ReplyHeader::Accepted {
                    stat: AcceptStat::Success,
                    ..
                } => return Ok(r.rest().to_vec()),
                ReplyHeader::Accepted { stat, .. } => {
                    return Err(PeerError::NotAccepted { peer, stat });
                }
            }
        }
    }

    fn connect(&self, peer: SocketAddr, privileged: bool) -> Result<TcpStream, PeerError> {
        let io = |source: nix::Error| PeerError::Io {
            peer,
            source: io::Error::from(source),
        };
        let family = match self.from {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        let ports: Box<dyn Iterator<Item = u16>> = if privileged {
            Box::new((600..1024).rev())
        } else {
            Box::new(std::iter::once(0))
        };
        for port in ports {
            let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).map_err(io)?;
            let tv = TimeVal::new(
                self.timeout.as_secs() as i64,
                self.timeout.subsec_micros() as _,
            );
            // Bounds connect() as well (Linux honours SO_SNDTIMEO there).
            setsockopt(&fd, sockopt::SendTimeout, &tv).map_err(io)?;
            setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(io)?;
            let local = sockaddr(SocketAddr::new(self.from, port));
            match bind(fd.as_raw_fd(), &local) {
                Ok(()) => {}
                Err(nix::Error::EADDRINUSE) if privileged => continue,
                Err(e) => return Err(io(e)),
            }
            match connect(fd.as_raw_fd(), &sockaddr(peer)) {
                Ok(()) => return Ok(TcpStream::from(fd)),
                Err(nix::Error::EADDRNOTAVAIL) if privileged => continue,
                Err(e) => return Err(io(e)),
            }
        }
        Err(PeerError::NoReservedPort(self.from))
    }
}

fn sockaddr(a: SocketAddr) -> SockaddrStorage {
    match a {
        SocketAddr::V4(v) => SockaddrStorage::from(v),
        SocketAddr::V6(v) => SockaddrStorage::from(v),
    }
}

fn next_xid() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static XID: AtomicU32 = AtomicU32::new(0);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    seed ^ XID
        .fetch_add(1, Ordering::Relaxed)
        .wrapping_mul(0x9e37_79b9)
}
