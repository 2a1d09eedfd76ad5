//! The userspace half of a staging delay: packets the run's table sends to
//! an NFQUEUE queue (`queue num N bypass`) are held here for the delay and
//! then accepted, in order. The kernel gives us only their ids (copy mode
//! meta), so nothing of the traffic is read. If this process dies, its
//! netlink socket closes, the queue has no listener, and `bypass` lets the
//! packets through undelayed: like a cut's timeout, the fault cannot
//! outlive the run (netem, a qdisc, would).
//!
//! The nfnetlink_queue protocol (include/uapi/linux/netfilter/
//! nfnetlink_queue.h), written out: one socket per queue, BIND with copy
//! mode META and fail-open, then PACKET messages in, VERDICT messages out.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const NFNL_SUBSYS_QUEUE: u16 = 3;
const NFQNL_MSG_PACKET: u16 = 0;
const NFQNL_MSG_VERDICT: u16 = 1;
const NFQNL_MSG_CONFIG: u16 = 2;
const NFQA_PACKET_HDR: u16 = 1;
const NFQA_VERDICT_HDR: u16 = 2;
const NFQA_CFG_CMD: u16 = 1;
const NFQA_CFG_PARAMS: u16 = 2;
const NFQA_CFG_MASK: u16 = 4;
const NFQA_CFG_FLAGS: u16 = 5;
const NFQNL_CFG_CMD_BIND: u8 = 1;
const NFQNL_COPY_META: u8 = 1;
/// A full queue accepts rather than drops: a delay must never turn into loss.
const NFQA_CFG_F_FAIL_OPEN: u32 = 1;
const NF_ACCEPT: u32 = 1;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLMSG_ERROR: u16 = 2;
/// How long the thread sleeps in recv before looking at its clock again.
const POLL: Duration = Duration::from_millis(2);

/// Holds every packet of queue `queue` for `delay`, until dropped.
#[derive(Debug)]
pub struct Delayer {
    queue: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Delayer {
    /// Binds `queue` in the network namespace at `netns` (None: ours) and
    /// starts holding its packets. Fails if the kernel has no
    /// nfnetlink_queue or another listener holds the queue.
    pub fn start(netns: Option<PathBuf>, queue: u16, delay: Duration) -> io::Result<Delayer> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("sq-delay-{queue}"))
            .spawn(move || {
                let bound = netns
                    .map_or(Ok(()), |path| {
                        std::fs::File::open(path).and_then(crate::sys::ns::enter_netns)
                    })
                    .and_then(|()| Socket::bind(queue));
                match bound {
                    Ok(sock) => {
                        let _ = ready_tx.send(Ok(()));
                        hold(&sock, queue, delay, &stopping);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })?;
        let ready = ready_rx
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("the delay thread ended at once")));
        match ready {
            Ok(()) => Ok(Delayer {
                queue,
                stop,
                thread: Some(thread),
            }),
            Err(e) => {
                let _ = thread.join();
                Err(e)
            }
        }
    }

    pub fn queue(&self) -> u16 {
        self.queue
    }
}

impl Drop for Delayer {
    /// Lets every held packet go and closes the socket (the queue is then
    /// bypassed).
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The receive loop: each packet is accepted `delay` after it arrived.
fn hold(sock: &Socket, queue: u16, delay: Duration, stop: &AtomicBool) {
    let mut held: VecDeque<(u32, Instant)> = VecDeque::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        let now = Instant::now();
        while let Some(&(id, due)) = held.front() {
            if due > now && !stopping {
                break;
            }
            let _ = sock.send(&verdict(queue, id));
            held.pop_front();
        }
        if stopping {
            return;
        }
        // An error is the receive timeout, or ENOBUFS when the kernel
        // outran us (fail-open accepted what did not fit).
        if let Ok(n) = sock.recv(&mut buf) {
            let arrived = Instant::now();
            for id in packet_ids(&buf[..n]) {
                held.push_back((id, arrived + delay));
            }
        }
    }
}

/// A NETLINK_NETFILTER socket bound to one queue.
struct Socket(OwnedFd);

impl Socket {
    fn bind(queue: u16) -> io::Result<Socket> {
        use nix::sys::socket::{
            AddressFamily, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, setsockopt, socket,
            sockopt,
        };
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkNetFilter,
        )?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))?;
        setsockopt(
            &fd,
            sockopt::ReceiveTimeout,
            &nix::sys::time::TimeVal::new(0, POLL.as_micros() as i64),
        )?;
        let sock = Socket(fd);
        let mut cmd = vec![NFQNL_CFG_CMD_BIND, 0];
        cmd.extend_from_slice(&0u16.to_be_bytes());
        sock.request(&message(
            NFQNL_MSG_CONFIG,
            NLM_F_REQUEST | NLM_F_ACK,
            queue,
            &[(NFQA_CFG_CMD, &cmd)],
        ))?;
        let mut params = 0u32.to_be_bytes().to_vec();
        params.push(NFQNL_COPY_META);
        let flags = NFQA_CFG_F_FAIL_OPEN.to_be_bytes();
        sock.request(&message(
            NFQNL_MSG_CONFIG,
            NLM_F_REQUEST | NLM_F_ACK,
            queue,
            &[
                (NFQA_CFG_PARAMS, &params),
                (NFQA_CFG_MASK, &flags),
                (NFQA_CFG_FLAGS, &flags),
            ],
        ))?;
        Ok(sock)
    }

    fn send(&self, msg: &[u8]) -> io::Result<()> {
        use nix::sys::socket::{MsgFlags, send};
        send(self.0.as_raw_fd(), msg, MsgFlags::empty())?;
        Ok(())
    }

    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        use nix::sys::socket::{MsgFlags, recv};
        Ok(recv(self.0.as_raw_fd(), buf, MsgFlags::empty())?)
    }

    /// Sends a request and waits for its acknowledgement.
    fn request(&self, msg: &[u8]) -> io::Result<()> {
        self.send(msg)?;
        let mut buf = vec![0u8; 8192];
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            let Ok(n) = self.recv(&mut buf) else { continue };
            if let Some(errno) = ack(&buf[..n]) {
                return match errno {
                    0 => Ok(()),
                    e => Err(io::Error::from_raw_os_error(e)),
                };
            }
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "nfnetlink_queue did not answer",
        ))
    }
}

