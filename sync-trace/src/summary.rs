//! The end-of-run summary: counts per target and caller, a log2 histogram
//! of sync durations, and the losses.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::caller::Caller;

/// log2 buckets: bucket i holds durations in [2^(i-1), 2^i) ns; bucket 0 holds 0.
const BUCKETS: usize = 64;

#[derive(Clone, Debug, Default, Serialize)]
pub struct Histogram {
    #[serde(skip)]
    counts: Vec<u64>,
    /// Non-empty buckets: `le_ns` is the exclusive upper bound 2^i.
    buckets: Vec<Bucket>,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Bucket {
    pub le_ns: u64,
    pub count: u64,
}

impl Histogram {
    pub fn record(&mut self, ns: u64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS + 1];
        }
        let i = (u64::BITS - ns.leading_zeros()) as usize;
        self.counts[i] += 1;
    }

    fn finish(&mut self) {
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

#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    /// `function -> caller -> count` for syncs, `function -> "call" -> count` for populate functions.
    pub counts: BTreeMap<&'static str, BTreeMap<&'static str, u64>>,
    /// Sync duration histogram per function.
    pub sync_duration: BTreeMap<&'static str, Histogram>,
    /// Losses counted by the kernel programs: events, inflight, logs.
    pub lost: BTreeMap<&'static str, u64>,
    /// Records the daemon could not decode.
    pub undecodable: u64,
}

impl Summary {
    pub fn count_sync(&mut self, function: &'static str, caller: Caller, duration_ns: Option<u64>) {
        *self
            .counts
            .entry(function)
            .or_default()
            .entry(caller.name())
            .or_default() += 1;
        if let Some(ns) = duration_ns {
            self.sync_duration.entry(function).or_default().record(ns);
        }
    }

    pub fn count_call(&mut self, function: &'static str) {
        *self
            .counts
            .entry(function)
            .or_default()
            .entry("call")
            .or_default() += 1;
    }

    /// Freezes the histograms into their serialized buckets.
    pub fn finish(&mut self) {
        self.sync_duration.values_mut().for_each(Histogram::finish);
    }

    pub fn text(&self) -> String {
        let mut s = String::from("summary:\n");
        if self.counts.is_empty() {
            s.push_str("  no calls seen\n");
        }
        for (f, by_caller) in &self.counts {
            for (c, n) in by_caller {
                s.push_str(&format!("  {f:<28} {c:<16} {n}\n"));
            }
        }
        for (f, h) in &self.sync_duration {
            s.push_str(&format!("  {f} duration:\n"));
            for b in &h.buckets {
                s.push_str(&format!("    < {:>12} ns  {}\n", b.le_ns, b.count));
            }
        }
        let lost: Vec<String> = self.lost.iter().map(|(k, v)| format!("{k}={v}")).collect();
        s.push_str(&format!(
            "  lost: {}",
            if lost.is_empty() {
                "0".into()
            } else {
                lost.join(" ")
            }
        ));
        if self.undecodable > 0 {
            s.push_str(&format!(" undecodable={}", self.undecodable));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log2_buckets() {
        let mut h = Histogram::default();
        for ns in [0, 1, 2, 3, 1000, 1023, 1024] {
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
            ]
        );
    }
}
