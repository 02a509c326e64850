//! The end-of-session summary: counts, and percentiles of round trips and
//! detection times.

use std::collections::BTreeMap;

/// Counts for the end-of-session summary.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub connections: u64,
    pub probes: u64,
    pub answered: u64,
    pub unanswered: u64,
    pub resets: u64,
    pub timeouts: BTreeMap<String, u64>,
    pub rtt_us: Samples,
    pub detect_ms: Samples,
    pub lost: u64,
}

/// Values below this are counted exactly.
const EXACT_BELOW: u64 = 128;
/// Buckets per power of two above that: a bucket is at most 1/64 (1.6 %)
/// of its values wide.
const SUB_BUCKETS: u64 = 64;

/// A distribution in bounded memory: a watch of 50 000 connections answers
/// 50 000 probes a second, and a list of every round trip would grow by
/// 400 kB a second. Log-linear buckets keep percentiles within 1.6 % (exact
/// below 128), and the maximum exactly, in at most 30 kB.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Samples {
    counts: Vec<u64>,
    count: u64,
    max: Option<u64>,
}

impl Samples {
    pub fn record(&mut self, value: u64) {
        let bucket = bucket_of(value);
        if self.counts.len() <= bucket {
            self.counts.resize(bucket + 1, 0);
        }
        self.counts[bucket] += 1;
        self.count += 1;
        self.max = Some(self.max.map_or(value, |m| m.max(value)));
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn max(&self) -> Option<u64> {
        self.max
    }

    /// Nearest-rank percentile: the lowest value of the bucket holding the
    /// ranked sample (never above the maximum seen).
    pub fn percentile(&self, p: f64) -> Option<u64> {
        let max = self.max?;
        let rank = ((p / 100.0) * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (bucket, n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(if seen == self.count {
                    max
                } else {
                    lowest_value_of(bucket).min(max)
                });
            }
        }
        Some(max)
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

fn bucket_of(value: u64) -> usize {
    if value < EXACT_BELOW {
        return value as usize;
    }
    let exponent = u64::from(63 - value.leading_zeros());
    let shift = exponent - SUB_BUCKETS.trailing_zeros() as u64;
    let sub = (value >> shift) & (SUB_BUCKETS - 1);
    let first_exponent = u64::from(EXACT_BELOW.trailing_zeros());
    (EXACT_BELOW + (exponent - first_exponent) * SUB_BUCKETS + sub) as usize
}

fn lowest_value_of(bucket: usize) -> u64 {
    let bucket = bucket as u64;
    if bucket < EXACT_BELOW {
        return bucket;
    }
    let first_exponent = u64::from(EXACT_BELOW.trailing_zeros());
    let exponent = first_exponent + (bucket - EXACT_BELOW) / SUB_BUCKETS;
    let sub = (bucket - EXACT_BELOW) % SUB_BUCKETS;
    let shift = exponent - u64::from(SUB_BUCKETS.trailing_zeros());
    (SUB_BUCKETS + sub) << shift
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
    }

    #[test]
    fn large_values_are_within_two_percent_and_the_maximum_is_exact() {
        let samples: Samples = (1..=100_000u64).map(|v| v * 37).collect();
        for p in [50.0, 90.0, 99.0] {
            let exact = ((p / 100.0) * 100_000.0) as u64 * 37;
            let got = samples.percentile(p).unwrap();
            assert!(
                got <= exact && got as f64 >= exact as f64 * 0.984,
                "p{p}: {got} vs {exact}"
            );
        }
        assert_eq!(samples.percentile(100.0), Some(3_700_000));
        assert_eq!(samples.max(), Some(3_700_000));
    }

    #[test]
    fn buckets_round_trip_and_cover_u64() {
        for v in [0, 127, 128, 129, 4000, 4095, 4096, 1 << 40, u64::MAX] {
            let low = lowest_value_of(bucket_of(v));
            assert!(low <= v && bucket_of(low) == bucket_of(v), "{v}");
        }
        let mut s = Samples::default();
        s.record(u64::MAX);
        assert!(s.counts.len() < 4000, "{} buckets", s.counts.len());
    }
}
