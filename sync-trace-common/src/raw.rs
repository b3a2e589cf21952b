//! `#[repr(C)]` twins of the records in `events.h`, its constants, and a
//! decoder that never reads past the bytes it is given.
//!
//! sync-trace-ebpf's `tests/contract.rs` compares every struct here field by
//! field (offset, size, type) and every constant with the BTF clang writes
//! for events.h; the compile-time checks below only mirror its
//! `_Static_assert`s.

use std::mem::{offset_of, size_of};

use crate::batch::{RawBatch, BATCH_SIZE};
use crate::diag::DiagCode;
use crate::target::{Kind, Method, Target};

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

/// `struct st_scan`, exactly as the scan program writes it.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawScan {
    pub ts_ns: u64,
    pub end_ns: u64,
    pub page_offset_base: u64,
    pub vmalloc_base: u64,
    pub vmemmap_base: u64,
    pub sme_me_mask: u64,
    pub pgdir_shift: u32,
    pub status: u32,
    pub pgds: u32,
    pub page_size: u32,
    pub top: [u64; PTRS],
    pub missing: [u32; HALF],
    pub mismatch: [u32; HALF],
    pub slots: [u64; SLOT_WORDS],
    pub cursor: u64,
    pub max_run_ns: u64,
    pub busy_ns: u64,
    pub runs: u32,
    pub restarts: u32,
    pub core: u32,
    pub nslots: u32,
    pub list: [u16; HALF],
    pub list_off: u32,
    pub pt_mm_off: u32,
    pub refcount_off: u32,
    pub mm_pgd_off: u32,
}

const SCAN_SLOTS_OFF: usize = 64 + 8 * PTRS + 8 * HALF;
const _: () = assert!(size_of::<RawScan>() == SCAN_SLOTS_OFF + 8 * SLOT_WORDS + 40 + 2 * HALF + 16);
const _: () = assert!(offset_of!(RawScan, top) == 64);
const _: () = assert!(offset_of!(RawScan, slots) == SCAN_SLOTS_OFF);
const _: () = assert!(offset_of!(RawScan, list) == SCAN_SLOTS_OFF + 8 * SLOT_WORDS + 40);

impl RawScan {
    /// An all-zero result (no status bits: not a scan yet).
    pub const fn zeroed() -> Self {
        Self {
            ts_ns: 0,
            end_ns: 0,
            page_offset_base: 0,
            vmalloc_base: 0,
            vmemmap_base: 0,
            sme_me_mask: 0,
            pgdir_shift: 0,
            status: 0,
            pgds: 0,
            page_size: 0,
            top: [0; PTRS],
            missing: [0; HALF],
            mismatch: [0; HALF],
            slots: [0; SLOT_WORDS],
            cursor: 0,
            max_run_ns: 0,
            busy_ns: 0,
            runs: 0,
            restarts: 0,
            core: 0,
            nslots: 0,
            list: [0; HALF],
            list_off: 0,
            pt_mm_off: 0,
            refcount_off: 0,
            mm_pgd_off: 0,
        }
    }
}

/// `struct st_event`, exactly as the kernel writes it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawEventC {
    pub ts_ns: u64,
    pub args: [u64; 3],
    pub ret: u64,
    pub duration_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub cpu: u32,
    pub flags: u32,
    pub kind: u8,
    pub target: u8,
    pub method: u8,
    pub pad: u8,
    pub stack_bytes: i32,
    pub comm: [u8; COMM_LEN],
    pub stack: [u64; MAX_STACK],
}

// Mirrors of the _Static_asserts in events.h.
const _: () = assert!(size_of::<RawEventC>() == 88 + 8 * MAX_STACK);
const _: () = assert!(offset_of!(RawEventC, pid) == 48);
const _: () = assert!(offset_of!(RawEventC, kind) == 64);
const _: () = assert!(offset_of!(RawEventC, stack_bytes) == 68);
const _: () = assert!(offset_of!(RawEventC, comm) == 72);
const _: () = assert!(offset_of!(RawEventC, stack) == 88);

/// Size in bytes of one `struct st_event` record.
pub const EVENT_SIZE: usize = size_of::<RawEventC>();