/// One nfnetlink message: header, nfgenmsg naming `queue`, attributes.
fn message(kind: u16, flags: u16, queue: u16, attrs: &[(u16, &[u8])]) -> Vec<u8> {
    let mut body = vec![libc::AF_UNSPEC as u8, 0];
    body.extend_from_slice(&queue.to_be_bytes());
    for (kind, value) in attrs {
        let len = 4 + value.len();
        body.extend_from_slice(&(len as u16).to_ne_bytes());
        body.extend_from_slice(&kind.to_ne_bytes());
        body.extend_from_slice(value);
        body.resize(body.len().next_multiple_of(4), 0);
    }
    let mut msg = Vec::with_capacity(16 + body.len());
    msg.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
    msg.extend_from_slice(&((NFNL_SUBSYS_QUEUE << 8) | kind).to_ne_bytes());
    msg.extend_from_slice(&flags.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes()); // seq
    msg.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
    msg.extend_from_slice(&body);
    msg
}

/// The verdict that lets packet `id` of `queue` go on.
fn verdict(queue: u16, id: u32) -> Vec<u8> {
    let mut hdr = NF_ACCEPT.to_be_bytes().to_vec();
    hdr.extend_from_slice(&id.to_be_bytes());
    message(
        NFQNL_MSG_VERDICT,
        NLM_F_REQUEST,
        queue,
        &[(NFQA_VERDICT_HDR, &hdr)],
    )
}

/// The netlink messages in one datagram: (type, payload after the header).
fn messages(mut buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while buf.len() >= 16 {
        let len = u32::from_ne_bytes(buf[0..4].try_into().expect("4 bytes")) as usize;
        if len < 16 || len > buf.len() {
            break;
        }
        let kind = u16::from_ne_bytes(buf[4..6].try_into().expect("2 bytes"));
        out.push((kind, &buf[16..len]));
        buf = &buf[len.next_multiple_of(4).min(buf.len())..];
    }
    out
}

/// The errno of the first acknowledgement in `buf` (0: success).
fn ack(buf: &[u8]) -> Option<i32> {
    messages(buf)
        .into_iter()
        .find(|(kind, _)| *kind == NLMSG_ERROR)
        .and_then(|(_, p)| p.get(0..4))
        .map(|e| -i32::from_ne_bytes(e.try_into().expect("4 bytes")))
}

/// The ids of the queued packets in `buf`.
fn packet_ids(buf: &[u8]) -> Vec<u32> {
    messages(buf)
        .into_iter()
        .filter(|(kind, _)| *kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET)
        .filter_map(|(_, payload)| {
            // nfgenmsg (4 bytes), then attributes.
            let mut attrs = payload.get(4..)?;
            while attrs.len() >= 4 {
                let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
                let kind = u16::from_ne_bytes([attrs[2], attrs[3]]) & 0x3fff;
                if len < 4 || len > attrs.len() {
                    return None;
                }
                if kind == NFQA_PACKET_HDR && len >= 8 {
                    return Some(u32::from_be_bytes(attrs[4..8].try_into().ok()?));
                }
                attrs = &attrs[len.next_multiple_of(4).min(attrs.len())..];
            }
            None
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verdict_accepts_one_packet_of_one_queue() {
        let v = verdict(7, 0x01020304);
        assert_eq!(v.len(), 16 + 4 + 12);
        assert_eq!(u32::from_ne_bytes(v[0..4].try_into().unwrap()), 32);
        assert_eq!(u16::from_ne_bytes(v[4..6].try_into().unwrap()), 0x0301);
        assert_eq!(&v[18..20], &7u16.to_be_bytes());
        assert_eq!(u16::from_ne_bytes(v[20..22].try_into().unwrap()), 12);
        assert_eq!(&v[24..28], &NF_ACCEPT.to_be_bytes());
        assert_eq!(&v[28..32], &[1, 2, 3, 4]);
    }

    #[test]
    fn packet_ids_are_read_from_each_message_of_a_datagram() {
        let packet = |id: u32| {
            let mut hdr = id.to_be_bytes().to_vec();
            hdr.extend_from_slice(&[0x08, 0x00, 3]); // hw_protocol, hook
            message(
                NFQNL_MSG_PACKET,
                0,
                7,
                &[(9, &[1, 2, 3, 4]), (NFQA_PACKET_HDR, &hdr)],
            )
        };
        let mut datagram = packet(41);
        datagram.extend(packet(42));
        assert_eq!(packet_ids(&datagram), [41, 42]);
        // Truncated input gives what is whole, and never panics.
        assert_eq!(packet_ids(&datagram[..datagram.len() - 3]), [41]);
    }
}
