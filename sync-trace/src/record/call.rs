//! Completed calls of traced kernel functions: `sync` and `call` records.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use sync_trace_common::{Layout, Method, Target};

use super::{call_stack::CallStack, caller::Caller, stack::Stack, Hex, Record};

/// A traced call as the kernel reported it, before anything is derived from
/// it. [`CompletedCall::into_record`] is the one place that derives the
/// record's other fields (the helper form, caller, slots, the stack without
/// the probe's own frames), so a recording can be checked against today's
/// derivation (`tests/fixtures.rs`).
#[derive(Clone, Debug)]
pub struct CompletedCall {
    pub ts_ns: u64,
    pub end_ns: u64,
    pub duration_ns: u64,
    pub task: Task,
    pub function: Target,
    /// The call's range (`Target::range` of its arguments).
    pub start: u64,
    pub end: u64,
    pub method: Method,
    pub entry_seen: bool,
    /// The entry stack (symbolized, without the probe's frames) and the
    /// caller it makes a sync.
    pub stack: CallStack,
    /// A batch of populate calls (`struct st_batch`): how many, and the
    /// highest address (`start` is the lowest).
    pub batch: Option<Batch>,
}

/// What a `call` record that stands for a batch of calls adds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batch {
    pub calls: u32,
    pub addr_last: u64,
}

impl CompletedCall {
    #[inline]
    pub fn into_record(self, layout: &Layout) -> Record {
        let Self {
            ts_ns,
            end_ns,
            duration_ns,
            task,
            function,
            start,
            end,
            method,
            entry_seen,
            stack,
            batch,
        } = self;
        if !function.is_sync() {
            return Record::Call(CallRecord {
                ts_ns,
                end_ns,
                duration_ns,
                task,
                function,
                addr: Hex(start),
                end: (function.has_range() && batch.is_none()).then_some(Hex(end)),
                method,
                entry_seen,
                stack: stack.stack,
                calls: batch.map(|b| b.calls),
                addr_last: batch.map(|b| Hex(b.addr_last)),
            });
        }
        let helper = start == end;
        // arch_sync_kernel_mappings takes an exclusive end (vmap paths), or
        // end == start from the helpers; sync_global_pgds an inclusive one.
        let last = if function == Target::ArchSyncKernelMappings && end > start {
            end - 1
        } else {
            end
        };
        let (slot_first, slot_last) = layout.slots_of(start, last);
        Record::Sync(SyncRecord {
            ts_ns,
            end_ns,
            duration_ns,
            task,
            function,
            start: Hex(start),
            end: Hex(end),
            slot_first,
            slot_last,
            helper,
            caller: stack.caller(helper),
            method,
            entry_seen,
            stack: stack.stack,
        })
    }
}

/// Task context of a record.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub cpu: u32,
    pub pid: u32,
    pub tid: u32,
    /// Inline: no allocation for a kernel task name.
    pub comm: CompactString,
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
    pub stack: Stack,
}

impl SyncRecord {
    /// Whether the call walks `slot`. A call with `start > end` walks
    /// nothing: `sync_global_pgds()` loops while `addr <= end`.
    pub fn covers(&self, slot: usize) -> bool {
        self.start.0 <= self.end.0 && (self.slot_first..=self.slot_last).contains(&slot)
    }
}

/// One completed call of a traced populate function (`vmemmap_p4d_populate`, …),
/// or a batch of them (`calls`): consecutive calls of one task over one
/// top-level slot that was already present when each entered, so that none
/// can be a population. A batch's `ts_ns` is its first call's entry,
/// `end_ns` its last call's exit, `duration_ns` the sum of the calls'
/// durations, `addr` and `addr_last` the lowest and highest address, and its
/// stack the first call's, taken at its exit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    pub ts_ns: u64,
    pub end_ns: u64,
    pub duration_ns: u64,
    #[serde(flatten)]
    pub task: Task,
    pub function: Target,
    /// The address the function populates (vmemmap and populate helpers),
    /// the physical start of `init_memory_mapping`, or the first byte of
    /// the memory map `__populate_section_memmap` makes (`vmemmap_base +
    /// pfn * sizeof(struct page)`; `vmemmap_base` when the size is unknown).
    pub addr: Hex,
    /// The end (exclusive) of that range: physical for
    /// `init_memory_mapping`, virtual for `__populate_section_memmap` (the
    /// end of the vmemmap region when `sizeof(struct page)` is unknown).
    /// Absent for a batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<Hex>,
    pub method: Method,
    pub entry_seen: bool,
    pub stack: Stack,
    /// A batch: the number of calls it counts (absent: one call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls: Option<u32>,
    /// A batch: the highest address of its calls (of sections: the last
    /// byte of the highest memory map).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr_last: Option<Hex>,
}

impl CallRecord {
    /// The kernel calls this record stands for.
    pub fn calls(&self) -> u64 {
        self.calls.map_or(1, u64::from)
    }

    /// The addresses the record covers, `[first, last]` (inclusive): a
    /// range's, a batch's lowest to highest, or the one address.
    pub fn covered(&self) -> (u64, u64) {
        match (self.end, self.addr_last) {
            (Some(end), _) => (self.addr.0, end.0.max(self.addr.0 + 1) - 1),
            (None, Some(last)) => (self.addr.0, last.0.max(self.addr.0)),
            (None, None) => (self.addr.0, self.addr.0),
        }
    }
}
