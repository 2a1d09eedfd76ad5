//! NFS file handles: (export id, export generation, the kernel's own handle
//! of the inode) sealed with a keyed MAC.
//!
//! The kernel handle is what name_to_handle_at(2) gives and what
//! open_by_handle_at(2) turns back into a descriptor, as knfsd does: no
//! path is ever re-walked, so a rename or a planted symlink cannot redirect
//! a handle. The MAC (SipHash-2-4-128 under a per-server secret) means only
//! handles this server issued are opened at all: a client cannot mint one
//! for an inode outside its export, and a forged handle costs one hash, not
//! a file system lookup. It answers NFS3ERR_BADHANDLE (RFC 1813 §2.6).

use std::hash::Hasher;

use siphasher::sip128::{Hasher128, SipHasher24};

use crate::sys::fhandle::{KernelHandle, MAX_KERNEL_HANDLE};

/// RFC 1813 §2.5 NFS3_FHSIZE
pub const NFS3_FHSIZE: u32 = 64;

const MAGIC: [u8; 2] = *b"SQ";
const VERSION: u8 = 2;
/// magic(2) version(1) kernel_len(1) export_id(4) export_gen(4) type(4)
const HEADER: usize = 16;
const MAC_LEN: usize = 16;
/// The longest handle we issue: within NFSv3's 64 bytes (and NFSv4's 128).
pub const MAX_HANDLE_LEN: usize = HEADER + MAX_KERNEL_HANDLE + MAC_LEN;
const _: () = assert!(MAX_HANDLE_LEN <= NFS3_FHSIZE as usize);

/// Why a handle was rejected before any lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandleError {
    #[error("handle has {0} bytes, not a length this server issues")]
    BadLength(usize),
    #[error("handle has no stackquake magic")]
    BadMagic,
    #[error("handle has format version {0}")]
    BadVersion(u8),
    #[error("handle was not issued by this server (MAC mismatch)")]
    BadMac,
}

/// The per-server secret that seals handles. A server "restart" that keeps
/// its handles keeps its key; a new process makes a new one, so handles do
/// not outlive the process that issued them.
#[derive(Clone, PartialEq, Eq)]
pub struct HandleKey([u8; 16]);

impl std::fmt::Debug for HandleKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HandleKey(..)")
    }
}

impl HandleKey {
    pub fn random() -> std::io::Result<HandleKey> {
        use std::io::Read;
        let mut key = [0u8; 16];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
        Ok(HandleKey(key))
    }

    fn mac(&self, data: &[u8]) -> [u8; MAC_LEN] {
        let mut h = SipHasher24::new_with_key(&self.0);
        h.write(data);
        h.finish128().as_bytes()
    }
}

/// The decoded content of a handle.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileHandle {
    pub export_id: u32,
    /// Bumped when an export loses its handles so that old ones turn STALE.
    pub export_generation: u32,
    pub kernel: KernelHandle,
}

impl FileHandle {
    /// Layout: magic(2) version(1) kernel_len(1) export_id(4) export_gen(4)
    /// kernel_type(4) kernel_bytes(kernel_len) mac(16), big-endian.
    pub fn encode(&self, key: &HandleKey) -> Vec<u8> {
        let kernel = &self.kernel.bytes[..self.kernel.bytes.len().min(MAX_KERNEL_HANDLE)];
        let mut b = Vec::with_capacity(HEADER + kernel.len() + MAC_LEN);
        b.extend_from_slice(&MAGIC);
        b.push(VERSION);
        b.push(kernel.len() as u8);
        b.extend_from_slice(&self.export_id.to_be_bytes());
        b.extend_from_slice(&self.export_generation.to_be_bytes());
        b.extend_from_slice(&self.kernel.handle_type.to_be_bytes());
        b.extend_from_slice(kernel);
        let mac = key.mac(&b);
        b.extend_from_slice(&mac);
        b
    }

