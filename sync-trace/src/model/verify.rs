//! Walks of pgd_list become `verify` records, and PGD entries pointing to
//! another table than init_mm's become `mismatch` records (once per slot).

use sync_trace_common::{raw::PTRS, Layout};

use crate::{
    kernel::snapshot::Snapshot,
    record::{Hex, MismatchRecord, Record, SlotCount, Trigger, VerifyRecord},
};

pub struct Verifier {
    mismatch_reported: [bool; PTRS],
    /// (slot, missing, mismatched) of the last verify a sweep emitted.
    last_problems: Vec<(usize, u32, u32)>,
}

impl Default for Verifier {
    fn default() -> Self {
        Self {
            mismatch_reported: [false; PTRS],
            last_problems: Vec::new(),
        }
    }
}

impl Verifier {
    /// Turns a walk into a `verify` record (unless a sweep found nothing
    /// new) and a `mismatch` record per newly disagreeing slot.
    pub fn on_walk(
        &mut self,
        layout: &Layout,
        snap: &Snapshot,
        trigger: Trigger,
        out: &mut Vec<Record>,
    ) {
        let count = |slot: usize, pgds: u32| SlotCount {
            slot,
            addr: Hex(layout.slot_addr(slot)),
            region: layout.region_of_slot(slot),
            pgds,
        };
        // The slots this walk compared (a walk can be asked for a few only).
        let slots: Vec<usize> = snap
            .present_kernel_slots()
            .filter(|&s| snap.checked(s))
            .collect();
        let nonzero = |per_slot: fn(&Snapshot, usize) -> u32| -> Vec<SlotCount> {
            slots
                .iter()
                .filter(|&&s| per_slot(snap, s) > 0)
                .map(|&s| count(s, per_slot(snap, s)))
                .collect()
        };
        let complete = snap.complete();
        // Listed when the walk compared only some of init_mm's slots.
        let partial = slots.len() < snap.present_kernel_slots().count();
        let missing = nonzero(Snapshot::missing);
        let mismatched = nonzero(Snapshot::mismatch);
        let problems: Vec<(usize, u32, u32)> = slots
            .iter()
            .filter(|&&s| snap.missing(s) > 0 || snap.mismatch(s) > 0)
            .map(|&s| (s, snap.missing(s), snap.mismatch(s)))
            .collect();
        // A sweep that finds what the last one found (in the slots it
        // compared) says nothing new.
        let before: Vec<(usize, u32, u32)> = self
            .last_problems
            .iter()
            .copied()
            .filter(|p| snap.checked(p.0))
            .collect();
        let changed = problems != before;
        if trigger != Trigger::Sweep || changed {
            self.last_problems.retain(|p| !snap.checked(p.0));
            self.last_problems.extend(problems);
            self.last_problems.sort_unstable();
            out.push(Record::Verify(VerifyRecord {
                ts_ns: snap.raw.end_ns,
                start_ns: snap.raw.ts_ns,
                truncated: snap.truncated(),
                trigger,
                level: layout.level(),
                pgds_total: snap.raw.pgds,
                slots_checked: slots.len() as u32,
                slots: partial.then(|| slots.clone()),
                complete,
                ok: complete && missing.is_empty() && mismatched.is_empty(),
                missing,
                mismatched,
            }));
        }
        for &s in &slots {
            if snap.mismatch(s) > 0 && !self.mismatch_reported[s] {
                self.mismatch_reported[s] = true;
                out.push(Record::Mismatch(MismatchRecord {
                    ts_ns: snap.raw.end_ns,
                    level: layout.level(),
                    slot: s,
                    addr: Hex(layout.slot_addr(s)),
                    region: layout.region_of_slot(s),
                    pgds: snap.mismatch(s),
                    pgds_total: snap.raw.pgds,
                }));
            }
        }
    }
}
