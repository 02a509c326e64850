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
    pub rtt_us: Vec<u64>,
    pub detect_ms: Vec<u64>,
    pub lost: u64,
}

/// Nearest-rank percentile of unsorted samples.
pub fn percentile(samples: &[u64], p: f64) -> Option<u64> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let samples = [5, 1, 4, 2, 3];
        assert_eq!(percentile(&samples, 50.0), Some(3));
        assert_eq!(percentile(&samples, 99.0), Some(5));
        assert_eq!(percentile(&samples, 0.0), Some(1));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
