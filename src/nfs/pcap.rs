//! A pcap of what the server received and sent: one packet per RPC record
//! (TCP, with its record mark) or datagram (UDP), wrapped in synthesized
//! IPv4/IPv6 and TCP/UDP headers carrying the real addresses and ports, as
//! LINKTYPE_RAW. The TCP sequence numbers run per direction so that tshark
//! reassembles records split over several packets (a record longer than an
//! IP packet can carry is written as consecutive segments).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use super::NfsError;
use super::call::Transport;

/// https://www.tcpdump.org/linktypes.html: raw IPv4 or IPv6, no link header.
const LINKTYPE_RAW: u32 = 101;
const SNAPLEN: u32 = 262_144;
/// Payload per synthesized TCP segment: IPv4 total length is 16 bits.
const MAX_SEGMENT: usize = 65_000;

/// The file a run's in-process server `server` captures to, in its case's
/// output directory (the engine writes it, the report links it).
pub fn capture_file(server: &str) -> String {
    format!("nfs-{server}.pcap")
}

#[derive(Debug)]
struct State {
    out: BufWriter<File>,
    /// Next sequence number per (source, destination) of a TCP connection.
    seq: HashMap<(SocketAddr, SocketAddr), u32>,
    ip_id: u16,
    failed: bool,
}

#[derive(Debug)]
pub struct PcapWriter {
    path: PathBuf,
    state: Mutex<State>,
}

