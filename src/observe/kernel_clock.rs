//! The kernel log's clock on the run's time axis.
//!
//! A /dev/kmsg record carries the kernel's `local_clock()` in microseconds;
//! the run's times are CLOCK_MONOTONIC. The two tick together but are not
//! the same clock (monotonic is slewed by NTP, local_clock is not, so they
//! part by up to 0.5 ms per second of uptime on a host that has been up for
//! days). Rather than assume one equals the other, the clock is bridged by
//! the lines stackquake writes itself: each is stamped by the kernel while
//! we know, to within the write(2), when on our clock we wrote it. Every
//! such line renews the offset, so drift over a long run stays bounded by
//! the gap between two markers.

use super::KmsgRecord;

#[derive(Debug, Default)]
pub struct KernelClock {
    /// kernel ns − monotonic ns, from the newest bridge line seen.
    offset_ns: Option<i128>,
    /// Lines written but not read back yet: their text and the monotonic
    /// time (midpoint of the write) they were written at.
    pending: Vec<(String, u64)>,
}

impl KernelClock {
    /// Notes that `text` was written to the kernel log between monotonic
    /// times `before` and `after`.
    pub fn wrote(&mut self, text: &str, before: u64, after: u64) {
        self.pending.push((
            text.to_string(),
            before + (after.saturating_sub(before)) / 2,
        ));
    }

    /// Learns from the bridge lines among `records` (a batch as read, in
    /// log order), then returns when each record was logged on the
    /// monotonic clock, or `None` while no bridge line has been seen.
    /// A batch is scanned for bridge lines first, so lines logged just
    /// before one still get a time.
    pub fn place(&mut self, records: &[KmsgRecord]) -> Vec<Option<u64>> {
        for r in records {
            if let Some(i) = self.pending.iter().position(|(t, _)| *t == r.text) {
                let (_, mono) = self.pending.swap_remove(i);
                self.offset_ns = Some(i128::from(r.usec) * 1000 - i128::from(mono));
            }
        }
        records
            .iter()
            .map(|r| {
                let offset = self.offset_ns?;
                u64::try_from(i128::from(r.usec) * 1000 - offset).ok()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(usec: u64, text: &str) -> KmsgRecord {
        KmsgRecord {
            seq: 0,
            level: 5,
            usec,
            text: text.into(),
        }
    }

    #[test]
    fn a_bridge_line_places_the_lines_around_it_on_the_monotonic_clock() {
        let mut clock = KernelClock::default();
        // The kernel's clock runs 7 s ahead of monotonic here.
        clock.wrote("bridge", 1_000_000_000, 1_000_000_100);
        let batch = [
            rec(7_999_000, "before"),
            rec(8_000_000, "bridge"),
            rec(8_250_000, "after"),
        ];
        assert_eq!(
            clock.place(&batch),
            vec![Some(999_000_050), Some(1_000_000_050), Some(1_250_000_050)]
        );
    }

    #[test]
    fn nothing_is_placed_before_any_bridge_line_and_each_one_renews_the_offset() {
        let mut clock = KernelClock::default();
        assert_eq!(clock.place(&[rec(5, "early")]), vec![None]);
        clock.wrote("one", 100_000, 100_000);
        clock.place(&[rec(100, "one")]);
        assert_eq!(clock.place(&[rec(200, "x")]), vec![Some(200_000)]);
        // Drift: the kernel clock now reads 1 ms more than monotonic.
        clock.wrote("two", 300_000, 300_000);
        assert_eq!(
            clock.place(&[rec(301, "two"), rec(401, "y")]),
            vec![Some(300_000), Some(400_000)]
        );
    }

    #[test]
    fn an_unrelated_line_with_other_text_does_not_move_the_clock() {
        let mut clock = KernelClock::default();
        clock.wrote("mine", 1_000, 1_000);
        assert_eq!(clock.place(&[rec(50, "someone else's")]), vec![None]);
    }
}