    /// The export a handle claims, without checking its MAC: enough for the
    /// fault hook to match calls by export, never for opening anything.
    pub fn peek_export_id(bytes: &[u8]) -> Option<u32> {
        check_layout(bytes).ok()?;
        Some(u32_at(bytes, 4))
    }

    pub fn decode(bytes: &[u8], key: &HandleKey) -> Result<FileHandle, HandleError> {
        let kernel_len = check_layout(bytes)?;
        let sealed = &bytes[..HEADER + kernel_len];
        let mac = key.mac(sealed);
        // Not a secret comparison worth hiding: a timing difference tells a
        // forger nothing about a 128-bit MAC it cannot compute.
        if bytes[HEADER + kernel_len..] != mac {
            return Err(HandleError::BadMac);
        }
        Ok(FileHandle {
            export_id: u32_at(bytes, 4),
            export_generation: u32_at(bytes, 8),
            kernel: KernelHandle {
                handle_type: u32_at(bytes, 12) as i32,
                bytes: bytes[HEADER..HEADER + kernel_len].to_vec(),
            },
        })
    }
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// Checks magic, version and that the length matches the kernel handle's;
/// returns the kernel handle's length.
fn check_layout(bytes: &[u8]) -> Result<usize, HandleError> {
    if bytes.len() < HEADER + MAC_LEN || bytes.len() > MAX_HANDLE_LEN {
        return Err(HandleError::BadLength(bytes.len()));
    }
    if bytes[0..2] != MAGIC {
        return Err(HandleError::BadMagic);
    }
    if bytes[2] != VERSION {
        return Err(HandleError::BadVersion(bytes[2]));
    }
    let kernel_len = bytes[3] as usize;
    if bytes.len() != HEADER + kernel_len + MAC_LEN {
        return Err(HandleError::BadLength(bytes.len()));
    }
    Ok(kernel_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> HandleKey {
        HandleKey([7; 16])
    }

    fn sample() -> FileHandle {
        FileHandle {
            export_id: 3,
            export_generation: 7,
            kernel: KernelHandle {
                handle_type: 0x81,
                bytes: vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
            },
        }
    }

    #[test]
    fn round_trip() {
        let h = sample();
        let b = h.encode(&key());
        assert_eq!(b.len(), HEADER + 12 + MAC_LEN);
        assert_eq!(FileHandle::decode(&b, &key()).unwrap(), h);
        assert_eq!(FileHandle::peek_export_id(&b), Some(3));
    }

    #[test]
    fn truncated_or_padded_handles_are_rejected() {
        let b = sample().encode(&key());
        for n in 0..b.len() {
            assert!(
                FileHandle::decode(&b[..n], &key()).is_err(),
                "{n} bytes accepted"
            );
        }
        let mut long = b.clone();
        long.push(0);
        assert_eq!(
            FileHandle::decode(&long, &key()),
            Err(HandleError::BadLength(long.len()))
        );
    }

    #[test]
    fn any_flipped_bit_is_rejected() {
        let b = sample().encode(&key());
        for i in 0..b.len() {
            for bit in 0..8 {
                let mut f = b.clone();
                f[i] ^= 1 << bit;
                assert!(
                    FileHandle::decode(&f, &key()).is_err(),
                    "byte {i} bit {bit} accepted"
                );
            }
        }
    }

    #[test]
    fn another_servers_key_does_not_open_it() {
        let b = sample().encode(&key());
        assert_eq!(
            FileHandle::decode(&b, &HandleKey([8; 16])),
            Err(HandleError::BadMac)
        );
        assert_ne!(HandleKey::random().unwrap(), HandleKey::random().unwrap());
    }

    #[test]
    fn forged_magic_and_version() {
        let mut b = sample().encode(&key());
        b[0] = b'X';
        assert_eq!(FileHandle::decode(&b, &key()), Err(HandleError::BadMagic));
        let mut b = sample().encode(&key());
        b[2] = 1;
        assert_eq!(
            FileHandle::decode(&b, &key()),
            Err(HandleError::BadVersion(1))
        );
    }
}
