//! `#[repr(C)]` twins of the records in `events.h`, its constants, and a
//! decoder that never reads past the bytes it is given.
//!
//! sync-trace-ebpf's `tests/contract.rs` compares every struct here field by
//! field (offset, size, type) and every constant with the BTF clang writes
//! for events.h; the compile-time checks below only mirror its
//! `_Static_assert`s.

mod diag;
mod event;
mod scan;
mod sweep;

pub use self::{
    diag::{RawDiag, RawDiagC, DIAG_SIZE, KIND_DIAG},
    event::{RawEvent, RawEventC, EVENT_SIZE},
    scan::RawScan,
    sweep::{
        RawSweep, RawSweepChange, RawSweepView, GLOBAL_SWEEP_NS, MAP_SWEEP, MAP_SWEEP_RING,
        PROG_SWEEP_ARM, SWEEP_ARM_FUNCTION, SWEEP_TIMER_BYTES,
    },
};
use crate::batch::{RawBatch, BATCH_SIZE};

/// `ST_COMM_LEN`
pub const COMM_LEN: usize = 16;
/// `ST_MAX_STACK`: kernel frames kept per entry record.
pub const MAX_STACK: usize = 32;

/// `ST_FLAG_NO_ENTRY`: an exit seen without its entry.
pub const FLAG_NO_ENTRY: u32 = 1 << 0;
/// `ST_FLAG_ARGS_LOST`: a kretprobe exit; arguments copied from the entry.
pub const FLAG_ARGS_LOST: u32 = 1 << 1;

/// Indices of the `LOST` per-CPU array (`enum st_lost`).
pub const LOST_EVENTS: u32 = 0;
/// An `INFLIGHT` update failed, so an exit will carry no duration.
pub const LOST_INFLIGHT: u32 = 1;
/// A diagnostic (`struct st_diag`) could not be written to the ring.
pub const LOST_LOGS: u32 = 2;
/// `ST_LOST_MAX`
pub const LOST_MAX: u32 = 3;

/// Map names (`ST_MAP_*`).
pub const MAP_EVENTS: &str = "EVENTS";
/// Per-CPU loss counters.
pub const MAP_LOST: &str = "LOST";

/// Load-time knobs (`const volatile` globals in the object).
pub const GLOBAL_CAPTURE_STACK: &str = "st_cfg_capture_stack";
/// Makes every entry write a diagnostic (tests of the diagnostics path).
pub const GLOBAL_FORCE_LOG: &str = "st_cfg_force_log";

/// `ST_PTRS`: entries per page-table page.
pub const PTRS: usize = 512;
/// `ST_KERNEL_HALF`: first kernel-half slot.
pub const KERNEL_HALF: usize = 256;
/// `ST_HALF`
pub const HALF: usize = PTRS - KERNEL_HALF;

/// Map holding the scan results: `[SCAN_KEY_TABLE]` and `[SCAN_KEY_WALK]`.
pub const MAP_SCAN: &str = "SCAN";
/// `ST_SCAN_KEY_TABLE`: the last table scan.
pub const SCAN_KEY_TABLE: u32 = 0;
/// `ST_SCAN_KEY_WALK`: the walk in progress or last done.
pub const SCAN_KEY_WALK: u32 = 1;
/// The scan program (raw tracepoint, run with BPF_PROG_TEST_RUN).
pub const PROG_SCAN: &str = "st_scan";
/// `enum st_scan_mode`: copy init_top_pgt only.
pub const SCAN_TABLE: u64 = 0;
/// Start a walk of pgd_list; args[1..1 + SLOT_WORDS] are the slot set.
pub const SCAN_WALK_BEGIN: u64 = 1;
/// Go on with the walk (while `SCAN_MORE`).
pub const SCAN_WALK_NEXT: u64 = 2;
/// `ST_SLOT_WORDS`: u64 words of a kernel-half slot set.
pub const SLOT_WORDS: usize = HALF / 64;
/// `st_scan.status` bits.
pub const SCAN_DONE: u32 = 1 << 0;
pub const SCAN_WALKED: u32 = 1 << 1;
pub const SCAN_TRUNCATED: u32 = 1 << 2;
pub const SCAN_FAULT: u32 = 1 << 3;
pub const SCAN_NO_LAYOUT: u32 = 1 << 4;
pub const SCAN_MORE: u32 = 1 << 5;
pub const SCAN_NO_CORE: u32 = 1 << 6;
pub const SCAN_RESTARTED: u32 = 1 << 7;
pub const SCAN_NOT_BEGUN: u32 = 1 << 8;
/// Set by userspace only (never by the program): a disagreement one
/// complete walk saw could not be confirmed by a second complete walk.
pub const SCAN_UNCONFIRMED: u32 = 1 << 30;
/// Set by userspace only: the counts are the per-slot minimum of two
/// complete walks.
pub const SCAN_CONFIRMED: u32 = 1 << 31;

/// `st_scan.core` bits: what CO-RE found in the kernel's BTF.
pub const CORE_PAGE: u32 = 1 << 0;
pub const CORE_LIST: u32 = 1 << 1;
pub const CORE_PT_MM: u32 = 1 << 2;
pub const CORE_REFCOUNT: u32 = 1 << 3;
pub const CORE_MM_PGD: u32 = 1 << 4;
pub const CORE_PTDESC: u32 = 1 << 5;
/// `ST_CORE_NEEDED`
pub const CORE_NEEDED: u32 = CORE_PAGE | CORE_LIST | CORE_PT_MM | CORE_REFCOUNT | CORE_MM_PGD;

