//! `struct st_diag`: a kernel-side diagnostic.

use std::mem::{offset_of, size_of};

use super::{DecodeError, EVENT_SIZE};
use crate::diag::DiagCode;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raw::RawRecord;

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
}
