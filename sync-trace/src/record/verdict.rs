//! What the model concludes about a population: `paired` with the sync
//! that covered it, or `unsynced`.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use strum::{EnumIter, EnumString, IntoStaticStr, VariantNames};
use sync_trace_common::Target;

use super::stack::Stack;
use super::{Hex, Population};

#[derive(Clone, Copy, Debug, PartialEq, Eq, IntoStaticStr, EnumString, VariantNames, EnumIter)]
#[strum(serialize_all = "snake_case")]
pub enum LatencyKind {
    /// Timed by the helper sync that follows the write.
    Exact,
    /// Measured from the earliest time the population can have happened.
    UpperBound,
}

named!(LatencyKind);

impl LatencyKind {}

/// A population and the first sync that covers it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairedRecord {
    /// End of the covering sync.
    pub ts_ns: u64,
    pub cpu: u32,
    pub pid: u32,
    pub comm: CompactString,
    #[serde(flatten)]
    pub pop: Population,
    /// Where the latency runs from: the helper sync's entry (`exact`), or
    /// the earliest time the population can have happened (`upper_bound`).
    pub populated_ns: u64,
    pub latency_ns: u64,
    pub latency_kind: LatencyKind,
    pub sync_function: Target,
    pub sync_start: Hex,
    pub sync_end: Hex,
    /// This population had already been reported `unsynced`.
    pub late: bool,
    /// Kernel records were lost between the population and this sync: an
    /// earlier covering sync may have gone unseen.
    #[serde(default)]
    pub uncertain: bool,
}

/// A population with no covering sync within the grace window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnsyncedRecord {
    pub ts_ns: u64,
    pub cpu: Option<u32>,
    pub pid: Option<u32>,
    pub comm: Option<CompactString>,
    #[serde(flatten)]
    pub pop: Population,
    pub populated_ns: u64,
    pub grace_ns: u64,
    /// PGDs on pgd_list that lack the entry, out of all compared, in the
    /// first walk that started after the grace window closed.
    pub pgds_missing: u32,
    pub pgds_total: u32,
    /// That walk reached the end of pgd_list (false: `--max-pgds` cut it
    /// short, and the counts cover the PGDs it reached).
    #[serde(default)]
    pub walk_complete: bool,
    /// The walk found PGDs lacking the entry: the real case, the one
    /// `--fail-on-unsynced` and the alert act on. False: no covering sync
    /// was traced, yet every PGD walked carries the entry.
    #[serde(default)]
    pub confirmed: bool,
    /// Kernel records were lost in the window: the covering sync may have
    /// been among them.
    #[serde(default)]
    pub uncertain: bool,
    pub stack: Stack,
}
