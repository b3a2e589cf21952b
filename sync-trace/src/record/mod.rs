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

/// How a population was seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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

impl Source {
    pub const ALL: [Source; 3] = [Source::Helper, Source::Call, Source::Effect];

    pub fn name(self) -> &'static str {
        match self {
            Source::Helper => "helper",
            Source::Call => "call",
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
    pub comm: Option<String>,
    #[serde(flatten)]
    pub pop: Population,
    /// Stack of the populating code, where one was captured.
    pub stack: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LatencyKind {
    /// Timed by the helper sync that follows the write.
    Exact,
    /// Measured from the earliest time the population can have happened.
    UpperBound,
}

impl LatencyKind {
    pub fn name(self) -> &'static str {
        match self {
            LatencyKind::Exact => "exact",
            LatencyKind::UpperBound => "upper_bound",
        }
    }
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
    pub comm: Option<String>,
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
    pub stack: Vec<String>,
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
    /// When the walk ended.
    pub ts_ns: u64,
    /// When it started (older recordings: 0, read as `ts_ns`).
    #[serde(default)]
    pub start_ns: u64,
    pub trigger: Trigger,
    pub level: Level,
    /// PGDs compared.
    pub pgds_total: u32,
    /// Present kernel top-level slots of init_mm compared in each.
    pub slots_checked: u32,
    /// The slots compared, when the walk compared only some (after a sync,
    /// the synced slots; at a deadline, those whose window closed). Absent:
    /// every present kernel slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slots: Option<Vec<usize>>,
    /// The walk reached the end of pgd_list without a fault.
    pub complete: bool,
    /// The walk stopped at `--max-pgds`: its counts cover the PGDs it reached.
    #[serde(default)]
    pub truncated: bool,
    /// No PGD lacks an entry and none points elsewhere.
    pub ok: bool,
    pub missing: Vec<SlotCount>,
    pub mismatched: Vec<SlotCount>,
}

impl VerifyRecord {
    pub fn started_ns(&self) -> u64 {
        if self.start_ns == 0 {
            self.ts_ns
        } else {
            self.start_ns
        }
    }

    /// Whether the walk compared `slot`.
    pub fn compared(&self, slot: usize) -> bool {
        self.slots.as_ref().is_none_or(|s| s.contains(&slot))
    }

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
    /// The losses happened after `since_ns` and before `ts_ns` (when the
    /// counters were read). Older recordings: 0, any time.
    #[serde(default)]
    pub ts_ns: u64,
    #[serde(default)]
    pub since_ns: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Record {
    Layout(LayoutRecord),
    Sync(SyncRecord),
    Call(CallRecord),
    Populate(PopulateRecord),
    Depopulate(DepopulateRecord),
    Paired(PairedRecord),
    Unsynced(UnsyncedRecord),
    Verify(VerifyRecord),
    Mismatch(MismatchRecord),
    Lost(LostRecord),
    Summary(Summary),
}
