//! What `run` reports: one record per line, as text or as NDJSON with an
//! `"event"` field. Field names are a contract (docs/events.md); `replay`
//! reads the same records back.

use std::fmt;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use sync_trace_common::{Level, Method, Region, Target};

use crate::{caller::Caller, summary::Summary};

/// A kernel virtual address, serialized as a `"0x…"` string so that JSON
/// readers without 64-bit integers keep it exact.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hex(pub u64);

impl Serialize for Hex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Hex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let digits = s
            .strip_prefix("0x")
            .ok_or_else(|| de::Error::custom(format!("address {s:?} lacks the 0x prefix")))?;
        u64::from_str_radix(digits, 16)
            .map(Hex)
            .map_err(|e| de::Error::custom(format!("address {s:?}: {e}")))
    }
}

impl fmt::Display for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:016x}", self.0)
    }
}

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
    pub fn covers(&self, slot: usize) -> bool {
        (self.slot_first..=self.slot_last).contains(&slot)
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

/// How a population was seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Through `arch_sync_kernel_mappings(addr, addr)` or a traced populate function.
    Helper,
    /// Only by the change of init_mm's top-level table.
    Effect,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Helper => "helper",
            Source::Effect => "effect",
        }
    }
}

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
    /// Helper: when the populating code was traced. Effect: when the scan saw it.
    pub ts_ns: u64,
    /// The last scan that saw the slot empty: the population is after this.
    pub not_before_ns: u64,
    pub cpu: Option<u32>,
    pub pid: Option<u32>,
    pub comm: Option<String>,
    #[serde(flatten)]
    pub pop: Population,
    /// Stack of the populating code, where one was captured.
    pub stack: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LatencyKind {
    /// The population itself was traced.
    Exact,
    /// Measured from the last scan that saw the slot empty.
    UpperBound,
}

/// A population and the first sync that covers it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairedRecord {
    /// End of the covering sync.
    pub ts_ns: u64,
    pub cpu: u32,
    pub pid: u32,
    pub comm: String,
    #[serde(flatten)]
    pub pop: Population,
    pub populated_ns: u64,
    pub latency_ns: u64,
    pub latency_kind: LatencyKind,
    pub sync_function: Target,
    pub sync_start: Hex,
    pub sync_end: Hex,
    /// This population had already been reported `unsynced`.
    pub late: bool,
}

/// A population with no covering sync within the grace window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnsyncedRecord {
    pub ts_ns: u64,
    pub cpu: Option<u32>,
    pub pid: Option<u32>,
    pub comm: Option<String>,
    #[serde(flatten)]
    pub pop: Population,
    pub populated_ns: u64,
    pub grace_ns: u64,
    /// PGDs on pgd_list that lack the entry, out of all compared.
    pub pgds_missing: u32,
    pub pgds_total: u32,
    pub stack: Vec<String>,
}

/// One slot's result in a verification.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlotCount {
    pub slot: usize,
    pub addr: Hex,
    pub region: Region,
    pub pgds: u32,
}

/// Why a verification walk ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Baseline,
    Sync,
    Sweep,
    Deadline,
    Audit,
}

/// Every PGD on pgd_list compared with init_mm's kernel half.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VerifyRecord {
    pub ts_ns: u64,
    pub trigger: Trigger,
    pub level: Level,
    /// PGDs compared.
    pub pgds_total: u32,
    /// Present kernel top-level slots of init_mm compared in each.
    pub slots_checked: u32,
    /// The walk reached the end of pgd_list without a fault.
    pub complete: bool,
    /// No PGD lacks an entry and none points elsewhere.
    pub ok: bool,
    pub missing: Vec<SlotCount>,
    pub mismatched: Vec<SlotCount>,
}

impl VerifyRecord {
    pub fn missing_in(&self, slot: usize) -> u32 {
        self.missing
            .iter()
            .find(|m| m.slot == slot)
            .map_or(0, |m| m.pgds)
    }
}

/// PGDs whose present entry points to a different table than init_mm's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MismatchRecord {
    pub ts_ns: u64,
    pub level: Level,
    pub slot: usize,
    pub addr: Hex,
    pub region: Region,
    pub pgds: u32,
    pub pgds_total: u32,
}

/// The kernel layout the run observed (first record).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayoutRecord {
    pub ts_ns: u64,
    pub kernel: String,
    pub paging: sync_trace_common::Paging,
    pub page_offset_base: Hex,
    pub vmalloc_base: Hex,
    pub vmemmap_base: Hex,
    pub kernel_boundary: usize,
    /// Present kernel top-level slots at start.
    pub present: Vec<usize>,
}

/// Records the kernel could not deliver, counted by its programs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LostRecord {
    /// `events` (ring buffer full), `inflight` (durations lost), `logs`.
    pub what: String,
    /// New losses since the previous `lost` record of this kind.
    pub count: u64,
    pub total: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Record {
    Layout(LayoutRecord),
    Sync(SyncRecord),
    Call(CallRecord),
    Populate(PopulateRecord),
    Paired(PairedRecord),
    Unsynced(UnsyncedRecord),
    Verify(VerifyRecord),
    Mismatch(MismatchRecord),
    Lost(LostRecord),
    Summary(Summary),
}
