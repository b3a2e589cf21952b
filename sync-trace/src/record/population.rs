//! Kernel top-level entries of init_mm that appeared or went away:
//! `populate` and `depopulate` records.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use strum::{EnumIter, EnumString, IntoStaticStr, VariantNames};
use sync_trace_common::{Level, Region};

use super::stack::Stack;
use super::Hex;

/// How a population was seen.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    IntoStaticStr,
    EnumString,
    VariantNames,
    EnumIter,
)]
#[strum(serialize_all = "snake_case")]
pub enum Source {
    /// Through the helper sync `arch_sync_kernel_mappings(addr, addr)` that
    /// follows the write: timed exactly.
    Helper,
    /// Through a traced populate function over the slot (no helper sync
    /// seen): bounded by its entry.
    Call,
    /// Only by the change of init_mm's top-level table.
    Effect,
}

named!(Source);

/// The fields that identify a population, shared by its records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Population {
    pub level: Level,
    pub slot: usize,
    pub addr: Hex,
    pub region: Region,
    pub source: Source,
}

/// A kernel top-level entry of init_mm went from none to present.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PopulateRecord {
    /// Helper: the entry of the helper sync that follows the population.
    /// Otherwise: when the scan saw it.
    pub ts_ns: u64,
    /// The population came after this: the first traced act that could
    /// have made it (a populate function's or `init_memory_mapping()`'s
    /// entry over the slot), else the last scan that saw the slot empty.
    pub not_before_ns: u64,
    /// The scan that first saw the entry (older recordings: `ts_ns`).
    #[serde(default)]
    pub seen_ns: u64,
    /// The last scan that saw the slot empty (older recordings: `not_before_ns`).
    #[serde(default)]
    pub empty_ns: u64,
    pub cpu: Option<u32>,
    pub pid: Option<u32>,
    pub comm: Option<CompactString>,
    #[serde(flatten)]
    pub pop: Population,
    /// Stack of the populating code, where one was captured.
    pub stack: Stack,
}

impl PopulateRecord {
    /// When a scan first saw it (older recordings: `ts_ns`).
    pub fn seen(&self) -> u64 {
        if self.seen_ns == 0 {
            self.ts_ns
        } else {
            self.seen_ns
        }
    }

    /// When a scan last saw the slot empty (older recordings: `not_before_ns`).
    pub fn empty(&self) -> u64 {
        if self.empty_ns == 0 {
            self.not_before_ns
        } else {
            self.empty_ns
        }
    }
}

/// A kernel top-level entry of init_mm went from present to none.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DepopulateRecord {
    /// The scan that saw the slot empty.
    pub ts_ns: u64,
    /// The last scan that saw it present.
    pub present_ns: u64,
    pub level: Level,
    pub slot: usize,
    pub addr: Hex,
    pub region: Region,
}

/// A population of vmemmap slot 469 (P4D, 4-level) for tests: made after
/// `not_before` (the last sighting of the slot empty), stamped `ts`, first
/// seen 1 ms after the later of the two.
#[cfg(test)]
pub(crate) fn vmemmap_469(ts: u64, not_before: u64, source: Source) -> PopulateRecord {
    PopulateRecord {
        ts_ns: ts,
        not_before_ns: not_before,
        seen_ns: ts.max(not_before) + 1_000_000,
        empty_ns: not_before,
        cpu: None,
        pid: None,
        comm: None,
        pop: Population {
            level: Level::P4d,
            slot: 469,
            addr: Hex(0xffffea8000000000),
            region: Region::Vmemmap,
            source,
        },
        stack: Default::default(),
    }
}