/// `ST_KIND_DIAG`: the kind of every `struct st_diag` record, and of no
/// `struct st_event` (whose kinds are [`Kind`]).
pub const KIND_DIAG: u8 = 3;

/// `struct st_diag`, exactly as the kernel writes it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawDiagC {
    pub ts_ns: u64,
    pub value: u64,
    pub pid: u32,
    pub cpu: u32,
    pub kind: u8,
    pub code: u8,
    pub pad: [u8; 6],
}

// Mirrors of the _Static_asserts in events.h.
const _: () = assert!(size_of::<RawDiagC>() == 32);
const _: () = assert!(offset_of!(RawDiagC, kind) == 24);
const _: () = assert!(size_of::<RawDiagC>() != EVENT_SIZE);

/// Size in bytes of one `struct st_diag` record.
pub const DIAG_SIZE: usize = size_of::<RawDiagC>();

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

/// A decoded, validated `st_event`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawEvent {
    pub ts_ns: u64,
    pub args: [u64; 3],
    pub ret: u64,
    pub duration_ns: u64,
    pub pid: u32,
    pub tid: u32,
    pub cpu: u32,
    pub flags: u32,
    pub kind: Kind,
    pub target: Target,
    pub method: Method,
    /// Bytes of `stack` filled, or a negative errno from `bpf_get_stack`.
    pub stack_bytes: i32,
    pub comm: [u8; COMM_LEN],
    pub stack: [u64; MAX_STACK],
}

impl RawEvent {
    /// Decodes one ring-buffer record. A record of any other length than
    /// [`EVENT_SIZE`] is an error, never a partial read.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() != EVENT_SIZE {
            return Err(DecodeError::Length {
                got: bytes.len(),
                expected: EVENT_SIZE,
            });
        }
        // SAFETY: the length is checked above, RawEventC is plain old data
        // (every bit pattern is valid) and read_unaligned has no alignment
        // requirement.
        let c: RawEventC = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
        Ok(Self {
            ts_ns: c.ts_ns,
            args: c.args,
            ret: c.ret,
            duration_ns: c.duration_ns,
            pid: c.pid,
            tid: c.tid,
            cpu: c.cpu,
            flags: c.flags,
            kind: Kind::from_raw(c.kind).ok_or(DecodeError::Kind(c.kind))?,
            target: Target::from_raw(c.target).ok_or(DecodeError::Target(c.target))?,
            method: Method::from_raw(c.method).ok_or(DecodeError::Method(c.method))?,
            stack_bytes: c.stack_bytes,
            comm: c.comm,
            stack: c.stack,
        })
    }

    /// The task name, up to its NUL.
    pub fn comm(&self) -> String {
        comm_name(&self.comm)
    }

    /// The captured kernel frames (empty when capture failed or was off).
    pub fn frames(&self) -> &[u64] {
        captured_frames(&self.stack, self.stack_bytes)
    }
}

/// A decoded, validated `st_diag`: a kernel-side diagnostic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawDiag {
    pub ts_ns: u64,
    pub pid: u32,
    pub cpu: u32,
    pub code: DiagCode,
    /// Meaning per code; a signed value as its two's complement.
    pub value: u64,
}

impl RawDiag {
    /// Decodes one ring-buffer record of [`DIAG_SIZE`] bytes (any other
    /// length is an error, never a partial read).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() != DIAG_SIZE {
            return Err(DecodeError::DiagLength {
                got: bytes.len(),
                expected: DIAG_SIZE,
            });
        }
        // SAFETY: as in RawEvent::from_bytes: length checked, plain old data,
        // unaligned read.
        let c: RawDiagC = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
        if c.kind != KIND_DIAG {
            return Err(DecodeError::DiagKind(c.kind));
        }
        Ok(Self {
            ts_ns: c.ts_ns,
            pid: c.pid,
            cpu: c.cpu,
            code: DiagCode::from_raw(c.code).ok_or(DecodeError::DiagCode(c.code))?,
            value: c.value,
        })
    }

    /// The message the daemon logs (see [`DiagCode::message`]).
    pub fn message(&self) -> String {
        self.code.message(self.value)
    }
}

