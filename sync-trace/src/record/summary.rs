//! The end-of-run summary, the last record: counts per target and caller,
//! populations, pairings, log2 histograms of sync durations and latencies,
//! and losses.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use sync_trace_common::Target;

use super::{Caller, Histogram, LatencyKind};

/// Counts one of `a`/`b`; allocates the keys only the first time (this
/// runs for every traced call).
fn bump(map: &mut BTreeMap<String, BTreeMap<String, u64>>, a: &str, b: &str) {
    bump_by(map, a, b, 1);
}

fn bump_by(map: &mut BTreeMap<String, BTreeMap<String, u64>>, a: &str, b: &str, n: u64) {
    // The keys are made once: later bumps of a known pair allocate nothing.
    if let Some(v) = map.get_mut(a).and_then(|m| m.get_mut(b)) {
        *v += n;
        return;
    }
    *map.entry(a.to_string())
        .or_default()
        .entry(b.to_string())
        .or_default() += n;
}

/// The value of `key`, made the first time it is asked for.
fn entry<'m, V: Default>(map: &'m mut BTreeMap<String, V>, key: &str) -> &'m mut V {
    if !map.contains_key(key) {
        map.insert(key.to_string(), V::default());
    }
    map.get_mut(key).expect("inserted above")
}

/// Adds `n` to the value of `key`, made the first time.
fn add(map: &mut BTreeMap<String, u64>, key: &str, n: u64) {
    match map.get_mut(key) {
        Some(v) => *v += n,
        None => {
            map.insert(key.to_string(), n);
        }
    }
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
    /// Kernel records read from the ring buffer, by kind: `entry` and `exit` (one of each per
    /// traced call), `diag`. With `lost.events` they account for every record the kernel
    /// programs tried to write: a `run`'s own count (`replay` leaves it empty).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub received: BTreeMap<String, u64>,
    /// What a bounded buffer of the daemon had to drop, by buffer.
    #[serde(default)]
    pub dropped: BTreeMap<String, u64>,
    /// Populations still undecided when the stream ended: no covering sync
    /// yet, and no walk after their grace window compared their slot.
    #[serde(default)]
    pub pending: u64,
}

/// Values of [`Caller`].
const CALLERS: usize = <Caller as strum::VariantNames>::VARIANTS.len();

/// The summary's counts of traced calls, kept in plain arrays while the
/// records stream (a sync costs no map lookup) and folded into the
/// [`Summary`] at the end: the same keys and values as counting each call
/// into the summary's maps.
#[derive(Clone, Debug)]
pub struct CallCounts {
    /// Syncs by target and caller.
    syncs: [[u64; CALLERS]; Target::ALL.len()],
    /// Sync durations by target.
    durations: Vec<Histogram>,
    /// Kernel records read, by [`Received`] kind.
    received: [u64; RECEIVED.len()],
}

/// The kinds of kernel records the summary counts as received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    Entry,
    Exit,
    Diag,
    Batch,
}

/// Their names in the summary, by [`Received`] value.
const RECEIVED: [&str; 4] = ["entry", "exit", "diag", "batch"];

impl Received {
    pub fn name(self) -> &'static str {
        RECEIVED[self as usize]
    }
}

impl Default for CallCounts {
    fn default() -> Self {
        Self {
            syncs: [[0; CALLERS]; Target::ALL.len()],
            durations: vec![Histogram::default(); Target::ALL.len()],
            received: [0; RECEIVED.len()],
        }
    }
}

impl CallCounts {
    pub fn count_sync(&mut self, function: Target, caller: Caller, duration_ns: Option<u64>) {
        self.syncs[function as usize][caller as usize] += 1;
        if let Some(ns) = duration_ns {
            self.durations[function as usize].record(ns);
        }
    }

    /// A kernel record read from the ring buffer.
    pub fn count_received(&mut self, kind: Received) {
        self.received[kind as usize] += 1;
    }

    /// Adds the counts into `summary` (and starts over).
    pub fn fold_into(&mut self, summary: &mut Summary) {
        for t in Target::ALL {
            for c in <Caller as strum::IntoEnumIterator>::iter() {
                let n = self.syncs[t as usize][c as usize];
                if n > 0 {
                    bump_by(&mut summary.counts, t.symbol(), c.name(), n);
                }
            }
            let h = &self.durations[t as usize];
            if !h.is_empty() {
                entry(&mut summary.sync_duration, t.symbol()).merge(h);
            }
        }
        for (kind, &n) in RECEIVED.iter().zip(&self.received) {
            if n > 0 {
                add(&mut summary.received, kind, n);
            }
        }
        *self = Self::default();
    }
}

impl Summary {
    pub fn count_sync(&mut self, function: &str, caller: &str, duration_ns: Option<u64>) {
        bump(&mut self.counts, function, caller);
        if let Some(ns) = duration_ns {
            entry(&mut self.sync_duration, function).record(ns);
        }
    }

    /// `calls` kernel calls of a populate function (a `call` record stands
    /// for one call, or for a batch of them).
    pub fn count_call(&mut self, function: &str, calls: u64) {
        bump_by(&mut self.counts, function, "call", calls);
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
        entry(&mut self.latency, kind.name()).record(latency_ns);
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
        self.count_dropped_n(what, 1);
    }

    /// `n` drops of a bounded buffer (counted elsewhere first): logged
    /// the first time.
    pub fn count_dropped_n(&mut self, what: &str, n: u64) {
        if n == 0 {
            return;
        }
        match self.dropped.get_mut(what) {
            Some(c) => *c += n,
            None => {
                log::warn!(
                    "dropped the oldest entry of a full buffer ({what}); the summary counts every drop"
                );
                self.dropped.insert(what.to_string(), n);
            }
        }
    }

    /// Freezes the histograms into their serialized buckets.
    pub fn finish(&mut self) {
        self.sync_duration.values_mut().for_each(Histogram::finish);
        self.latency.values_mut().for_each(Histogram::finish);
    }
}
