//! Mapping run times and latencies to page coordinates.

/// Run time (ns since the timeline began) → x in the plot, linearly.
#[derive(Debug, Clone, Copy)]
pub struct TimeScale {
    pub start_ns: u64,
    pub end_ns: u64,
    pub left: f64,
    pub width: f64,
}

impl TimeScale {
    /// A scale over `[start_ns, end_ns]`; an empty run still gets one
    /// millisecond so nothing divides by zero.
    pub fn new(start_ns: u64, end_ns: u64, left: f64, width: f64) -> TimeScale {
        TimeScale {
            start_ns,
            end_ns: end_ns.max(start_ns + 1_000_000),
            left,
            width,
        }
    }

    /// Times outside the axis are clamped to its edges.
    pub fn x(&self, t_ns: u64) -> f64 {
        let t = t_ns.clamp(self.start_ns, self.end_ns) - self.start_ns;
        self.left + self.width * t as f64 / (self.end_ns - self.start_ns) as f64
    }

    /// Tick times at the smallest round step (1, 2 or 5 × 10^k ns) that
    /// gives at most `target` intervals.
    pub fn ticks(&self, target: u32) -> Vec<u64> {
        let span = (self.end_ns - self.start_ns) as f64;
        let raw = span / f64::from(target.max(1));
        let decade = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 5.0, 10.0]
            .into_iter()
            .map(|m| m * decade)
            .find(|s| *s >= raw)
            .unwrap_or(10.0 * decade)
            .max(1.0) as u64;
        let first = self.start_ns.div_ceil(step) * step;
        (0..)
            .map(|i| first + i * step)
            .take_while(|t| *t <= self.end_ns)
            .collect()
    }
}

/// Latency → y inside a lane, on a log scale: a 100 µs write and a 5 s
/// stall both need to be readable in one lane, which a linear scale
/// cannot do.
#[derive(Debug, Clone, Copy)]
pub struct LatencyScale {
    /// Lowest latency shown (the lane's bottom edge), ns; a power of ten.
    pub floor_ns: u64,
    /// Highest latency shown (the lane's top edge), ns; a power of ten.
    pub ceil_ns: u64,
    pub top: f64,
    pub height: f64,
}

impl LatencyScale {
    /// From 10 µs (below which nothing a workload does is interesting) to
    /// the decade above the slowest latency, at least 1 s.
    pub fn fitting(max_latency_ns: u64, top: f64, height: f64) -> LatencyScale {
        let mut ceil_ns = 1_000_000_000u64;
        while ceil_ns < max_latency_ns {
            ceil_ns = ceil_ns.saturating_mul(10);
        }
        LatencyScale {
            floor_ns: 10_000,
            ceil_ns,
            top,
            height,
        }
    }

    /// Latencies below the floor sit on it; above the ceiling, at the top.
    pub fn y(&self, latency_ns: u64) -> f64 {
        let lo = (self.floor_ns as f64).log10();
        let hi = (self.ceil_ns as f64).log10();
        let v = (latency_ns.max(1) as f64).log10().clamp(lo, hi);
        self.top + self.height * (1.0 - (v - lo) / (hi - lo))
    }

    /// One gridline per decade, from floor to ceiling.
    pub fn decades(&self) -> Vec<u64> {
        let mut out = vec![self.floor_ns];
        while *out.last().expect("starts non-empty") < self.ceil_ns {
            out.push(out.last().expect("non-empty") * 10);
        }
        out
    }
}

/// A duration as a person reads it: `850ns`, `12µs`, `3.4ms`, `1.25s`.
pub fn human_ns(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns}ns"),
        1_000..1_000_000 => format!("{:.0}µs", ns as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1}ms", ns as f64 / 1e6),
        _ => format!("{:.2}s", ns as f64 / 1e9),
    }
}

/// A run time as the terminal report writes it: `+1.05s`.
pub fn run_time(ns: u64) -> String {
    format!("+{:.3}s", ns as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_maps_linearly_and_clamps_to_the_axis() {
        let s = TimeScale::new(0, 2_000_000_000, 100.0, 1000.0);
        assert_eq!(s.x(0), 100.0);
        assert_eq!(s.x(1_000_000_000), 600.0);
        assert_eq!(s.x(2_000_000_000), 1100.0);
        assert_eq!(s.x(5_000_000_000), 1100.0);
    }

    #[test]
    fn an_empty_run_still_has_a_width() {
        let s = TimeScale::new(0, 0, 0.0, 100.0);
        assert!(s.x(0).is_finite());
        assert_eq!(s.x(1_000_000), 100.0);
    }

    #[test]
    fn ticks_are_round_and_inside_the_axis() {
        let s = TimeScale::new(0, 2_033_000_000, 0.0, 1000.0);
        let ticks = s.ticks(10);
        // 10 intervals would be 203 ms each; the next round step is 500 ms.
        assert_eq!(
            ticks,
            [0, 500_000_000, 1_000_000_000, 1_500_000_000, 2_000_000_000]
        );
        let s = TimeScale::new(0, 2_000_000_000, 0.0, 1000.0);
        assert_eq!(s.ticks(10).len(), 11, "200 ms steps, both ends included");
    }

    #[test]
    fn latency_is_logarithmic() {
        let s = LatencyScale::fitting(0, 0.0, 100.0);
        assert_eq!((s.floor_ns, s.ceil_ns), (10_000, 1_000_000_000));
        // Five decades over 100 px: each decade is 20 px.
        assert!((s.y(10_000) - 100.0).abs() < 1e-9);
        assert!((s.y(100_000) - 80.0).abs() < 1e-9);
        assert!((s.y(1_000_000) - 60.0).abs() < 1e-9);
        assert!((s.y(1_000_000_000) - 0.0).abs() < 1e-9);
        assert_eq!(s.y(1), s.y(10_000), "below the floor sits on it");
        assert_eq!(s.decades().len(), 6);
    }

    #[test]
    fn the_latency_ceiling_grows_by_decades_to_fit_the_slowest_op() {
        assert_eq!(
            LatencyScale::fitting(35_000_000_000, 0.0, 1.0).ceil_ns,
            100_000_000_000
        );
        assert_eq!(
            LatencyScale::fitting(1_000_000_000, 0.0, 1.0).ceil_ns,
            1_000_000_000
        );
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_ns(850), "850ns");
        assert_eq!(human_ns(12_300), "12µs");
        assert_eq!(human_ns(3_400_000), "3.4ms");
        assert_eq!(human_ns(1_250_000_000), "1.25s");
        assert_eq!(run_time(1_045_657_933), "+1.046s");
    }
}