/// Scan knobs: kernel addresses from kallsyms (`const volatile` globals).
pub const GLOBAL_INIT_TOP_PGT: &str = "st_cfg_init_top_pgt";
pub const GLOBAL_PGD_LIST: &str = "st_cfg_pgd_list";
pub const GLOBAL_PAGE_OFFSET_BASE: &str = "st_cfg_page_offset_base";
pub const GLOBAL_VMALLOC_BASE: &str = "st_cfg_vmalloc_base";
pub const GLOBAL_VMEMMAP_BASE: &str = "st_cfg_vmemmap_base";
pub const GLOBAL_PGDIR_SHIFT: &str = "st_cfg_pgdir_shift";
pub const GLOBAL_SME_ME_MASK: &str = "st_cfg_sme_me_mask";
pub const GLOBAL_MAX_PGDS: &str = "st_cfg_max_pgds";
/// Time budget of one test run of the walk (u64 ns).
pub const GLOBAL_RUN_BUDGET_NS: &str = "st_cfg_run_budget_ns";
/// Restarts from the head after an invalid node (u32).
pub const GLOBAL_MAX_RESTARTS: &str = "st_cfg_max_restarts";

/// Why a ring-buffer record could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("event record of {got} bytes, expected {expected}: the daemon and its BPF object disagree on the layout (rebuild both)")]
    Length { got: usize, expected: usize },
    #[error("diagnostic record of {got} bytes, expected {expected}: the daemon and its BPF object disagree on the layout (rebuild both)")]
    DiagLength { got: usize, expected: usize },
    #[error("batch record of {got} bytes, expected {expected}: the daemon and its BPF object disagree on the layout (rebuild both)")]
    BatchLength { got: usize, expected: usize },
    #[error("ring record of {got} bytes: neither an event ({EVENT_SIZE}), a diagnostic ({DIAG_SIZE}) nor a batch ({BATCH_SIZE}); the daemon and its BPF object disagree on the layout (rebuild both)")]
    RecordLength { got: usize },
    #[error("event record with unknown kind {0}")]
    Kind(u8),
    #[error("diagnostic record with kind {0}, expected {KIND_DIAG}")]
    DiagKind(u8),
    #[error("batch record with kind {0}, expected 4")]
    BatchKind(u8),
    #[error("batch record with unknown reason {0}")]
    BatchReason(u8),
    #[error("diagnostic record with unknown code {0}")]
    DiagCode(u8),
    #[error("event record with unknown target {0}")]
    Target(u8),
    #[error("event record with unknown attach method {0}")]
    Method(u8),
}

/// One record of the EVENTS ring. Records have no header of their own: the
/// ring gives each one's length, which tells the struct, and the struct's
/// `kind` must then agree.
// Decoded one at a time and consumed at once, never kept in bulk: boxing
// the event would cost an allocation per record for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawRecord<'a> {
    /// `struct st_event` (kind entry or exit).
    Event(RawEvent<'a>),
    /// `struct st_diag` (kind `ST_KIND_DIAG`).
    Diag(RawDiag),
    /// `struct st_batch` (kind `ST_KIND_BATCH`): populate calls, counted.
    Batch(RawBatch),
}

impl<'a> RawRecord<'a> {
    /// Decodes one ring-buffer record by its length.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        match bytes.len() {
            EVENT_SIZE => RawEvent::from_bytes(bytes).map(Self::Event),
            DIAG_SIZE => RawDiag::from_bytes(bytes).map(Self::Diag),
            BATCH_SIZE => RawBatch::from_bytes(bytes).map(Self::Batch),
            got => Err(DecodeError::RecordLength { got }),
        }
    }
}

/// A kernel task name (`comm`), up to its NUL.
pub(crate) fn comm_name(comm: &[u8; COMM_LEN]) -> String {
    let end = comm.iter().position(|&b| b == 0).unwrap_or(COMM_LEN);
    String::from_utf8_lossy(&comm[..end]).into_owned()
}

/// The frames `bpf_get_stack` wrote: `bytes` is its return (negative on failure).
pub(crate) fn captured_frames(stack: &[u64; MAX_STACK], bytes: i32) -> &[u64] {
    let n = usize::try_from(bytes).unwrap_or(0) / 8;
    &stack[..n.min(MAX_STACK)]
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::target::Kind;

    pub(super) fn record(kind: u8, target: u8, method: u8, stack_bytes: i32) -> Vec<u8> {
        let c = RawEventC {
            ts_ns: 7,
            args: [0xffffea8000000000, 0xffffea8000000000, 0],
            ret: 0,
            duration_ns: 0,
            pid: 1,
            tid: 2,
            cpu: 1,
            flags: 0,
            kind,
            target,
            method,
            pad: 0,
            stack_bytes,
            comm: *b"kworker/u4:1\0\0\0\0",
            stack: [0xffffffff81000000; MAX_STACK],
        };
        // SAFETY: RawEventC is repr(C) plain data without padding holes that
        // matter for this test (the bytes are only decoded again).
        unsafe { std::slice::from_raw_parts((&c as *const RawEventC).cast::<u8>(), EVENT_SIZE) }
            .to_vec()
    }

    #[test]
    fn ring_records_are_told_apart_by_length_then_kind() {
        assert!(matches!(
            RawRecord::from_bytes(&record(2, 1, 1, 0)),
            Ok(RawRecord::Event(e)) if e.kind == Kind::Exit
        ));
        // An st_event never has the diagnostic kind.
        assert_eq!(
            RawRecord::from_bytes(&record(KIND_DIAG, 0, 1, 0)),
            Err(DecodeError::Kind(KIND_DIAG))
        );
        for got in [0, DIAG_SIZE - 1, DIAG_SIZE + 1, EVENT_SIZE + 8] {
            assert_eq!(
                RawRecord::from_bytes(&vec![0; got]),
                Err(DecodeError::RecordLength { got })
            );
        }
    }
}
