//! One result of the page-table scan program: init_mm's top-level table and,
//! after a walk of pgd_list, per-slot counts of PGDs that disagree with it
//! for the slots the walk compared.

use sync_trace_common::{
    raw::{self, RawScan, HALF, KERNEL_HALF, PTRS},
    Layout,
};

use super::slot_set::SlotSet;

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
        .with_struct_page(self.struct_page())
    }

    /// `sizeof(struct page)` from CO-RE, when the kernel's BTF gave a
    /// plausible one (an unapplied relocation gives the local, smaller size).
    pub fn struct_page(&self) -> Option<u64> {
        let size = u64::from(self.raw.page_size);
        let known = self.raw.core & raw::CORE_PAGE != 0 && size >= 64 && size.is_multiple_of(8);
        known.then_some(size)
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

    /// The slot set the walk was asked to compare.
    pub fn slot_set(&self) -> SlotSet {
        SlotSet::from_words(self.raw.slots)
    }

    /// Whether the walk compared `slot`: asked for, and present in init_mm
    /// when the walk started.
    pub fn checked(&self, slot: usize) -> bool {
        self.slot_set().contains(slot) && self.present(slot)
    }

    /// The walk reached the list head again.
    pub fn walked(&self) -> bool {
        self.raw.status & raw::SCAN_WALKED != 0
    }

    /// A walk was tried and ended early (a fault or an invalid node after
    /// every restart, `--max-pgds`, missing CO-RE facts), or its
    /// disagreement could not be confirmed: it has no counts.
    pub fn incomplete(&self) -> bool {
        self.raw.status
            & (raw::SCAN_FAULT
                | raw::SCAN_TRUNCATED
                | raw::SCAN_NO_CORE
                | raw::SCAN_NOT_BEGUN
                | raw::SCAN_MORE
                | raw::SCAN_UNCONFIRMED)
            != 0
    }

    /// A whole walk of pgd_list whose counts stand.
    pub fn complete(&self) -> bool {
        self.walked() && !self.incomplete()
    }

    /// The walk stopped at `--max-pgds`: every PGD after that was not compared.
    pub fn truncated(&self) -> bool {
        self.raw.status & raw::SCAN_TRUNCATED != 0
    }

    /// Its disagreements were seen by two complete walks.
    pub fn confirmed(&self) -> bool {
        self.raw.status & raw::SCAN_CONFIRMED != 0
    }

    /// PGDs lacking init_mm's entry in `slot`; 0 unless the walk is complete
    /// and compared that slot.
    pub fn missing(&self, slot: usize) -> u32 {
        self.count(&self.raw.missing, slot)
    }

    /// PGDs whose entry in `slot` points to another table; 0 unless the walk
    /// is complete and compared that slot.
    pub fn mismatch(&self, slot: usize) -> u32 {
        self.count(&self.raw.mismatch, slot)
    }

    fn count(&self, per_slot: &[u32; HALF], slot: usize) -> u32 {
        if !self.complete() || !self.checked(slot) {
            return 0;
        }
        per_slot[slot - KERNEL_HALF]
    }

    pub fn has_disagreement(&self) -> bool {
        (KERNEL_HALF..PTRS).any(|s| self.missing(s) > 0 || self.mismatch(s) > 0)
    }

    /// Forgets the counts (a walk that ended early must not report any).
    pub fn clear_counts(&mut self) {
        self.raw.missing = [0; HALF];
        self.raw.mismatch = [0; HALF];
    }

    /// This complete walk confirmed by a later complete walk of the same
    /// slots: the later walk's header (table, list length, times) with, per
    /// slot both compared, the smaller count of the two; a slot only one of
    /// them compared is dropped. Anything else than two complete walks gives
    /// [`Snapshot::unconfirmed`] of `self`.
    pub fn confirmed_by(&self, later: &Snapshot) -> Snapshot {
        if !self.complete() || !later.complete() {
            return self.unconfirmed();
        }
        let mut out = *later;
        let both = self.slot_set().intersection(&later.slot_set());
        out.raw.slots = both.words();
        for i in 0..HALF {
            let slot = KERNEL_HALF + i;
            let keep = self.checked(slot) && later.checked(slot);
            out.raw.missing[i] = if keep {
                self.raw.missing[i].min(later.raw.missing[i])
            } else {
                0
            };
            out.raw.mismatch[i] = if keep {
                self.raw.mismatch[i].min(later.raw.mismatch[i])
            } else {
                0
            };
        }
        out.raw.status |= raw::SCAN_CONFIRMED;
        out.raw.runs = out.raw.runs.saturating_add(self.raw.runs);
        out.raw.busy_ns = out.raw.busy_ns.saturating_add(self.raw.busy_ns);
        out.raw.max_run_ns = out.raw.max_run_ns.max(self.raw.max_run_ns);
        out
    }

    /// A walk whose disagreement could not be confirmed: no counts.
    pub fn unconfirmed(&self) -> Snapshot {
        let mut out = *self;
        out.clear_counts();
        out.raw.status |= raw::SCAN_UNCONFIRMED;
        out
    }

    /// An empty 4-level snapshot for tests: a complete walk of every slot.
    #[cfg(test)]
    pub fn test(ts_ns: u64, present: &[usize]) -> Self {
        let mut raw = RawScan::zeroed();
        raw.ts_ns = ts_ns;
        raw.end_ns = ts_ns;
        raw.page_offset_base = 0xffff888000000000;
        raw.vmalloc_base = 0xffffc90000000000;
        raw.vmemmap_base = 0xffffea0000000000;
        raw.pgdir_shift = 39;
        raw.status = raw::SCAN_DONE | raw::SCAN_WALKED;
        raw.pgds = 10;
        raw.page_size = 64;
        raw.core = raw::CORE_PAGE;
        raw.slots = SlotSet::all().words();
        for &s in present {
            raw.top[s] = (0x1000 * s as u64) | 0x63;
        }
        Self { raw }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const BOOT: [usize; 4] = [273, 402, 468, 511];

    pub(crate) fn walk(missing: &[(usize, u32)], status: u32) -> Snapshot {
        let mut s = Snapshot::test(1, &BOOT);
        s.raw.status = status;
        for &(slot, n) in missing {
            s.raw.missing[slot - KERNEL_HALF] = n;
        }
        s
    }

    pub(crate) fn complete(missing: &[(usize, u32)]) -> Snapshot {
        walk(missing, raw::SCAN_DONE | raw::SCAN_WALKED)
    }

    /// Counts are the kernel's u32s: their sum may not fit (found by the
    /// `scan` fuzz target), and a disagreement must not wrap to none.
    #[test]
    fn counts_at_their_limit_are_still_a_disagreement() {
        let mut s = complete(&[(402, u32::MAX)]);
        s.raw.mismatch[402 - KERNEL_HALF] = 1;
        assert!(s.has_disagreement());
    }

    #[test]
    fn kernel_slot_set_starts_at_the_boundary() {
        let s = Snapshot::test(1, &BOOT);
        let k = SlotSet::kernel(&s.layout());
        assert_eq!(k.iter().next(), Some(s.layout().kernel_boundary()));
        assert_eq!(k.iter().last(), Some(511));
    }

    #[test]
    fn counts_only_from_complete_walks_of_checked_slots() {
        let c = complete(&[(402, 7)]);
        assert_eq!(c.missing(402), 7);
        for bad in [
            raw::SCAN_DONE | raw::SCAN_FAULT,
            raw::SCAN_DONE | raw::SCAN_WALKED | raw::SCAN_FAULT,
            raw::SCAN_DONE | raw::SCAN_TRUNCATED,
            raw::SCAN_MORE,
            raw::SCAN_DONE | raw::SCAN_WALKED | raw::SCAN_UNCONFIRMED,
        ] {
            let w = walk(&[(402, 7)], bad);
            assert!(!w.complete() && w.missing(402) == 0 && !w.has_disagreement());
        }
        let mut only = complete(&[(402, 7), (468, 3)]);
        only.raw.slots = SlotSet::from_iter([468]).words();
        assert_eq!((only.missing(402), only.missing(468)), (0, 3));
        // Not present in init_mm: not compared, whatever the set says.
        assert!(!only.checked(300));
    }

    #[test]
    fn confirmation_keeps_only_slots_both_compared() {
        let mut a = complete(&[(402, 5), (468, 5)]);
        a.raw.slots = SlotSet::from_iter([402, 468]).words();
        let mut b = complete(&[(402, 5), (468, 5)]);
        b.raw.slots = SlotSet::from_iter([402]).words();
        let v = a.confirmed_by(&b);
        assert_eq!((v.missing(402), v.missing(468)), (5, 0));
        assert!(!v.checked(468));
    }
}
