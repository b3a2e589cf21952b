//! Batches of populate calls (`struct st_batch` in events.h): consecutive
//! calls of `vmemmap_pgd_populate()` or `vmemmap_p4d_populate()` by one task
//! over one top-level slot that init_top_pgt already had present when each
//! call entered, so none of them can be a population. The kernel counts them
//! instead of writing an entry and an exit record per call (events.h,
//! "Batches", tells when a batch is written).

use std::mem::{offset_of, size_of};

use crate::raw::{
    captured_frames, comm_name, DecodeError, COMM_LEN, DIAG_SIZE, EVENT_SIZE, MAX_STACK,
};
use crate::target::{Method, Target};

/// `ST_KIND_BATCH`: the kind of every `struct st_batch` record.
pub const KIND_BATCH: u8 = 4;

/// `ST_INFLIGHT_BATCHED` (`enum st_inflight_flag`, kernel only).
pub const INFLIGHT_BATCHED: u32 = 1 << 0;

/// Per-CPU open batches, by target (`ST_MAP_BATCH`, kernel only).
pub const MAP_BATCH: &str = "BATCH";
/// Per-CPU count of open batches (`ST_MAP_PENDING`): where a flush is due.
pub const MAP_PENDING: &str = "PENDING";
/// The flush program (`ST_PROG_FLUSH`), run with BPF_PROG_TEST_RUN on a CPU.
pub const PROG_FLUSH: &str = "st_flush";
/// Age (u64 ns) after which a batch is written at its next call; 0 turns
/// batches off.
pub const GLOBAL_BATCH_NS: &str = "st_cfg_batch_ns";

/// Why a batch was written (`enum st_batch_reason`).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchReason {
    /// A call of another task or top-level slot came.
    Other = 1,
    /// Older than `st_cfg_batch_ns` at its next call.
    Age = 2,
    /// Its call count was full.
    Full = 3,
    /// A sync, or a call that may populate, entered on its CPU.
    Sync = 4,
    /// The daemon flushed its CPU (before a scan, at the end).
    Flush = 5,
    /// One call alone: the CPU's batch was being updated.
    Lone = 6,
}

impl BatchReason {
    pub const ALL: [BatchReason; 6] = [
        BatchReason::Other,
        BatchReason::Age,
        BatchReason::Full,
        BatchReason::Sync,
        BatchReason::Flush,
        BatchReason::Lone,
    ];

    pub fn from_raw(v: u8) -> Option<Self> {
        Self::ALL.iter().copied().find(|r| *r as u8 == v)
    }

    /// The enumerator in events.h.
    pub fn c_name(self) -> &'static str {
        match self {
            BatchReason::Other => "ST_BATCH_OTHER",
            BatchReason::Age => "ST_BATCH_AGE",
            BatchReason::Full => "ST_BATCH_FULL",
            BatchReason::Sync => "ST_BATCH_SYNC",
            BatchReason::Flush => "ST_BATCH_FLUSH",
            BatchReason::Lone => "ST_BATCH_LONE",
        }
    }
}

/// `struct st_batch`, exactly as the kernel writes it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawBatchC {
    pub ts_ns: u64,
    pub end_ns: u64,
    pub busy_ns: u64,
    pub addr_first: u64,
    pub addr_last: u64,
    pub calls: u32,
    pub pid: u32,
    pub tid: u32,
    pub cpu: u32,
    pub kind: u8,
    pub target: u8,
    pub method: u8,
    pub reason: u8,
    pub stack_bytes: i32,
    pub comm: [u8; COMM_LEN],
    pub stack: [u64; MAX_STACK],
}

// Mirrors of the _Static_asserts in events.h.
const _: () = assert!(size_of::<RawBatchC>() == 80 + 8 * MAX_STACK);
const _: () = assert!(offset_of!(RawBatchC, calls) == 40);
const _: () = assert!(offset_of!(RawBatchC, kind) == 56);
const _: () = assert!(offset_of!(RawBatchC, comm) == 64);
const _: () = assert!(offset_of!(RawBatchC, stack) == 80);
const _: () = assert!(size_of::<RawBatchC>() != EVENT_SIZE);
const _: () = assert!(size_of::<RawBatchC>() != DIAG_SIZE);

/// Size in bytes of one `struct st_batch` record.
pub const BATCH_SIZE: usize = size_of::<RawBatchC>();

