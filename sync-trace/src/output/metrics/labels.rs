//! The label sets of the metrics (names and values are a contract:
//! docs/metrics.md) and the buckets of their histograms.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        family::MetricConstructor,
        histogram::{exponential_buckets, Histogram},
    },
};
use sync_trace_common::{Level, Region, Target};

use crate::record::Source;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct PopLabels {
    pub level: &'static str,
    pub region: &'static str,
    pub source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct SyncLabels {
    pub function: &'static str,
    pub caller: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RegionLabels {
    pub region: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct VerdictLabels {
    pub verdict: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct FunctionLabels {
    pub function: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ProbeLabels {
    pub target: &'static str,
    pub method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct BuildLabels {
    pub version: String,
    pub kernel: String,
    pub paging: String,
}

/// Populate-to-sync latency: 1 µs, 2 µs, … 2^23 µs (8.4 s): microseconds to seconds.
#[derive(Clone)]
pub(super) struct LatencyBuckets;
impl LatencyBuckets {
    /// The upper bounds, in seconds (the +Inf bucket is implicit).
    pub(super) fn bounds() -> impl Iterator<Item = f64> {
        exponential_buckets(1e-6, 2.0, 24)
    }
}

impl MetricConstructor<Histogram> for LatencyBuckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(Self::bounds())
    }
}

pub(super) const SYNC_FUNCTIONS: [Target; 2] =
    [Target::ArchSyncKernelMappings, Target::SyncGlobalPgds];
/// Verdicts that can be `uncertain`.
pub(super) const VERDICTS: [&str; 2] = ["paired", "unsynced"];

pub(super) fn pop_labels(level: Level, region: Region, source: Source) -> PopLabels {
    PopLabels {
        level: level.name(),
        region: region.name(),
        source: source.name(),
    }
}
