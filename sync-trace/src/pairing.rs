//! Pairs each population with the first sync that covers its slot, and
//! flags populations that got no sync within the grace window. Driven only
//! by records and their timestamps, so `run` and `replay` share it.

use std::collections::VecDeque;

use crate::{
    record::{
        LatencyKind, PairedRecord, PopulateRecord, Record, Source, SyncRecord, UnsyncedRecord,
        VerifyRecord,
    },
    summary::Summary,
};

/// Recent syncs kept for populations seen only after their sync (by effect).
const MAX_SYNCS: usize = 4096;
/// Populations waiting for a sync; beyond this the oldest is dropped.
const MAX_PENDING: usize = 1024;

#[derive(Debug)]
struct Pending {
    pop: PopulateRecord,
    /// Latency is measured from here: the traced population, or the last
    /// scan that saw the slot empty.
    from_ns: u64,
    kind: LatencyKind,
    deadline_ns: u64,
    reported: bool,
}

pub struct Pairing {
    grace_ns: u64,
    syncs: VecDeque<SyncRecord>,
    pending: Vec<Pending>,
    last_verify: Option<VerifyRecord>,
}

impl Pairing {
    pub fn new(grace_ns: u64) -> Self {
        Self {
            grace_ns,
            syncs: VecDeque::with_capacity(64),
            pending: Vec::new(),
            last_verify: None,
        }
    }

    fn paired(p: &Pending, s: &SyncRecord, out: &mut Vec<Record>, summary: &mut Summary) {
        let latency_ns = s.end_ns.saturating_sub(p.from_ns);
        summary.count_paired(
            match p.kind {
                LatencyKind::Exact => "exact",
                LatencyKind::UpperBound => "upper_bound",
            },
            latency_ns,
        );
        out.push(Record::Paired(PairedRecord {
            ts_ns: s.end_ns,
            cpu: s.task.cpu,
            pid: s.task.pid,
            comm: s.task.comm.clone(),
            pop: p.pop.pop.clone(),
            populated_ns: p.pop.ts_ns,
            latency_ns,
            latency_kind: p.kind,
            sync_function: s.function,
            sync_start: s.start,
            sync_end: s.end,
            late: p.reported,
        }));
    }

    /// A sync covers a pending population when its slot is in range and it
    /// ended after the population could have happened.
    fn covers(s: &SyncRecord, p: &Pending) -> bool {
        s.covers(p.pop.pop.slot) && s.end_ns >= p.from_ns
    }

    pub fn on_populate(
        &mut self,
        pop: &PopulateRecord,
        out: &mut Vec<Record>,
        summary: &mut Summary,
    ) {
        summary.count_population(pop.pop.region.name(), pop.pop.source.name());
        let (from_ns, kind) = match pop.pop.source {
            Source::Helper => (pop.ts_ns, LatencyKind::Exact),
            Source::Effect => (pop.not_before_ns, LatencyKind::UpperBound),
        };
        let p = Pending {
            pop: pop.clone(),
            from_ns,
            kind,
            deadline_ns: pop.ts_ns.saturating_add(self.grace_ns),
            reported: false,
        };
        let first = self
            .syncs
            .iter()
            .filter(|s| Self::covers(s, &p))
            .min_by_key(|s| s.end_ns);
        match first {
            Some(s) => Self::paired(&p, s, out, summary),
            None => {
                if self.pending.len() == MAX_PENDING {
                    self.pending.remove(0);
                }
                self.pending.push(p);
            }
        }
    }

    pub fn on_sync(&mut self, s: &SyncRecord, out: &mut Vec<Record>, summary: &mut Summary) {
        let mut i = 0;
        while i < self.pending.len() {
            if Self::covers(s, &self.pending[i]) {
                let p = self.pending.remove(i);
                Self::paired(&p, s, out, summary);
            } else {
                i += 1;
            }
        }
        if self.syncs.len() == MAX_SYNCS {
            self.syncs.pop_front();
        }
        let mut kept = s.clone();
        kept.stack = Vec::new(); // not needed for pairing
        self.syncs.push_back(kept);
    }

    pub fn on_verify(&mut self, v: &VerifyRecord) {
        self.last_verify = Some(v.clone());
    }

    /// The earliest grace deadline still to report, if any.
    pub fn next_deadline(&self) -> Option<u64> {
        self.pending
            .iter()
            .filter(|p| !p.reported)
            .map(|p| p.deadline_ns)
            .min()
    }

