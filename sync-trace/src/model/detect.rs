//! Population detection by effect: compares each scan of init_mm's
//! top-level table with the previous one. A kernel slot that went from none
//! to present is a sighting (timed and attributed by `evidence.rs` once the
//! acts that belong to it are in); one that went from present to none is a
//! `depopulate`. Walks of pgd_list go on to `verify.rs`.

use sync_trace_common::{
    raw::{KERNEL_HALF, PTRS, SLOT_WORDS},
    Layout,
};

use super::verify::Verifier;
use crate::{
    kernel::snapshot::Snapshot,
    record::{DepopulateRecord, Hex, Record, Trigger},
};

/// A slot a scan saw present after the previous one saw it empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sighting {
    pub slot: usize,
    /// The last scan that saw it empty.
    pub empty_ns: u64,
    /// The scan that saw it present.
    pub seen_ns: u64,
}

#[derive(Default)]
pub struct Detector {
    layout: Option<Layout>,
    present: Vec<bool>,
    /// Per slot, the last scan that saw it in its current state's opposite:
    /// empty for a present slot, present for an empty one.
    last_empty_ns: Vec<u64>,
    last_present_ns: Vec<u64>,
    verifier: Verifier,
}

impl Detector {
    pub fn layout(&self) -> Option<Layout> {
        self.layout
    }

    /// Takes a scan as the baseline: entries present then are not
    /// populations (every later PGD inherits them). Taken before the probes
    /// attach, so that what happens in between is compared with it.
    /// `kasan`: the kernel has KASAN (its shadow region exists).
    pub fn baseline(&mut self, snap: &Snapshot, kasan: bool) -> Layout {
        let layout = snap.layout().with_kasan(kasan);
        self.layout = Some(layout);
        self.present = (0..PTRS).map(|s| snap.present(s)).collect();
        self.last_empty_ns = vec![snap.ts_ns(); PTRS];
        self.last_present_ns = vec![snap.ts_ns(); PTRS];
        layout
    }

    /// Compares a scan with the previous one: returns the sightings and
    /// appends `depopulate` records.
    pub fn on_scan(&mut self, snap: &Snapshot, out: &mut Vec<Record>) -> Vec<Sighting> {
        let Some(layout) = self.layout else {
            self.baseline(snap, false);
            return Vec::new();
        };
        let mut seen = Vec::new();
        let first = layout.kernel_boundary().max(256);
        for slot in first..PTRS {
            let now = snap.present(slot);
            match (self.present[slot], now) {
                (false, true) => seen.push(Sighting {
                    slot,
                    empty_ns: self.last_empty_ns[slot],
                    seen_ns: snap.ts_ns(),
                }),
                (true, false) => out.push(Record::Depopulate(DepopulateRecord {
                    ts_ns: snap.ts_ns(),
                    present_ns: self.last_present_ns[slot],
                    level: layout.level(),
                    slot,
                    addr: Hex(layout.slot_addr(slot)),
                    region: layout.region_of_slot(slot),
                })),
                _ => {}
            }
            self.present[slot] = now;
            if now {
                self.last_present_ns[slot] = snap.ts_ns();
            } else {
                self.last_empty_ns[slot] = snap.ts_ns();
            }
        }
        seen
    }

    /// What the sweep in the kernel says: at `ts_ns` the present kernel-half
    /// slots were `bits` (bit k of word w: slot 256 + 64w + k). When that is
    /// what the last scan saw, every slot is known to have kept its state
    /// until `ts_ns`, as a scan then would have shown; otherwise (a scan saw
    /// a state the timer did not) nothing is learnt. Returns whether it was
    /// taken.
    pub fn quiet_until(&mut self, bits: &[u64; SLOT_WORDS], ts_ns: u64) -> bool {
        let Some(layout) = self.layout else {
            return false;
        };
        let first = layout.kernel_boundary().max(KERNEL_HALF);
        let bit = |slot: usize| {
            let k = slot - KERNEL_HALF;
            (bits[k / 64] >> (k % 64)) & 1 == 1
        };
        if (first..PTRS).any(|s| self.present[s] != bit(s)) {
            return false;
        }
        for s in first..PTRS {
            let last = if self.present[s] {
                &mut self.last_present_ns[s]
            } else {
                &mut self.last_empty_ns[s]
            };
            *last = (*last).max(ts_ns);
        }
        true
    }