impl PcapWriter {
    pub fn create(path: &Path) -> Result<PcapWriter, NfsError> {
        let err = |source| NfsError::Pcap {
            path: path.to_path_buf(),
            source,
        };
        let mut out = BufWriter::new(File::create(path).map_err(err)?);
        let mut hdr = Vec::with_capacity(24);
        hdr.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        hdr.extend_from_slice(&2u16.to_le_bytes());
        hdr.extend_from_slice(&4u16.to_le_bytes());
        hdr.extend_from_slice(&0i32.to_le_bytes());
        hdr.extend_from_slice(&0u32.to_le_bytes());
        hdr.extend_from_slice(&SNAPLEN.to_le_bytes());
        hdr.extend_from_slice(&LINKTYPE_RAW.to_le_bytes());
        out.write_all(&hdr).map_err(err)?;
        out.flush().map_err(err)?;
        Ok(PcapWriter {
            path: path.to_path_buf(),
            state: Mutex::new(State {
                out,
                seq: HashMap::new(),
                ip_id: 0,
                failed: false,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records one RPC message from `src` to `dst`. Write errors are logged
    /// once and end the capture; they never affect the calls.
    pub fn record(&self, transport: Transport, src: SocketAddr, dst: SocketAddr, message: &[u8]) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.failed {
            return;
        }
        let (src, dst) = same_family(src, dst);
        let result = match transport {
            Transport::Udp => {
                let mut udp = Vec::with_capacity(8 + message.len());
                udp.extend_from_slice(&src.port().to_be_bytes());
                udp.extend_from_slice(&dst.port().to_be_bytes());
                udp.extend_from_slice(&((8 + message.len()).min(0xffff) as u16).to_be_bytes());
                udp.extend_from_slice(&0u16.to_be_bytes());
                udp.extend_from_slice(message);
                write_ip(&mut st, src.ip(), dst.ip(), 17, &udp)
            }
            Transport::Tcp => {
                // The record as one last fragment (RFC 5531 §11).
                let mut stream = Vec::with_capacity(4 + message.len());
                stream.extend_from_slice(&(message.len() as u32 | 0x8000_0000).to_be_bytes());
                stream.extend_from_slice(message);
                let ack = *st.seq.get(&(dst, src)).unwrap_or(&1);
                let mut r = Ok(());
                for chunk in stream.chunks(MAX_SEGMENT) {
                    let seq = st.seq.entry((src, dst)).or_insert(1);
                    let this = *seq;
                    *seq = seq.wrapping_add(chunk.len() as u32);
                    let mut tcp = Vec::with_capacity(20 + chunk.len());
                    tcp.extend_from_slice(&src.port().to_be_bytes());
                    tcp.extend_from_slice(&dst.port().to_be_bytes());
                    tcp.extend_from_slice(&this.to_be_bytes());
                    tcp.extend_from_slice(&ack.to_be_bytes());
                    tcp.push(5 << 4); // data offset: 20 bytes
                    tcp.push(0x18); // PSH | ACK
                    tcp.extend_from_slice(&0xffffu16.to_be_bytes());
                    tcp.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent
                    tcp.extend_from_slice(chunk);
                    r = write_ip(&mut st, src.ip(), dst.ip(), 6, &tcp);
                    if r.is_err() {
                        break;
                    }
                }
                r
            }
        };
        if let Err(e) = result {
            tracing::warn!(path = %self.path.display(), error = %e, "pcap write failed; capture stopped");
            st.failed = true;
        }
    }

    /// Forgets a closed connection's sequence numbers.
    pub fn connection_closed(&self, a: SocketAddr, b: SocketAddr) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (a, b) = same_family(a, b);
        st.seq.remove(&(a, b));
        st.seq.remove(&(b, a));
    }
}

/// IPv4 clients on a dual-stack socket appear as ::ffff:a.b.c.d; write them
/// as IPv4 when both ends allow it, else both as IPv6.
fn same_family(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    let v4 = |s: SocketAddr| match s.ip() {
        IpAddr::V4(ip) => Some(SocketAddr::new(ip.into(), s.port())),
        IpAddr::V6(ip) => ip
            .to_ipv4_mapped()
            .map(|ip| SocketAddr::new(ip.into(), s.port())),
    };
    let v6 = |s: SocketAddr| match s.ip() {
        IpAddr::V4(ip) => SocketAddr::new(IpAddr::V6(ip.to_ipv6_mapped()), s.port()),
        IpAddr::V6(_) => s,
    };
    match (v4(a), v4(b)) {
        (Some(a), Some(b)) => (a, b),
        _ => (v6(a), v6(b)),
    }
}

/// RFC 791 §3.1 header checksum.
fn ipv4_checksum(hdr: &[u8]) -> u16 {
    let mut sum: u32 = hdr
        .chunks(2)
        .map(|w| u16::from_be_bytes([w[0], w[1]]) as u32)
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn write_ip(
    st: &mut State,
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    payload: &[u8],
) -> std::io::Result<()> {
    let mut pkt = Vec::with_capacity(40 + payload.len());
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            st.ip_id = st.ip_id.wrapping_add(1);
            let total = (20 + payload.len()).min(0xffff) as u16;
            pkt.extend_from_slice(&[0x45, 0]);
            pkt.extend_from_slice(&total.to_be_bytes());
            pkt.extend_from_slice(&st.ip_id.to_be_bytes());
            pkt.extend_from_slice(&0x4000u16.to_be_bytes()); // DF
            pkt.extend_from_slice(&[64, proto, 0, 0]);
            pkt.extend_from_slice(&s.octets());
            pkt.extend_from_slice(&d.octets());
            let sum = ipv4_checksum(&pkt);
            pkt[10..12].copy_from_slice(&sum.to_be_bytes());
        }
        (s, d) => {
            let as6 = |ip: IpAddr| match ip {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            let (s, d): (Ipv6Addr, Ipv6Addr) = (as6(s), as6(d));
            pkt.extend_from_slice(&0x6000_0000u32.to_be_bytes());
            pkt.extend_from_slice(&(payload.len().min(0xffff) as u16).to_be_bytes());
            pkt.extend_from_slice(&[proto, 64]);
            pkt.extend_from_slice(&s.octets());
            pkt.extend_from_slice(&d.octets());
        }
    }
    pkt.extend_from_slice(payload);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let len = pkt.len() as u32;
    let mut rec = Vec::with_capacity(16);
    rec.extend_from_slice(&(now.as_secs() as u32).to_le_bytes());
    rec.extend_from_slice(&now.subsec_micros().to_le_bytes());
    rec.extend_from_slice(&len.min(SNAPLEN).to_le_bytes());
    rec.extend_from_slice(&len.to_le_bytes());
    st.out.write_all(&rec)?;
    st.out.write_all(&pkt[..pkt.len().min(SNAPLEN as usize)])?;
    // Flushed per packet so a capture is readable while the server runs and
    // complete if the process dies.
    st.out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_checksum_of_rfc1071_example() {
        // A header whose checksum field is filled in sums to 0xffff.
        let mut h = [
            0x45, 0, 0, 0x73, 0, 0, 0x40, 0, 0x40, 0x11, 0, 0, 0xc0, 0xa8, 0, 1, 0xc0, 0xa8, 0,
            0xc7,
        ];
        let sum = ipv4_checksum(&h);
        assert_eq!(sum, 0xb861);
        h[10..12].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(ipv4_checksum(&h), 0);
    }

    #[test]
    fn long_tcp_records_become_consecutive_segments() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.pcap");
        let w = PcapWriter::create(&path).unwrap();
        let a: SocketAddr = "10.0.0.1:700".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:2049".parse().unwrap();
        w.record(Transport::Tcp, a, b, &vec![7u8; 150_000]);
        w.record(Transport::Tcp, b, a, b"reply");
        drop(w);
        let bytes = std::fs::read(&path).unwrap();
        // Walk the packets: three segments of a→b then one of b→a.
        let mut at = 24;
        let mut seqs = Vec::new();
        while at < bytes.len() {
            let incl = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
            let pkt = &bytes[at + 16..at + 16 + incl];
            assert_eq!(ipv4_checksum(&pkt[..20]), 0);
            let tcp = &pkt[20..];
            let seq = u32::from_be_bytes(tcp[4..8].try_into().unwrap());
            let ack = u32::from_be_bytes(tcp[8..12].try_into().unwrap());
            seqs.push((
                u16::from_be_bytes([tcp[0], tcp[1]]),
                seq,
                ack,
                pkt.len() - 40,
            ));
            at += 16 + incl;
        }
        assert_eq!(
            seqs,
            vec![
                (700, 1, 1, 65_000),
                (700, 65_001, 1, 65_000),
                (700, 130_001, 1, 20_004),
                (2049, 1, 150_005, 9),
            ]
        );
    }
}