    /// Reports every population whose grace window closed by `now_ns`;
    /// PGD counts come from the latest verification. Returns how many.
    pub fn tick(&mut self, now_ns: u64, out: &mut Vec<Record>, summary: &mut Summary) -> usize {
        let mut n = 0;
        for p in self
            .pending
            .iter_mut()
            .filter(|p| !p.reported && p.deadline_ns <= now_ns)
        {
            p.reported = true;
            n += 1;
            summary.unsynced += 1;
            let (missing, total) = self
                .last_verify
                .as_ref()
                .map_or((0, 0), |v| (v.missing_in(p.pop.pop.slot), v.pgds_total));
            out.push(Record::Unsynced(UnsyncedRecord {
                ts_ns: now_ns,
                cpu: p.pop.cpu,
                pid: p.pop.pid,
                comm: p.pop.comm.clone(),
                pop: p.pop.pop.clone(),
                populated_ns: p.pop.ts_ns,
                grace_ns: self.grace_ns,
                pgds_missing: missing,
                pgds_total: total,
                stack: p.pop.stack.clone(),
            }));
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use sync_trace_common::{Level, Method, Region, Target};

    use super::*;
    use crate::{
        caller::Caller,
        record::{Hex, Population, SlotCount, Task, Trigger},
    };

    const MS: u64 = 1_000_000;

    fn pop(ts: u64, not_before: u64, source: Source) -> PopulateRecord {
        PopulateRecord {
            ts_ns: ts,
            not_before_ns: not_before,
            cpu: None,
            pid: None,
            comm: None,
            pop: Population {
                level: Level::P4d,
                slot: 469,
                addr: Hex(0xffffea8000000000),
                region: Region::Vmemmap,
                source,
            },
            stack: vec![],
        }
    }

    fn sync(start_ns: u64, end_ns: u64, first: usize, last: usize) -> SyncRecord {
        SyncRecord {
            ts_ns: start_ns,
            end_ns,
            duration_ns: end_ns - start_ns,
            task: Task::default(),
            function: Target::SyncGlobalPgds,
            start: Hex(0),
            end: Hex(0),
            slot_first: first,
            slot_last: last,
            helper: false,
            caller: Caller::Other,
            method: Method::Kprobe,
            entry_seen: true,
            stack: vec![],
        }
    }

    fn verify(ts: u64, missing: u32) -> VerifyRecord {
        VerifyRecord {
            ts_ns: ts,
            trigger: Trigger::Deadline,
            level: Level::P4d,
            pgds_total: 12,
            slots_checked: 5,
            complete: true,
            ok: missing == 0,
            missing: vec![SlotCount {
                slot: 469,
                addr: Hex(0),
                region: Region::Vmemmap,
                pgds: missing,
            }],
            mismatched: vec![],
        }
    }

    #[test]
    fn helper_population_pairs_with_the_next_covering_sync() {
        let (mut p, mut out, mut sum) = (Pairing::new(100 * MS), vec![], Summary::default());
        p.on_populate(&pop(10 * MS, 0, Source::Helper), &mut out, &mut sum);
        p.on_sync(&sync(11 * MS, 12 * MS, 300, 310), &mut out, &mut sum); // other slots
        assert!(out.is_empty());
        p.on_sync(&sync(11 * MS, 13 * MS, 469, 469), &mut out, &mut sum);
        let Record::Paired(r) = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(
            (r.latency_ns, r.latency_kind, r.late),
            (3 * MS, LatencyKind::Exact, false)
        );
        assert_eq!(p.next_deadline(), None);
    }

    #[test]
    fn effect_population_pairs_with_an_earlier_sync_as_upper_bound() {
        let (mut p, mut out, mut sum) = (Pairing::new(100 * MS), vec![], Summary::default());
        // Too old: ended before the last empty scan.
        p.on_sync(&sync(MS, 2 * MS, 469, 469), &mut out, &mut sum);
        p.on_sync(&sync(6 * MS, 7 * MS, 460, 470), &mut out, &mut sum);
        p.on_populate(&pop(20 * MS, 5 * MS, Source::Effect), &mut out, &mut sum);
        let Record::Paired(r) = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(
            (r.latency_ns, r.latency_kind),
            (2 * MS, LatencyKind::UpperBound)
        );
    }

    #[test]
    fn no_sync_within_grace_is_unsynced_then_late_pairing_follows() {
        let (mut p, mut out, mut sum) = (Pairing::new(100 * MS), vec![], Summary::default());
        p.on_populate(&pop(10 * MS, 0, Source::Helper), &mut out, &mut sum);
        assert_eq!(p.next_deadline(), Some(110 * MS));
        assert_eq!(p.tick(109 * MS, &mut out, &mut sum), 0);
        p.on_verify(&verify(110 * MS, 7));
        assert_eq!(p.tick(110 * MS, &mut out, &mut sum), 1);
        let Record::Unsynced(u) = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(
            (u.pgds_missing, u.pgds_total, u.populated_ns),
            (7, 12, 10 * MS)
        );
        // Reported once.
        assert_eq!(p.tick(500 * MS, &mut out, &mut sum), 0);
        p.on_sync(&sync(309 * MS, 310 * MS, 469, 469), &mut out, &mut sum);
        let Record::Paired(r) = &out[1] else {
            panic!("{out:?}")
        };
        assert_eq!((r.latency_ns, r.late), (300 * MS, true));
        assert_eq!((sum.unsynced, sum.paired), (1, 1));
    }
}
