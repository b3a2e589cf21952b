//! The end-of-run summary: counts per target and caller, populations,
//! pairings, log2 histograms of sync durations and latencies, and losses.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::record::LatencyKind;

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

fn bump(map: &mut BTreeMap<String, BTreeMap<String, u64>>, a: &str, b: &str) {
    *map.entry(a.to_string())
        .or_default()
        .entry(b.to_string())
        .or_default() += 1;
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// `function -> caller -> count` for syncs, `function -> "call" -> count` for populate functions.
    pub counts: BTreeMap<String, BTreeMap<String, u64>>,
    /// Sync duration histogram per function.
    pub sync_duration: BTreeMap<String, Histogram>,
    /// `region -> source -> count` of top-level populations.
    pub populations: BTreeMap<String, BTreeMap<String, u64>>,
    /// Populations paired with a covering sync, no records lost in their window.
    pub paired: u64,
    /// Populations with no covering sync whose walk found PGDs lacking the
    /// entry: the real case.
    pub unsynced: u64,
    /// Populations with no covering sync traced, but every PGD walked carries
    /// the entry (and no records were lost in their window).
    #[serde(default)]
    pub unsynced_unconfirmed: u64,
    /// Verdicts (paired, or unsynced without PGDs lacking the entry) whose
    /// window overlapped lost kernel records.
    #[serde(default)]
    pub uncertain: u64,
    /// Kernel top-level entries that went from present to none.
    #[serde(default)]
    pub depopulations: u64,
    pub mismatches: u64,
    pub verifications: u64,
    /// Populate-to-sync latency per latency kind (`exact`, `upper_bound`).
    pub latency: BTreeMap<String, Histogram>,
    /// Losses counted by the kernel programs: events, inflight, logs.
    pub lost: BTreeMap<String, u64>,
    /// Records the daemon could not decode.
    pub undecodable: u64,
    /// What a bounded buffer of the daemon had to drop, by buffer.
    #[serde(default)]
    pub dropped: BTreeMap<String, u64>,
}

impl Summary {
    pub fn count_sync(&mut self, function: &str, caller: &str, duration_ns: Option<u64>) {
        bump(&mut self.counts, function, caller);
        if let Some(ns) = duration_ns {
            self.sync_duration
                .entry(function.to_string())
                .or_default()
                .record(ns);
        }
    }

    pub fn count_call(&mut self, function: &str) {
        bump(&mut self.counts, function, "call");
    }

    pub fn count_population(&mut self, region: &str, source: &str) {
        bump(&mut self.populations, region, source);
    }

    pub fn count_paired(&mut self, kind: LatencyKind, latency_ns: u64, uncertain: bool) {
        if uncertain {
            self.uncertain += 1;
        } else {
            self.paired += 1;
        }
        self.latency
            .entry(kind.name().to_string())
            .or_default()
            .record(latency_ns);
    }

    /// A confirmed unsynced population is counted as such even when records
    /// were lost: PGDs lack the entry after the window, whatever was traced.
    pub fn count_unsynced(&mut self, confirmed: bool, uncertain: bool) {
        match (confirmed, uncertain) {
            (true, _) => self.unsynced += 1,
            (false, true) => self.uncertain += 1,
            (false, false) => self.unsynced_unconfirmed += 1,
        }
    }

    /// A bounded buffer dropped an entry: counted, and logged the first time.
    pub fn count_dropped(&mut self, what: &str) {
        let n = self.dropped.entry(what.to_string()).or_default();
        if *n == 0 {
            log::warn!(
                "dropped the oldest entry of a full buffer ({what}); the summary counts every drop"
            );
        }
        *n += 1;
    }

    /// Freezes the histograms into their serialized buckets.
    pub fn finish(&mut self) {
        self.sync_duration.values_mut().for_each(Histogram::finish);
        self.latency.values_mut().for_each(Histogram::finish);
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
        for (region, by_source) in &self.populations {
            for (source, n) in by_source {
                s.push_str(&format!("  populations {region:<14} {source:<8} {n}\n"));
            }
        }
        s.push_str(&format!(
            "  paired {} unsynced {} (unconfirmed {}) uncertain {} depopulations {} mismatches {} verifications {}\n",
            self.paired,
            self.unsynced,
            self.unsynced_unconfirmed,
            self.uncertain,
            self.depopulations,
            self.mismatches,
            self.verifications
        ));
        for (k, h) in &self.latency {
            s.push_str(&format!("  populate-to-sync latency ({k}):\n"));
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
        for (what, n) in &self.dropped {
            s.push_str(&format!(" dropped {what}={n}"));
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
