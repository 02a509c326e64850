//! The end-of-session summary: counts, and percentiles of round trips and
//! detection times.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

/// Counts for the end-of-session summary.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub connections: u64,
    pub probes: u64,
    pub answered: u64,
    /// Probe runs ended by other traffic from the peer rather than an answer.
    pub answered_by_traffic: u64,
    pub unanswered: u64,
    pub resets: u64,
    /// Shown with `watch --all` only.
    pub connect_failures: u64,
    pub timeouts: BTreeMap<String, u64>,
    pub rtt_us: Samples,
    pub detect_ms: Samples,
    pub lost: u64,
}

/// A distribution in bounded memory: a watch of 50 000 connections answers
/// 50 000 probes a second, and a list of every round trip would grow by
/// 400 kB a second. An HDR histogram with two significant digits counts
/// values below 256 exactly and keeps percentiles within 1 % above, the
/// maximum exactly, in a few tens of kB whatever the range.
#[derive(Debug, Clone)]
pub struct Samples {
    histogram: Histogram<u64>,
    /// Exact: the histogram knows only its bucket.
    max: Option<u64>,
}

impl Default for Samples {
    fn default() -> Self {
        Self {
            // Two significant digits with auto-resizing is always valid.
            histogram: Histogram::new(2).expect("2 significant digits"),
            max: None,
        }
    }
}

impl Samples {
    pub fn record(&mut self, value: u64) {
        // `record` widens the range as values grow; it fails only where
        // the histogram cannot (near u64::MAX): saturate, never drop.
        if self.histogram.record(value).is_err() {
            self.histogram.saturating_record(value);
        }
        self.max = Some(self.max.map_or(value, |m| m.max(value)));
    }

    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    pub fn max(&self) -> Option<u64> {
        self.max
    }

    /// Nearest-rank percentile, never above the maximum seen.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        let max = self.max()?;
        Some(self.histogram.value_at_percentile(p).min(max))
    }
}

impl FromIterator<u64> for Samples {
    fn from_iter<I: IntoIterator<Item = u64>>(values: I) -> Self {
        let mut samples = Self::default();
        for v in values {
            samples.record(v);
        }
        samples
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank_exact_for_small_values() {
        let samples: Samples = [5, 1, 4, 2, 3].into_iter().collect();
        assert_eq!(samples.percentile(50.0), Some(3));
        assert_eq!(samples.percentile(99.0), Some(5));
        assert_eq!(samples.percentile(0.0), Some(1));
        assert_eq!(samples.count(), 5);
        assert_eq!(Samples::default().percentile(50.0), None);
        let small: Samples = (0..256u64).collect();
        for v in [0u64, 100, 255] {
            let p = (v + 1) as f64 * 100.0 / 256.0;
            assert_eq!(small.percentile(p), Some(v), "exact below 256");
        }
    }

    #[test]
    fn large_values_are_within_one_percent_and_the_maximum_is_exact() {
        let samples: Samples = (1..=100_000u64).map(|v| v * 37).collect();
        for p in [50.0, 90.0, 99.0] {
            let exact = ((p / 100.0) * 100_000.0) as u64 * 37;
            let got = samples.percentile(p).unwrap();
            let error = (got as f64 - exact as f64).abs() / exact as f64;
            assert!(error <= 0.01, "p{p}: {got} vs {exact}");
        }
        assert_eq!(samples.percentile(100.0), Some(3_700_000));
        assert_eq!(samples.max(), Some(3_700_000));
    }

    #[test]
    fn the_whole_range_fits_in_bounded_memory() {
        let mut s = Samples::default();
        s.record(0);
        s.record(u64::MAX);
        assert_eq!(s.max(), Some(u64::MAX));
        assert_eq!(s.count(), 2);
        // 64 powers of two × 128 sub-buckets of 8 bytes at most.
        assert!(
            s.histogram.distinct_values() <= 64 * 128,
            "{}",
            s.histogram.distinct_values()
        );
    }
}
