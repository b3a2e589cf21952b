//! The kernel sweep (sweep_timer.h): its state map, as the timer writes it,
//! and the change records of its own ring buffer.

use std::mem::size_of;

use super::SLOT_WORDS;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
