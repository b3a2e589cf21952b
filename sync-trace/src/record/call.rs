//! Completed calls of traced kernel functions: `sync` and `call` records.

use serde::{Deserialize, Serialize};
use sync_trace_common::{Method, Target};

use super::{caller::Caller, Hex};

/// Task context of a record.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub cpu: u32,
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
}

/// One completed call of `arch_sync_kernel_mappings` or `sync_global_pgds`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SyncRecord {
    /// Entry time, CLOCK_MONOTONIC ns (`bpf_ktime_get_ns`).
    pub ts_ns: u64,
    /// Exit time.
    pub end_ns: u64,
    pub duration_ns: u64,
    #[serde(flatten)]
    pub task: Task,
    pub function: Target,
    pub start: Hex,
    pub end: Hex,
    /// Top-level slots the call covers, first and last.
    pub slot_first: usize,
    pub slot_last: usize,
    /// `start == end`: the call made by `pgd_populate_kernel()`/`p4d_populate_kernel()`.
    pub helper: bool,
    pub caller: Caller,
    pub method: Method,
    /// False when only the exit was seen (the call began before attach).
    pub entry_seen: bool,
    /// Kernel stack at entry, innermost first, as `symbol+0xoff`.
    pub stack: Vec<String>,
}

impl SyncRecord {
    /// Whether the call walks `slot`. A call with `start > end` walks
    /// nothing: `sync_global_pgds()` loops while `addr <= end`.
    pub fn covers(&self, slot: usize) -> bool {
        self.start.0 <= self.end.0 && (self.slot_first..=self.slot_last).contains(&slot)
    }
}

/// One completed call of a traced populate function (`vmemmap_p4d_populate`, …).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    pub ts_ns: u64,
    pub end_ns: u64,
    pub duration_ns: u64,
    #[serde(flatten)]
    pub task: Task,
    pub function: Target,
    /// The address the function populates (vmemmap and populate helpers),
    /// or the physical start of `init_memory_mapping`.
    pub addr: Hex,
    /// The physical end (exclusive) of `init_memory_mapping`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<Hex>,
    pub method: Method,
    pub entry_seen: bool,
    pub stack: Vec<String>,
}