/// One record of the EVENTS ring. Records have no header of their own: the
/// ring gives each one's length, which tells the struct, and the struct's
/// `kind` must then agree.
// Decoded one at a time and consumed at once, never kept in bulk: boxing
// the event would cost an allocation per record for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawRecord {
    /// `struct st_event` (kind entry or exit).
    Event(RawEvent),
    /// `struct st_diag` (kind `ST_KIND_DIAG`).
    Diag(RawDiag),
    /// `struct st_batch` (kind `ST_KIND_BATCH`): populate calls, counted.
    Batch(RawBatch),
}

impl RawRecord {
    /// Decodes one ring-buffer record by its length.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
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
mod tests {
    #[test]
    fn a_sweep_change_is_read_word_by_word_and_only_at_its_length() {
        let words: Vec<u64> = (1..=2 + 2 * SLOT_WORDS as u64).collect();
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let c = RawSweepChange::from_bytes(&bytes).unwrap();
        assert_eq!((c.ts_ns, c.prev_ns), (1, 2));
        assert_eq!(c.before, [3, 4, 5, 6]);
        assert_eq!(c.now, [7, 8, 9, 10]);
        assert!(RawSweepChange::from_bytes(&bytes[..bytes.len() - 8]).is_none());
    }

    use super::*;

