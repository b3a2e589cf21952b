//! The sync counters and duration histograms: every traced sync is counted
//! by the sink in plain integers (no atomic, no lock, no label lookup),
//! and the totals are published into the registry once per batch.
//!
//! The histogram keeps prometheus-client's own arithmetic (the sum is
//! added one observation at a time, the first bucket whose bound is at
//! least the value counts it), and the registry's copy is replaced by the
//! sink's, so a scrape shows exactly what per-record updates would have
//! shown at the end of the last batch. One sink counts into one
//! [`Metrics`](super::Metrics).

use std::sync::{Arc, Mutex};

use prometheus_client::{
    encoding::{EncodeMetric, MetricEncoder, NoLabelSet},
    metrics::{family::MetricConstructor, MetricType, TypedMetric},
};

use super::labels::{LatencyBuckets, SYNC_FUNCTIONS};
use crate::record::{Caller, SyncRecord};

/// Values of [`Caller`].
pub(super) const CALLERS: usize = 5;
const _: () = assert!(<Caller as strum::VariantNames>::VARIANTS.len() == CALLERS);

/// A classic histogram's state, as prometheus-client keeps it.
#[derive(Clone, Debug)]
pub struct HistState {
    sum: f64,
    count: u64,
    /// `(upper bound, count)`, the last bound +Inf; counts not cumulative.
    buckets: Vec<(f64, u64)>,
}

impl HistState {
    fn new() -> Self {
        Self {
            sum: 0.0,
            count: 0,
            buckets: LatencyBuckets::bounds()
                .filter(|b| b.is_finite())
                .chain(std::iter::once(f64::INFINITY))
                .map(|b| (b, 0))
                .collect(),
        }
    }

    /// prometheus-client's `observe`, step for step.
    fn observe(&mut self, v: f64) {
        self.sum += v;
        self.count += 1;
        let bucket = if v.is_nan() {
            self.buckets.last_mut()
        } else {
            self.buckets.iter_mut().find(|(bound, _)| *bound >= v)
        };
        if let Some((_, n)) = bucket {
            *n += 1;
        }
    }
}

/// A histogram in the registry whose state the sink publishes.
#[derive(Clone, Debug)]
pub struct PublishedHistogram(Arc<Mutex<HistState>>);

impl PublishedHistogram {
    fn lock(&self) -> std::sync::MutexGuard<'_, HistState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One observation, for a function without a tally slot.
    pub fn observe(&self, v: f64) {
        self.lock().observe(v);
    }

    fn publish(&self, state: &HistState) {
        let mut s = self.lock();
        s.sum = state.sum;
        s.count = state.count;
        s.buckets.clone_from(&state.buckets);
    }
}

impl MetricConstructor<PublishedHistogram> for LatencyBuckets {
    fn new_metric(&self) -> PublishedHistogram {
        PublishedHistogram(Arc::new(Mutex::new(HistState::new())))
    }
}

impl TypedMetric for PublishedHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for PublishedHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let s = self.lock();
        encoder.encode_histogram::<NoLabelSet>(s.sum, s.count, &s.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// The sink's counts of the syncs of [`SYNC_FUNCTIONS`]: per function and
/// caller (at `function * CALLERS + caller`), and the duration histogram
/// per function.
#[derive(Debug)]
pub struct SyncTally {
    counts: [u64; SYNC_FUNCTIONS.len() * CALLERS],
    /// What the registry's counters hold already.
    published: [u64; SYNC_FUNCTIONS.len() * CALLERS],
    durations: [HistState; SYNC_FUNCTIONS.len()],
    /// Syncs counted since the last publication.
    unpublished: usize,
}

impl Default for SyncTally {
    fn default() -> Self {
        Self {
            counts: [0; SYNC_FUNCTIONS.len() * CALLERS],
            published: [0; SYNC_FUNCTIONS.len() * CALLERS],
            durations: std::array::from_fn(|_| HistState::new()),
            unpublished: 0,
        }
    }
}

impl SyncTally {
    /// Counts one sync; false for a function without a slot (the caller
    /// counts it in the registry directly).
    pub fn count(&mut self, s: &SyncRecord) -> bool {
        let Some(f) = SYNC_FUNCTIONS.iter().position(|&t| t == s.function) else {
            return false;
        };
        self.counts[f * CALLERS + s.caller as usize] += 1;
        if s.entry_seen {
            self.durations[f].observe(s.duration_ns as f64 / 1e9);
        }
        self.unpublished += 1;
        true
    }

    /// Syncs counted since the last publication.
    pub fn unpublished(&self) -> usize {
        self.unpublished
    }

    /// Publishes the totals into the registry's metrics.
    pub(super) fn publish_into(
        &mut self,
        counters: &[prometheus_client::metrics::counter::Counter],
        durations: &[PublishedHistogram],
    ) {
        for (i, c) in counters.iter().enumerate() {
            let delta = self.counts[i] - self.published[i];
            if delta > 0 {
                c.inc_by(delta);
                self.published[i] = self.counts[i];
            }
        }
        for (h, state) in durations.iter().zip(&self.durations) {
            if state.count > 0 {
                h.publish(state);
            }
        }
        self.unpublished = 0;
    }
}
