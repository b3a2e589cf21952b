//! One result of the page-table scan program: init_mm's top-level table and,
//! after a walk, per-slot counts of PGDs that disagree with it.

use sync_trace_common::{
    raw::{self, RawScan, HALF, KERNEL_HALF, PTRS},
    Layout,
};

/// Present bit of an x86 page-table entry.
const PRESENT: u64 = 1;

#[derive(Clone, Copy, Debug)]
pub struct Snapshot {
    pub raw: RawScan,
}

impl Snapshot {
    pub fn layout(&self) -> Layout {
        Layout::new(
            self.raw.pgdir_shift,
            self.raw.page_offset_base,
            self.raw.vmalloc_base,
            self.raw.vmemmap_base,
        )
    }

    pub fn ts_ns(&self) -> u64 {
        self.raw.ts_ns
    }

    /// Whether init_mm has a present entry in `slot`.
    pub fn present(&self, slot: usize) -> bool {
        slot < PTRS && self.raw.top[slot] & PRESENT != 0
    }

    /// Present kernel slots, from the kernel boundary.
    pub fn present_kernel_slots(&self) -> impl Iterator<Item = usize> + '_ {
        let first = self.layout().kernel_boundary().max(KERNEL_HALF);
        (first..PTRS).filter(|&s| self.present(s))
    }

    pub fn walked(&self) -> bool {
        self.raw.status & raw::SCAN_WALKED != 0
    }

    /// The walk ended without reaching the list head again.
    pub fn incomplete(&self) -> bool {
        self.raw.status & (raw::SCAN_FAULT | raw::SCAN_TRUNCATED) != 0
    }

    /// The walk stopped at its PGD bound (`--max-pgds`), not on a fault.
    pub fn truncated(&self) -> bool {
        self.raw.status & raw::SCAN_TRUNCATED != 0 && self.raw.status & raw::SCAN_FAULT == 0
    }

    pub fn missing(&self, slot: usize) -> u32 {
        slot.checked_sub(KERNEL_HALF)
            .filter(|&i| i < HALF)
            .map_or(0, |i| self.raw.missing[i])
    }

    pub fn mismatch(&self, slot: usize) -> u32 {
        slot.checked_sub(KERNEL_HALF)
            .filter(|&i| i < HALF)
            .map_or(0, |i| self.raw.mismatch[i])
    }

    /// Keeps, per slot, the smaller count of this walk and `other`: a
    /// disagreement is reported only when a second walk confirms it.
    pub fn confirm_with(&mut self, other: &Snapshot) {
        for i in 0..HALF {
            self.raw.missing[i] = self.raw.missing[i].min(other.raw.missing[i]);
            self.raw.mismatch[i] = self.raw.mismatch[i].min(other.raw.mismatch[i]);
        }
    }

    pub fn has_disagreement(&self) -> bool {
        self.raw
            .missing
            .iter()
            .chain(self.raw.mismatch.iter())
            .any(|&n| n > 0)
    }

    /// An empty 4-level snapshot for tests.
    #[cfg(test)]
    pub fn test(ts_ns: u64, present: &[usize]) -> Self {
        let mut raw = RawScan {
            ts_ns,
            end_ns: ts_ns,
            page_offset_base: 0xffff888000000000,
            vmalloc_base: 0xffffc90000000000,
            vmemmap_base: 0xffffea0000000000,
            sme_me_mask: 0,
            pgdir_shift: 39,
            status: raw::SCAN_DONE | raw::SCAN_WALKED,
            pgds: 10,
            page_size: 64,
            top: [0; PTRS],
            missing: [0; HALF],
            mismatch: [0; HALF],
        };
        for &s in present {
            raw.top[s] = (0x1000 * s as u64) | 0x63;
        }
        Self { raw }
    }
}
