//! log2 histograms of durations in ns, as the summary carries them.

use serde::{Deserialize, Serialize};

/// log2 buckets: bucket i holds durations in [2^(i-1), 2^i) ns; bucket 0 holds 0.
const BUCKETS: usize = 65;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    #[serde(skip)]
    counts: Vec<u64>,
    /// Non-empty buckets: `le_ns` is the exclusive upper bound 2^i.
    pub buckets: Vec<Bucket>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Bucket {
    pub le_ns: u64,
    pub count: u64,
}

impl Histogram {
    pub fn record(&mut self, ns: u64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS];
        }
        let i = (u64::BITS - ns.leading_zeros()) as usize;
        self.counts[i] += 1;
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.counts.iter().all(|&c| c == 0)
    }

    /// Adds the counts of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        if other.counts.is_empty() {
            return;
        }
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS];
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
    }

    /// Freezes the counts into the serialized buckets.
    pub fn finish(&mut self) {
        self.buckets = self
            .counts
            .iter()
            .enumerate()
            .filter(|(_, &c)| c > 0)
            .map(|(i, &c)| Bucket {
                le_ns: 1u64.checked_shl(i as u32).unwrap_or(u64::MAX),
                count: c,
            })
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log2_buckets() {
        let mut h = Histogram::default();
        for ns in [0, 1, 2, 3, 1000, 1023, 1024, u64::MAX] {
            h.record(ns);
        }
        h.finish();
        assert_eq!(
            h.buckets,
            vec![
                Bucket { le_ns: 1, count: 1 },
                Bucket { le_ns: 2, count: 1 },
                Bucket { le_ns: 4, count: 2 },
                Bucket {
                    le_ns: 1024,
                    count: 2
                },
                Bucket {
                    le_ns: 2048,
                    count: 1
                },
                Bucket {
                    le_ns: u64::MAX,
                    count: 1
                },
            ]
        );
    }
}