/// A decoded, validated `st_batch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawBatch {
    /// Entry of the first call.
    pub ts_ns: u64,
    /// Exit of the last call.
    pub end_ns: u64,
    /// Sum of the calls' durations.
    pub busy_ns: u64,
    pub addr_first: u64,
    pub addr_last: u64,
    pub calls: u32,
    pub pid: u32,
    pub tid: u32,
    pub cpu: u32,
    pub target: Target,
    pub method: Method,
    pub reason: BatchReason,
    /// Bytes of `stack` filled (the first call's, at its exit), or a negative errno.
    pub stack_bytes: i32,
    pub comm: [u8; COMM_LEN],
    pub stack: [u64; MAX_STACK],
}

impl RawBatch {
    /// Decodes one ring-buffer record of [`BATCH_SIZE`] bytes (any other
    /// length is an error, never a partial read).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() != BATCH_SIZE {
            return Err(DecodeError::BatchLength {
                got: bytes.len(),
                expected: BATCH_SIZE,
            });
        }
        // SAFETY: length checked above, RawBatchC is plain old data (every
        // bit pattern is valid), and read_unaligned has no alignment need.
        let c: RawBatchC = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
        if c.kind != KIND_BATCH {
            return Err(DecodeError::BatchKind(c.kind));
        }
        Ok(Self {
            ts_ns: c.ts_ns,
            end_ns: c.end_ns,
            busy_ns: c.busy_ns,
            addr_first: c.addr_first,
            addr_last: c.addr_last,
            calls: c.calls,
            pid: c.pid,
            tid: c.tid,
            cpu: c.cpu,
            target: Target::from_raw(c.target).ok_or(DecodeError::Target(c.target))?,
            method: Method::from_raw(c.method).ok_or(DecodeError::Method(c.method))?,
            reason: BatchReason::from_raw(c.reason).ok_or(DecodeError::BatchReason(c.reason))?,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raw::RawRecord;

    /// A `struct st_batch` written byte by byte at events.h's offsets (not
    /// through [`RawBatchC`]), little endian as on x86_64.
    fn c_batch(kind: u8, target: u8, reason: u8, stack_bytes: i32) -> Vec<u8> {
        let mut b = Vec::with_capacity(BATCH_SIZE);
        for v in [
            1_000u64,
            9_000,
            5_000,
            0xffff_ea80_0000_0000,
            0xffff_ea80_001f_f000,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for v in [512u32, 77, 78, 1] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&[kind, target, 1, reason]);
        b.extend_from_slice(&stack_bytes.to_le_bytes());
        b.extend_from_slice(b"kworker/u4:1\0\0\0\0");
        for i in 0..MAX_STACK as u64 {
            b.extend_from_slice(&(0xffff_ffff_8100_0000 + i).to_le_bytes());
        }
        b
    }

    #[test]
    fn decodes_a_batch_by_its_length() {
        let Ok(RawRecord::Batch(b)) = RawRecord::from_bytes(&c_batch(KIND_BATCH, 3, 5, 24)) else {
            panic!("not decoded as a batch");
        };
        assert_eq!(
            (b.ts_ns, b.end_ns, b.busy_ns, b.calls, b.pid, b.tid, b.cpu),
            (1_000, 9_000, 5_000, 512, 77, 78, 1)
        );
        assert_eq!(
            (b.addr_first, b.addr_last),
            (0xffff_ea80_0000_0000, 0xffff_ea80_001f_f000)
        );
        assert_eq!(
            (b.target, b.method, b.reason),
            (
                Target::VmemmapP4dPopulate,
                Method::Fentry,
                BatchReason::Flush
            )
        );
        assert_eq!(b.comm(), "kworker/u4:1");
        assert_eq!(b.frames().len(), 3);
    }

    #[test]
    fn rejects_bad_batches() {
        assert_eq!(
            RawBatch::from_bytes(&c_batch(1, 3, 5, 0)),
            Err(DecodeError::BatchKind(1))
        );
        assert_eq!(
            RawBatch::from_bytes(&c_batch(KIND_BATCH, 3, 0, 0)),
            Err(DecodeError::BatchReason(0))
        );
        assert_eq!(
            RawBatch::from_bytes(&c_batch(KIND_BATCH, 99, 5, 0)),
            Err(DecodeError::Target(99))
        );
        let b = c_batch(KIND_BATCH, 3, 5, 0);
        assert_eq!(
            RawBatch::from_bytes(&b[..BATCH_SIZE - 1]),
            Err(DecodeError::BatchLength {
                got: BATCH_SIZE - 1,
                expected: BATCH_SIZE
            })
        );
    }
}
