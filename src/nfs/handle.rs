//! NFS file handles: a fixed-size, versioned encoding of (export id, export
//! generation, inode number, inode generation) with a checksum.
//!
//! A handle names an inode, never a path: the server resolves it through the
//! export's own inode index, so a forged handle can at worst name another
//! inode *inside* the same export, and one that fails the format checks is
//! answered with NFS3ERR_BADHANDLE (RFC 1813 §2.6).

/// Bytes in every handle this server issues (RFC 1813 allows up to 64).
pub const HANDLE_LEN: usize = 32;
/// RFC 1813 §2.5 NFS3_FHSIZE
pub const NFS3_FHSIZE: u32 = 64;

const MAGIC: [u8; 2] = *b"SQ";
const VERSION: u8 = 1;

/// Why a handle was rejected before any lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandleError {
    #[error("handle has {0} bytes, expected {HANDLE_LEN}")]
    BadLength(usize),
    #[error("handle has no stackquake magic")]
    BadMagic,
    #[error("handle has format version {0}")]
    BadVersion(u8),
    #[error("handle checksum does not match")]
    BadChecksum,
}

/// The decoded content of a handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileHandle {
    pub export_id: u32,
    /// Bumped when an export is re-created so that old handles turn STALE.
    pub export_generation: u32,
    pub ino: u64,
    /// Distinguishes a reused inode number (derived from the birth time).
    pub ino_generation: u32,
}

/// FNV-1a 64: a fixed, seedless hash so handles and directory cookies stay
/// identical across server restarts.
pub fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl FileHandle {
    /// Layout: magic(2) version(1) reserved(1) export_id(4) export_gen(4)
    /// ino(8) ino_gen(4) checksum(8), all big-endian.
    pub fn encode(&self) -> [u8; HANDLE_LEN] {
        let mut b = [0u8; HANDLE_LEN];
        b[0..2].copy_from_slice(&MAGIC);
        b[2] = VERSION;
        b[4..8].copy_from_slice(&self.export_id.to_be_bytes());
        b[8..12].copy_from_slice(&self.export_generation.to_be_bytes());
        b[12..20].copy_from_slice(&self.ino.to_be_bytes());
        b[20..24].copy_from_slice(&self.ino_generation.to_be_bytes());
        let sum = fnv1a64(&b[..24]);
        b[24..32].copy_from_slice(&sum.to_be_bytes());
        b
    }

    pub fn decode(bytes: &[u8]) -> Result<FileHandle, HandleError> {
        if bytes.len() != HANDLE_LEN {
            return Err(HandleError::BadLength(bytes.len()));
        }
        if bytes[0..2] != MAGIC {
            return Err(HandleError::BadMagic);
        }
        if bytes[2] != VERSION {
            return Err(HandleError::BadVersion(bytes[2]));
        }
        let u32_at =
            |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let u64_at = |i: usize| (u32_at(i) as u64) << 32 | u32_at(i + 4) as u64;
        if u64_at(24) != fnv1a64(&bytes[..24]) || bytes[3] != 0 {
            return Err(HandleError::BadChecksum);
        }
        Ok(FileHandle {
            export_id: u32_at(4),
            export_generation: u32_at(8),
            ino: u64_at(12),
            ino_generation: u32_at(20),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> FileHandle {
        FileHandle {
            export_id: 3,
            export_generation: 7,
            ino: 0x1122_3344_5566_7788,
            ino_generation: 99,
        }
    }

    #[test]
    fn round_trip() {
        let h = sample();
        assert_eq!(FileHandle::decode(&h.encode()).unwrap(), h);
    }

    #[test]
    fn truncated_or_padded_handles_are_rejected() {
        let b = sample().encode();
        for n in 0..HANDLE_LEN {
            assert_eq!(FileHandle::decode(&b[..n]), Err(HandleError::BadLength(n)));
        }
        let mut long = b.to_vec();
        long.push(0);
        assert_eq!(FileHandle::decode(&long), Err(HandleError::BadLength(33)));
    }

    #[test]
    fn any_flipped_bit_is_rejected() {
        let b = sample().encode();
        for i in 0..HANDLE_LEN {
            for bit in 0..8 {
                let mut f = b;
                f[i] ^= 1 << bit;
                assert!(
                    FileHandle::decode(&f).is_err(),
                    "byte {i} bit {bit} accepted"
                );
            }
        }
    }

    #[test]
    fn forged_magic_and_version() {
        let mut b = sample().encode();
        b[0] = b'X';
        assert_eq!(FileHandle::decode(&b), Err(HandleError::BadMagic));
        let mut b = sample().encode();
        b[2] = 2;
        assert_eq!(FileHandle::decode(&b), Err(HandleError::BadVersion(2)));
    }
}