    /// Turns a walk into `verify` and `mismatch` records.
    pub fn verify(&mut self, snap: &Snapshot, trigger: Trigger, out: &mut Vec<Record>) {
        if let (Some(layout), true) = (self.layout, snap.walked() || snap.incomplete()) {
            self.verifier.on_walk(&layout, snap, trigger, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use sync_trace_common::{raw, Region};

    use super::*;

    const BOOT: [usize; 4] = [273, 402, 468, 511];

    /// The kernel sweep's bits for `slots`.
    fn bits(slots: &[usize]) -> [u64; SLOT_WORDS] {
        let mut b = [0; SLOT_WORDS];
        for &s in slots {
            b[(s - KERNEL_HALF) / 64] |= 1 << ((s - KERNEL_HALF) % 64);
        }
        b
    }

    #[test]
    fn a_quiet_sweep_moves_the_empty_time_only_when_it_saw_the_same_table() {
        let mut d = Detector::default();
        d.baseline(&Snapshot::test(1_000, &BOOT), false);
        // The timer saw another table: nothing learnt.
        assert!(!d.quiet_until(&bits(&[273, 402, 468, 469, 511]), 5_000));
        // The same table at 8_000: slot 469 was still empty then.
        assert!(d.quiet_until(&bits(&BOOT), 8_000));
        // An older reading never moves it back.
        assert!(d.quiet_until(&bits(&BOOT), 2_000));
        let mut out = Vec::new();
        let seen = d.on_scan(&Snapshot::test(9_000, &[273, 402, 468, 469, 511]), &mut out);
        assert_eq!(
            seen,
            vec![Sighting {
                slot: 469,
                empty_ns: 8_000,
                seen_ns: 9_000
            }]
        );
    }

    #[test]
    fn a_new_entry_is_a_sighting_between_the_two_scans() {
        let mut d = Detector::default();
        d.baseline(&Snapshot::test(1_000, &BOOT), false);
        let mut out = Vec::new();
        assert!(d
            .on_scan(&Snapshot::test(2_000, &BOOT), &mut out)
            .is_empty());
        let seen = d.on_scan(&Snapshot::test(3_000, &[273, 402, 468, 469, 511]), &mut out);
        assert_eq!(
            seen,
            vec![Sighting {
                slot: 469,
                empty_ns: 2_000,
                seen_ns: 3_000
            }]
        );
        // Seen once only.
        assert!(d
            .on_scan(&Snapshot::test(4_000, &[273, 402, 468, 469, 511]), &mut out)
            .is_empty());
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn a_cleared_entry_is_a_depopulate_and_its_return_a_new_sighting() {
        let mut d = Detector::default();
        d.baseline(&Snapshot::test(1_000, &BOOT), false);
        let mut out = Vec::new();
        d.on_scan(&Snapshot::test(2_000, &[273, 402, 511]), &mut out);
        let Some(Record::Depopulate(r)) = out.first() else {
            panic!("{out:?}")
        };
        assert_eq!(
            (r.slot, r.region, r.present_ns, r.ts_ns),
            (468, Region::Vmemmap, 1_000, 2_000)
        );
        let seen = d.on_scan(&Snapshot::test(3_000, &BOOT), &mut out);
        assert_eq!(seen.len(), 1);
        assert_eq!((seen[0].slot, seen[0].empty_ns), (468, 2_000));
    }

    #[test]
    fn slots_below_the_kernel_boundary_are_ignored() {
        let mut d = Detector::default();
        d.baseline(&Snapshot::test(1_000, &BOOT), false);
        let mut out = Vec::new();
        let seen = d.on_scan(
            &Snapshot::test(2_000, &[100, 272, 273, 402, 468, 511]),
            &mut out,
        );
        assert!(seen.is_empty() && out.is_empty(), "{seen:?} {out:?}");
    }

    #[test]
    fn walks_become_verify_and_mismatch_records() {
        let mut d = Detector::default();
        d.baseline(&Snapshot::test(1_000, &BOOT), false);
        let mut s = Snapshot::test(2_000, &BOOT);
        s.raw.missing[468 - 256] = 3;
        s.raw.mismatch[273 - 256] = 1;
        let mut out = Vec::new();
        d.verify(&s, Trigger::Sweep, &mut out);
        let Record::Verify(v) = &out[0] else {
            panic!("{out:?}")
        };
        assert!(!v.ok && v.complete);
        assert_eq!(v.missing_in(468), 3);
        assert_eq!(v.slots_checked, 4);
        assert!(matches!(&out[1], Record::Mismatch(m) if m.slot == 273 && m.pgds == 1));
        // The same problems on the next sweep: nothing new.
        out.clear();
        d.verify(&s, Trigger::Sweep, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn a_walk_that_ended_on_a_fault_counts_nothing() {
        let mut d = Detector::default();
        d.baseline(&Snapshot::test(1_000, &BOOT), false);
        let mut s = Snapshot::test(2_000, &BOOT);
        s.raw.missing[468 - 256] = 3;
        s.raw.mismatch[273 - 256] = 1;
        s.raw.status |= raw::SCAN_FAULT;
        let mut out = Vec::new();
        d.verify(&s, Trigger::Deadline, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        let Record::Verify(v) = &out[0] else {
            panic!("{out:?}")
        };
        assert!(!v.complete && !v.ok && v.missing.is_empty() && v.mismatched.is_empty());
    }
}
