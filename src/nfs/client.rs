//! A minimal synchronous ONC RPC client over TCP: used by tests and by
//! probes that check what the server answers, byte for byte.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::rpc::{self, AcceptStat, Credential, ReplyHeader};
use super::xdr::{XdrError, XdrReader, XdrWriter};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("rpc i/o with {addr}: {source}")]
    Io { addr: SocketAddr, source: io::Error },
    #[error("connection to {0} closed before the reply")]
    Closed(SocketAddr),
    #[error("malformed reply: {0}")]
    Decode(#[from] XdrError),
    #[error("reply xid {got:#x} does not match call xid {want:#x}")]
    Xid { want: u32, got: u32 },
    #[error("call denied by the server")]
    Denied,
    #[error("call not accepted: {0:?}")]
    NotAccepted(AcceptStat),
}

/// One TCP connection: one call at a time (`call`), or several in flight
/// (`send_call`, `recv_reply`).
#[derive(Debug)]
pub struct RpcClient {
    stream: TcpStream,
    addr: SocketAddr,
    xid: u32,
    pub cred: Credential,
}

impl RpcClient {
    pub fn connect(addr: SocketAddr, cred: Credential) -> Result<RpcClient, ClientError> {
        let io = |source| ClientError::Io { addr, source };
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(io)?;
        // One call at a time: Nagle would hold each small call back for
        // the previous reply's delayed ACK (the kernel's sunrpc sets it too).
        stream.set_nodelay(true).map_err(io)?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(io)?;
        Ok(RpcClient {
            stream,
            addr,
            xid: 0x5100_0000,
            cred,
        })
    }

    /// Sends one call and returns the accept status and the bytes after it.
    pub fn call_raw(
        &mut self,
        prog: u32,
        vers: u32,
        proc_: u32,
        args: &[u8],
    ) -> Result<(AcceptStat, Vec<u8>), ClientError> {
        let want = self.send_call(prog, vers, proc_, args)?;
        let (got, stat, body) = self.recv_reply()?;
        if got != want {
            return Err(ClientError::Xid { want, got });
        }
        Ok((stat, body))
    }

    /// Sends one call without waiting for its reply, and returns its xid:
    /// several calls in flight, as the kernel's write-back sends WRITEs.
    pub fn send_call(
        &mut self,
        prog: u32,
        vers: u32,
        proc_: u32,
        args: &[u8],
    ) -> Result<u32, ClientError> {
        self.xid = self.xid.wrapping_add(1);
        let mut w = XdrWriter::with_capacity(args.len() + 128);
        rpc::encode_call(&mut w, self.xid, prog, vers, proc_, &self.cred);
        let mut body = w.into_bytes();
        body.extend_from_slice(args);
        self.send_record(&body)?;
        Ok(self.xid)
    }

    /// The next reply on the connection, whichever call it answers: its
    /// xid, accept status and the bytes after it.
    pub fn recv_reply(&mut self) -> Result<(u32, AcceptStat, Vec<u8>), ClientError> {
        let addr = self.addr;
        let reply = rpc::read_record(&mut self.stream, 4 << 20)
            .map_err(|source| ClientError::Io { addr, source })?
            .ok_or(ClientError::Closed(addr))?;
        let mut r = XdrReader::new(&reply);
        match rpc::parse_reply(&mut r)? {
            ReplyHeader::Denied { .. } => Err(ClientError::Denied),
            ReplyHeader::Accepted { xid, stat } => Ok((xid, stat, r.rest().to_vec())),
        }
    }

    /// Sends one call; anything but SUCCESS is an error.
    pub fn call(
        &mut self,
        prog: u32,
        vers: u32,
        proc_: u32,
        args: &[u8],
    ) -> Result<Vec<u8>, ClientError> {
        match self.call_raw(prog, vers, proc_, args)? {
            (AcceptStat::Success, body) => Ok(body),
            (stat, _) => Err(ClientError::NotAccepted(stat)),
        }
    }

    /// Sends raw bytes as one record (for malformed-input tests).
    pub fn send_record(&mut self, record: &[u8]) -> Result<(), ClientError> {
        let addr = self.addr;
        rpc::write_record(&mut self.stream, record)
            .map_err(|source| ClientError::Io { addr, source })
    }

    pub fn set_read_timeout(&self, t: Duration) -> Result<(), ClientError> {
        let addr = self.addr;
        self.stream
            .set_read_timeout(Some(t))
            .map_err(|source| ClientError::Io { addr, source })
    }
}
