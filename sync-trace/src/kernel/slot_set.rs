//! The sets of kernel-half top-level slots a walk of pgd_list is asked to
//! compare, in the encoding the scan program takes.

use sync_trace_common::{
    raw::{HALF, KERNEL_HALF, PTRS, SLOT_WORDS},
    Layout,
};

/// A set of kernel-half top-level slots (256..511), as the scan program
/// takes it: bit `k` of word `w` is slot `256 + 64 * w + k`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlotSet([u64; SLOT_WORDS]);

impl SlotSet {
    pub const fn empty() -> Self {
        Self([0; SLOT_WORDS])
    }

    /// Every kernel-half slot: the program compares those init_mm has.
    pub const fn all() -> Self {
        Self([u64::MAX; SLOT_WORDS])
    }

    /// The kernel slots of a layout: from its kernel boundary to 511.
    pub fn kernel(layout: &Layout) -> Self {
        (layout.kernel_boundary().max(KERNEL_HALF)..PTRS).collect()
    }

    /// Adds `slot`; slots outside 256..511 are not kernel-half slots and are
    /// ignored (returns false).
    pub fn insert(&mut self, slot: usize) -> bool {
        match slot.checked_sub(KERNEL_HALF).filter(|&i| i < HALF) {
            Some(i) => {
                self.0[i / 64] |= 1 << (i % 64);
                true
            }
            None => false,
        }
    }

    pub fn contains(&self, slot: usize) -> bool {
        slot.checked_sub(KERNEL_HALF)
            .filter(|&i| i < HALF)
            .is_some_and(|i| self.0[i / 64] >> (i % 64) & 1 == 1)
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }

    pub fn len(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }

    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        (KERNEL_HALF..PTRS).filter(|&s| self.contains(s))
    }

    pub fn intersection(&self, other: &SlotSet) -> SlotSet {
        let mut w = self.0;
        for (a, b) in w.iter_mut().zip(other.0) {
            *a &= b;
        }
        Self(w)
    }

    pub fn union(&self, other: &SlotSet) -> SlotSet {
        let mut w = self.0;
        for (a, b) in w.iter_mut().zip(other.0) {
            *a |= b;
        }
        Self(w)
    }

    /// The test-run argument words (args[1..1 + SLOT_WORDS]).
    pub const fn words(&self) -> [u64; SLOT_WORDS] {
        self.0
    }

    pub const fn from_words(w: [u64; SLOT_WORDS]) -> Self {
        Self(w)
    }
}

impl FromIterator<usize> for SlotSet {
    fn from_iter<I: IntoIterator<Item = usize>>(it: I) -> Self {
        let mut s = SlotSet::empty();
        for slot in it {
            s.insert(slot);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_set_encoding() {
        let s: SlotSet = [256, 300, 319, 320, 511, 100, 512].into_iter().collect();
        assert_eq!(
            s.words(),
            [1 | 1 << 44 | 1 << 63, 1, 0, 1 << 63],
            "bit k of word w is slot 256 + 64w + k; others ignored"
        );
        assert_eq!(s.len(), 5);
        assert!(s.contains(300) && !s.contains(301) && !s.contains(100));
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![256, 300, 319, 320, 511]);
        assert_eq!(SlotSet::from_words(s.words()), s);
        assert_eq!(SlotSet::all().len(), 256);
        assert!(SlotSet::empty().is_empty());
        let t: SlotSet = [300, 400].into_iter().collect();
        assert_eq!(s.intersection(&t).iter().collect::<Vec<_>>(), vec![300]);
        assert_eq!(s.union(&t).len(), 6);
    }
}
