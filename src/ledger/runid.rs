//! Run ids: 8 characters, sortable by start time, unique per ledger directory.

use std::fmt;
use std::io::Read;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds are counted from here so that six base-36 digits last until 2094.
const EPOCH_OFFSET_SECS: u64 = 1_735_689_600; // 2025-01-01T00:00:00Z
const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
const TIME_DIGITS: usize = 6;
const RANDOM_DIGITS: usize = 2;
pub const RUN_ID_LEN: usize = TIME_DIGITS + RANDOM_DIGITS;

/// A run id such as `0t3k9xa7`: six base-36 digits of seconds since
/// 2025-01-01 (fixed width, so string order is time order) and two random
/// base-36 digits. Eight characters because interface names must fit
/// IFNAMSIZ (15 usable bytes): `sq` + 8 + a 5-character suffix. The ledger
/// file is created with O_EXCL, which makes the id unique on this host.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RunId(String);

impl RunId {
    pub fn generate() -> RunId {
        Self::from_parts(SystemTime::now(), random_u16())
    }

    /// Deterministic constructor behind `generate`, for tests.
    pub fn from_parts(at: SystemTime, random: u16) -> RunId {
        let secs = at
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
            .saturating_sub(EPOCH_OFFSET_SECS);
        let mut s = base36(secs, TIME_DIGITS);
        s.push_str(&base36(u64::from(random), RANDOM_DIGITS));
        RunId(s)
    }

    /// Accepts exactly what `generate` produces.
    pub fn parse(s: &str) -> Option<RunId> {
        (s.len() == RUN_ID_LEN && s.bytes().all(|b| ALPHABET.contains(&b)))
            .then(|| RunId(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The second the run started (from the id alone).
    pub fn started_at(&self) -> SystemTime {
        let secs = self.0[..TIME_DIGITS].bytes().fold(0u64, |acc, b| {
            acc * 36 + ALPHABET.iter().position(|&a| a == b).unwrap_or(0) as u64
        });
        UNIX_EPOCH + Duration::from_secs(secs + EPOCH_OFFSET_SECS)
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Low `width` base-36 digits of `v`, most significant first (wraps).
fn base36(mut v: u64, width: usize) -> String {
    let mut digits = vec![b'0'; width];
    for d in digits.iter_mut().rev() {
        *d = ALPHABET[(v % 36) as usize];
        v /= 36;
    }
    String::from_utf8(digits).expect("alphabet is ascii")
}

fn random_u16() -> u16 {
    let mut b = [0u8; 2];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_err()
    {
        // No urandom: the sub-second clock is still a fair tie-breaker.
        let n = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        b = ((n ^ std::process::id()) as u16).to_le_bytes();
    }
    u16::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_is_fixed_width_and_sorts_by_time() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_763_754_780); // 2025-11-21
        let a = RunId::from_parts(t0, 1295);
        let b = RunId::from_parts(t0 + Duration::from_secs(1), 0);
        let c = RunId::from_parts(t0 + Duration::from_secs(100_000), 7);
        assert_eq!(a.as_str().len(), RUN_ID_LEN);
        assert!(a.as_str().ends_with("zz"), "{a}");
        assert!(a < b && b < c);
        assert_eq!(a.started_at(), t0);
        assert_eq!(RunId::parse(a.as_str()), Some(a.clone()));
    }

    #[test]
    fn known_value() {
        // 36^2 + 2*36 + 3 = 1371 seconds after the offset epoch, random 37.
        let id = RunId::from_parts(
            UNIX_EPOCH + Duration::from_secs(EPOCH_OFFSET_SECS + 1371),
            37,
        );
        assert_eq!(id.as_str(), "00012311");
    }

    #[test]
    fn parse_rejects_other_shapes() {
        for bad in ["", "ABCDEFGH", "abc", "abcdefghi", "abcd-fgh"] {
            assert_eq!(RunId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn ids_fit_interface_names() {
        let id = RunId::generate();
        assert!(format!("sq{id}-l12a").len() <= 15);
    }
}
