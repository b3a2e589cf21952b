//! `struct st_event`: the entry or exit of a traced call, and its decoded
//! view, which borrows the captured frames from the ring record.

use std::mem::{offset_of, size_of};

use super::{comm_name, DecodeError, COMM_LEN, MAX_STACK};
use crate::target::{Kind, Method, Target};

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

/// The fields of `struct st_event` before its stack: what decoding copies
/// out of the ring record (the frames stay where they are).
#[repr(C)]
#[derive(Clone, Copy)]
struct Head {
    ts_ns: u64,
    args: [u64; 3],
    ret: u64,
    duration_ns: u64,
    pid: u32,
    tid: u32,
    cpu: u32,
    flags: u32,
    kind: u8,
    target: u8,
    method: u8,
    pad: u8,
    stack_bytes: i32,
    comm: [u8; COMM_LEN],
}

const STACK_OFF: usize = offset_of!(RawEventC, stack);
const _: () = assert!(size_of::<Head>() == STACK_OFF);
const _: () = assert!(offset_of!(Head, comm) == offset_of!(RawEventC, comm));
const _: () = assert!(offset_of!(Head, stack_bytes) == offset_of!(RawEventC, stack_bytes));

/// A decoded, validated `st_event`: its scalar fields, and a view of the
/// captured frames in the ring record it was decoded from (nothing is
/// allocated and the stack is not copied).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawEvent<'a> {
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
    /// The captured frames as the record holds them: native-endian u64s,
    /// not necessarily aligned.
    frame_bytes: &'a [u8],
}

impl<'a> RawEvent<'a> {
    /// Decodes one ring-buffer record. A record of any other length than
    /// [`EVENT_SIZE`] is an error, never a partial read.
    #[inline]
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        if bytes.len() != EVENT_SIZE {
            return Err(DecodeError::Length {
                got: bytes.len(),
                expected: EVENT_SIZE,
            });
        }
        // SAFETY: the length is checked above (Head is a prefix of the
        // record), Head is plain old data (every bit pattern is valid) and
        // read_unaligned has no alignment requirement.
        let c: Head = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
        let frames = usize::try_from(c.stack_bytes).unwrap_or(0) / 8;
        let frames = frames.min(MAX_STACK);
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
            frame_bytes: &bytes[STACK_OFF..STACK_OFF + 8 * frames],
        })
    }

    /// The task name, up to its NUL.
    pub fn comm(&self) -> String {
        comm_name(&self.comm)
    }

    /// The captured kernel frames, innermost first (none when capture
    /// failed or was off).
    pub fn frames(&self) -> impl ExactSizeIterator<Item = u64> + 'a {
        self.frame_bytes
            .chunks_exact(8)
            .map(|f| u64::from_ne_bytes(f.try_into().expect("chunks of 8 bytes")))
    }

    /// The captured frames as the record holds them, 8 bytes each: a key
    /// for the stack that needs no copy.
    pub fn frame_bytes(&self) -> &'a [u8] {
        self.frame_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raw::tests::record;

    #[test]
    fn decodes_a_record() {
        let r = record(1, 0, 2, 16);
        let e = RawEvent::from_bytes(&r).unwrap();
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
        assert_eq!(
            RawEvent::from_bytes(&record(1, 0, 1, -14))
                .unwrap()
                .frames()
                .len(),
            0
        );
        assert_eq!(
            RawEvent::from_bytes(&record(1, 0, 1, 1 << 20))
                .unwrap()
                .frames()
                .len(),
            MAX_STACK
        );
    }
}
