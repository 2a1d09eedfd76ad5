//! Where built initramfs images and KVM probe results are kept between runs,
//! and the content hash that keys them.

use std::path::PathBuf;

/// $XDG_CACHE_HOME/stackquake, else /var/cache/stackquake for root, else
/// ~/.cache/stackquake.
pub fn cache_dir() -> PathBuf {
    if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("stackquake");
    }
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/cache/stackquake");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
    PathBuf::from(home).join(".cache/stackquake")
}

/// FNV-1a, 64 bit: stable across Rust releases (unlike `DefaultHasher`), so
/// a cache key computed by one build is found by the next.
#[derive(Debug, Clone)]
pub struct ContentHash(u64);

impl Default for ContentHash {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl ContentHash {
    pub fn update(&mut self, bytes: &[u8]) -> &mut Self {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        // Separate fields so ("ab","c") and ("a","bc") differ.
        self.0 ^= bytes.len() as u64;
        self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        self
    }

    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_stable_and_field_separated() {
        // Pinned: a change here silently invalidates every user's cache.
        assert_eq!(
            ContentHash::default().update(b"a").hex(),
            "089be307b544f397"
        );
        let ab_c = ContentHash::default().update(b"ab").update(b"c").hex();
        let a_bc = ContentHash::default().update(b"a").update(b"bc").hex();
        assert_ne!(ab_c, a_bc);
    }
}