    fn record(kind: u8, target: u8, method: u8, stack_bytes: i32) -> Vec<u8> {
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
    fn decodes_a_record() {
        let e = RawEvent::from_bytes(&record(1, 0, 2, 16)).unwrap();
        assert_eq!(e.kind, Kind::Entry);
        assert_eq!(e.target, Target::ArchSyncKernelMappings);
        assert_eq!(e.method, Method::Kprobe);
        assert_eq!(e.comm(), "kworker/u4:1");
        assert_eq!(e.frames().len(), 2);
        assert_eq!(e.args[0], 0xffffea8000000000);
    }

    #[test]
    fn rejects_short_and_long_records() {
        let r = record(1, 0, 1, 0);
        for len in [0, 1, EVENT_SIZE - 1] {
            assert_eq!(
                RawEvent::from_bytes(&r[..len]),
                Err(DecodeError::Length {
                    got: len,
                    expected: EVENT_SIZE
                })
            );
        }
        let mut long = r.clone();
        long.push(0);
        assert!(matches!(
            RawEvent::from_bytes(&long),
            Err(DecodeError::Length { .. })
        ));
    }

    #[test]
    fn rejects_unknown_enums() {
        assert_eq!(
            RawEvent::from_bytes(&record(9, 0, 1, 0)),
            Err(DecodeError::Kind(9))
        );
        assert_eq!(
            RawEvent::from_bytes(&record(1, 99, 1, 0)),
            Err(DecodeError::Target(99))
        );
        assert_eq!(
            RawEvent::from_bytes(&record(1, 0, 0, 0)),
            Err(DecodeError::Method(0))
        );
    }

    #[test]
    fn negative_or_oversized_stack_length_is_clamped() {
        assert!(RawEvent::from_bytes(&record(1, 0, 1, -14))
            .unwrap()
            .frames()
            .is_empty());
        assert_eq!(
            RawEvent::from_bytes(&record(1, 0, 1, 1 << 20))
                .unwrap()
                .frames()
                .len(),
            MAX_STACK
        );
    }

    /// A `struct st_diag` as the kernel lays it out, written byte by byte
    /// at events.h's offsets (not through [`RawDiagC`]): ts_ns at 0, value
    /// at 8, pid at 16, cpu at 20, kind at 24, code at 25, 6 bytes of
    /// padding; little endian, as on x86_64.
    fn c_diag(kind: u8, code: u8, value: u64) -> Vec<u8> {
        let mut b = Vec::with_capacity(32);
        b.extend_from_slice(&123_456_789u64.to_le_bytes());
        b.extend_from_slice(&value.to_le_bytes());
        b.extend_from_slice(&4242u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        b.push(kind);
        b.push(code);
        b.extend_from_slice(&[0; 6]);
        b
    }

    #[test]
    fn decodes_a_diagnostic_of_every_code_into_its_message() {
        let cases = [
            // ST_DIAG_INFLIGHT_FULL, target 3 (vmemmap_p4d_populate)
            (1, 3, "INFLIGHT map full; exit of target 3"),
            // ST_DIAG_STACK_FAILED, -EFAULT as the kernel's signed long
            (2, (-14i64) as u64, "kernel stack capture failed, error -14"),
            // ST_DIAG_FORCED, the start address in lower hex
            (
                3,
                0xffff_ea80_0000_0000,
                "forced kernel-side diagnostic at entry, start=0xffffea8000000000",
            ),
        ];
        assert_eq!(cases.len(), DiagCode::ALL.len(), "a case per code");
        for (code, value, message) in cases {
            let bytes = c_diag(KIND_DIAG, code, value);
            let Ok(RawRecord::Diag(d)) = RawRecord::from_bytes(&bytes) else {
                panic!("code {code}: not decoded as a diagnostic");
            };
            assert_eq!(d.code as u8, code);
            assert_eq!(
                (d.ts_ns, d.pid, d.cpu, d.value),
                (123_456_789, 4242, 1, value)
            );
            assert_eq!(d.message(), message);
        }
    }

    #[test]
    fn rejects_bad_diagnostics() {
        assert_eq!(
            RawDiag::from_bytes(&c_diag(1, 1, 0)),
            Err(DecodeError::DiagKind(1))
        );
        assert_eq!(
            RawDiag::from_bytes(&c_diag(KIND_DIAG, 0, 0)),
            Err(DecodeError::DiagCode(0))
        );
        assert_eq!(
            RawDiag::from_bytes(&c_diag(KIND_DIAG, 4, 0)),
            Err(DecodeError::DiagCode(4))
        );
        let d = c_diag(KIND_DIAG, 1, 0);
        assert_eq!(
            RawDiag::from_bytes(&d[..DIAG_SIZE - 1]),
            Err(DecodeError::DiagLength {
                got: DIAG_SIZE - 1,
                expected: DIAG_SIZE
            })
        );
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

/// The kernel sweep's state map: `ARRAY[1]` of the timer and [`RawSweepView`].
pub const MAP_SWEEP: &str = "ST_SWEEP";
/// Ring buffer of [`RawSweepChange`] records.
pub const MAP_SWEEP_RING: &str = "ST_SWEEP_RING";
/// The program that arms the kernel sweep (fexit of `bpf_fentry_test1`).
pub const PROG_SWEEP_ARM: &str = "st_sweep_arm";
/// Period of the kernel sweep in ns (u64).
pub const GLOBAL_SWEEP_NS: &str = "st_cfg_sweep_ns";
/// The function whose fexit arms the kernel sweep: the one the kernel's
/// BPF_PROG_TEST_RUN of tracing programs calls.
pub const SWEEP_ARM_FUNCTION: &str = "bpf_fentry_test1";
/// Bytes of `struct bpf_timer` before the view in the `ST_SWEEP` value.
pub const SWEEP_TIMER_BYTES: usize = 16;

/// `struct st_sweep_view`, exactly as the sweep timer writes it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RawSweepView {
    pub period_ns: u64,
    pub last_ns: u64,
    pub sweeps: u64,
    pub changes: u64,
    pub busy_ns: u64,
    pub faults: u64,
    pub lost: u64,
    pub bits: [u64; SLOT_WORDS],
    pub arm_error: i32,
    pub armed: u32,
}

/// The `ST_SWEEP` map value: the timer (opaque, read back as zeros) and the view.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RawSweep {
    pub timer: [u64; SWEEP_TIMER_BYTES / 8],
    pub view: RawSweepView,
}

/// `struct st_sweep_change`, exactly as the sweep timer writes it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawSweepChange {
    pub ts_ns: u64,
    pub prev_ns: u64,
    pub before: [u64; SLOT_WORDS],
    pub now: [u64; SLOT_WORDS],
}

impl RawSweepChange {
    /// A change record from the ring; `None` when its length is not one.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() != size_of::<Self>() {
            return None;
        }
        let word =
            |i: usize| u64::from_ne_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or_default());
        let mut c = Self {
            ts_ns: word(0),
            prev_ns: word(1),
            ..Self::default()
        };
        for w in 0..SLOT_WORDS {
            c.before[w] = word(2 + w);
            c.now[w] = word(2 + SLOT_WORDS + w);
        }
        Some(c)
    }
}
