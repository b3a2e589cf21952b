//! Walks of pgd_list become `verify` records, and PGD entries pointing to
//! another table than init_mm's become `mismatch` records (once per slot).

use sync_trace_common::{raw::PTRS, Layout};

use crate::{
    record::{Hex, MismatchRecord, Record, SlotCount, Trigger, VerifyRecord},
    snapshot::Snapshot,
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
        let slots: Vec<usize> = snap.present_kernel_slots().collect();
        let complete = snap.walked() && !snap.incomplete();
        // A walk that ended on a fault counts nothing: the PGDs it reached
        // may not be the list's. One cut at --max-pgds counts those it reached.
        let usable = complete || snap.truncated();
        let nonzero = |per_slot: fn(&Snapshot, usize) -> u32| -> Vec<SlotCount> {
            slots
                .iter()
                .filter(|_| usable)
                .filter(|&&s| per_slot(snap, s) > 0)
                .map(|&s| count(s, per_slot(snap, s)))
                .collect()
        };
        let missing = nonzero(Snapshot::missing);
        let mismatched = nonzero(Snapshot::mismatch);
        let problems: Vec<(usize, u32, u32)> = slots
            .iter()
            .filter(|_| usable)
            .filter(|&&s| snap.missing(s) + snap.mismatch(s) > 0)
            .map(|&s| (s, snap.missing(s), snap.mismatch(s)))
            .collect();
        // A sweep that finds what the last one found says nothing new.
        let changed = problems != self.last_problems;
        if trigger != Trigger::Sweep || changed {
            self.last_problems = problems;
            out.push(Record::Verify(VerifyRecord {
                ts_ns: snap.raw.end_ns,
                start_ns: snap.raw.ts_ns,
                truncated: snap.truncated(),
                trigger,
                level: layout.level(),
                pgds_total: snap.raw.pgds,
                slots_checked: slots.len() as u32,
                slots: None,
                complete,
                ok: complete && missing.is_empty() && mismatched.is_empty(),
                missing,
                mismatched,
            }));
        }
        for &s in slots.iter().filter(|_| usable) {
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
