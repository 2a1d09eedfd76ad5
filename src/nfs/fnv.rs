//! FNV-1a 64: a fixed, seedless hash for values that must stay the same
//! across server restarts and need no secrecy (directory cookies, the
//! duplicate-request cache's checksum). Handles use a keyed MAC instead.

pub fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}
