//! The model behind `run` and `replay`: counts, population detection,
//! pairing and unsynced flags, fed with records in the order they were
//! observed.
//!
//! Live, a population a scan sees is held until the acts that belong to it
//! are in: until a sync that covers it has ended, or until a walk starts
//! after its grace window. Only then is its `populate` record written, so a
//! helper sync that the kernel issued after the scan (the scan can run
//! between the write and the call) still times it. `replay` reads the
//! `populate` records as they were written, in the same order relative to
//! the syncs and walks, and derives the same verdicts.

use sync_trace_common::{Layout, Target};

pub mod detect;
pub mod evidence;
pub mod pairing;
pub mod verify;

use self::{
    detect::{Detector, Sighting},
    evidence::{Act, ActKind, Evidence},
    pairing::Pairing,
};
use crate::{
    kernel::snapshot::Snapshot,
    record::{
        summary::{CallCounts, Received},
        CallRecord, Hex, LatencyKind, PopulateRecord, Population, Record, Stack, Summary,
        SyncRecord, Task, Trigger,
    },
};

pub struct Model {
    summary: Summary,
    /// Counted here per call, folded into `summary` at the end.
    counts: CallCounts,
    detector: Detector,
    evidence: Evidence,
    pairing: Pairing,
    /// Sightings whose population is not written yet.
    held: Vec<Sighting>,
}

impl Model {
    pub fn new(grace_ns: u64) -> Self {
        Self {
            summary: Summary::default(),
            counts: CallCounts::default(),
            detector: Detector::default(),
            evidence: Evidence::default(),
            pairing: Pairing::new(grace_ns),
            held: Vec::new(),
        }
    }

    /// A kernel record read from the ring buffer.
    pub fn count_received(&mut self, kind: Received) {
        self.counts.count_received(kind);
    }

    pub fn count_undecodable(&mut self) {
        self.summary.undecodable += 1;
    }

    pub fn layout(&self) -> Option<Layout> {
        self.detector.layout()
    }

    /// Takes the scan made before the probes attached as the baseline.
    pub fn baseline(&mut self, snap: &Snapshot, kasan: bool) -> Layout {
        self.detector.baseline(snap, kasan)
    }

    /// The sweep in the kernel saw the present kernel-half slots `bits` at
    /// `ts_ns` ([`Detector::quiet_until`]).
    pub fn sweep_quiet(
        &mut self,
        bits: &[u64; sync_trace_common::raw::SLOT_WORDS],
        ts_ns: u64,
    ) -> bool {
        self.detector.quiet_until(bits, ts_ns)
    }

    /// Applies one observed record (from the kernel, the scanner, or a
    /// recording) and appends what follows from it. Derived records
    /// (`paired`, `unsynced`, `summary`) are ignored: the model makes its own.
    pub fn observe(&mut self, rec: &Record, out: &mut Vec<Record>) {
        match rec {
            Record::Sync(s) => {
                self.counts
                    .count_sync(s.function, s.caller, s.entry_seen.then_some(s.duration_ns));
                self.note_sync(s);
                self.pairing.on_sync(s, out, &mut self.summary);
                self.decide(out, None, false);
            }
            Record::Call(c) => {
                self.summary.count_call(c.function.symbol(), c.calls());
                self.note_call(c);
            }
            Record::Populate(p) => self.pairing.on_populate(p, out, &mut self.summary),
            Record::Depopulate(_) => self.summary.depopulations += 1,
            Record::Verify(v) => {
                self.summary.verifications += 1;
                self.pairing.on_walk(v, out, &mut self.summary);
            }
            Record::Mismatch(_) => self.summary.mismatches += 1,
            Record::Lost(l) => {
                self.summary.lost.insert(l.what.clone(), l.total);
                self.pairing.on_lost(l);
            }
            Record::Layout(_)
            | Record::Paired(_)
            | Record::Unsynced(_)
            | Record::Detached(_)
            | Record::Summary(_) => {}
        }
    }

    fn note_sync(&mut self, s: &SyncRecord) {
        let (entry, exit, range) = (s.ts_ns, s.end_ns, [s.start.0, s.end.0]);
        self.note_act(s.function, entry, exit, range, Some(&s.task), &s.stack);
    }

    fn note_call(&mut self, c: &CallRecord) {
        // A batch counts calls that each found their top-level entries
        // present at entry: none can be a population, none is evidence.
        if c.calls.is_some() {
            return;
        }
        let range = [c.addr.0, c.end.map_or(c.addr.0, |e| e.0)];
        self.note_act(
            c.function,
            c.ts_ns,
            c.end_ns,
            range,
            Some(&c.task),
            &c.stack,
        );
    }

    /// The entry of a traced call, as soon as it is read: a call still
    /// running is evidence too. A helper-shaped sync's entry times the
    /// population before the sync's exit (and the inner call's) is read.
    pub fn note_entry(&mut self, target: Target, ts_ns: u64, args: [u64; 3]) {
        let Some(l) = self.layout() else { return };
        let (start, end) = target.range_in(&args, &l);
        self.note_act(
            target,
            ts_ns,
            u64::MAX,
            [start, end],
            None,
            &Stack::default(),
        );
    }

    /// Keeps a traced call as evidence for the slots it names, ended at
    /// `exit_ns` or still running (`u64::MAX`): a helper-shaped sync
    /// (`start == end`; other syncs name no population), a populate
    /// function (its address), `init_memory_mapping()` (its physical
    /// range, in the direct map), or `__populate_section_memmap()` (its
    /// memory map's virtual range, `[start, end)`).
    fn note_act(
        &mut self,
        target: Target,
        entry_ns: u64,
        exit_ns: u64,
        [start, end]: [u64; 2],
        task: Option<&Task>,
        stack: &Stack,
    ) {
        // A sync over a range names no population (the common case: checked first).
        if target.is_sync() && start != end {
            return;
        }
        let Some(l) = self.layout() else { return };
        let (kind, first, last) = match target {
            _ if target.is_sync() => (ActKind::HelperSync, l.slot(start), l.slot(start)),
            Target::InitMemoryMapping => {
                let va = |phys: u64| l.page_offset_base.wrapping_add(phys);
                let (f, t) = l.slots_of(va(start), va(end.max(start + 1) - 1));
                (ActKind::Mapping, f, t)
            }
            Target::PopulateSectionMemmap => {
                let (f, t) = l.slots_of(start, end.max(start + 1) - 1);
                (ActKind::PopulateCall, f, t)
            }
            _ => (ActKind::PopulateCall, l.slot(start), l.slot(start)),
        };
        self.evidence.add(
            first,
            last,
            Act {
                kind,
                entry_ns,
                exit_ns,
                task: task.cloned(),
                stack: stack.clone(),
            },
        );
    }

    /// Feeds a live scan: new and cleared entries, the populations now
    /// decided, then the walk's verification and the verdicts it allows.
    pub fn on_scan(&mut self, snap: &Snapshot, trigger: Trigger, out: &mut Vec<Record>) {
        let start = out.len();
        // A walk that judges a closed window is reported as such, even when
        // a sweep ran it and it found nothing new.
        let due = self.next_deadline().is_some_and(|d| d <= snap.ts_ns());
        let trigger = if due && snap.walked() && trigger == Trigger::Sweep {
            Trigger::Deadline
        } else {
            trigger
        };
        let seen = self.detector.on_scan(snap, out);
        self.held.extend(seen);
        let walk_start = snap.walked().then_some(snap.ts_ns());
        self.decide(out, walk_start, false);
        let verify_at = out.len();
        self.detector.verify(snap, trigger, out);
        let observed: Vec<Record> = out[start..]
            .iter()
            .enumerate()
            .filter(|(i, r)| start + i >= verify_at || matches!(r, Record::Depopulate(_)))
            .map(|(_, r)| r.clone())
            .collect();
        for r in &observed {
            self.observe(r, out);
        }
    }

    /// Writes the populations whose evidence is complete: a covering sync
    /// ended after they can have happened, or a walk started after their
    /// grace window (`walk_start`), or the run ends (`all`).
    fn decide(&mut self, out: &mut Vec<Record>, walk_start: Option<u64>, all: bool) {
        if self.held.is_empty() {
            return;
        }
        let Some(layout) = self.layout() else { return };
        let grace = self.pairing.grace_ns();
        let mut i = 0;
        while i < self.held.len() {
            let h = self.held[i];
            let a = self.evidence.attribute(h.slot, h.empty_ns, h.seen_ns);
            let from = match a.latency {
                LatencyKind::Exact => a.ts_ns,
                LatencyKind::UpperBound => a.not_before_ns,
            };
            let due = walk_start.is_some_and(|w| h.seen_ns.saturating_add(grace) <= w);
            if !(all || due || self.pairing.first_covering(h.slot, from).is_some()) {
                i += 1;
                continue;
            }
            self.held.remove(i);
            let rec = PopulateRecord {
                ts_ns: a.ts_ns,
                not_before_ns: a.not_before_ns,
                seen_ns: h.seen_ns,
                empty_ns: h.empty_ns,
                cpu: a.task.as_ref().map(|t| t.cpu),
                pid: a.task.as_ref().map(|t| t.pid),
                comm: a.task.as_ref().map(|t| t.comm.clone()),
                pop: Population {
                    level: layout.level(),
                    slot: h.slot,
                    addr: Hex(layout.slot_addr(h.slot)),
                    region: layout.region_of_slot(h.slot),
                    source: a.source,
                },
                stack: a.stack,
            };
            self.evidence.forget(h.slot, h.seen_ns);
            let rec = Record::Populate(rec);
            out.push(rec.clone());
            self.observe(&rec, out);
        }
    }

    /// The slots a walk starting at `now_ns` can judge: those of the
    /// populations (written or held) whose grace window has closed.
    pub fn due_slots(&self, now_ns: u64) -> Vec<usize> {
        let grace = self.pairing.grace_ns();
        let held = self
            .held
            .iter()
            .filter(|h| h.seen_ns.saturating_add(grace) <= now_ns)
            .map(|h| h.slot);
        let mut v: Vec<usize> = self.pairing.due_slots(now_ns).chain(held).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The earliest time a walk can judge something: a grace deadline.
    pub fn next_deadline(&self) -> Option<u64> {
        let grace = self.pairing.grace_ns();
        let held = self.held.iter().map(|h| h.seen_ns.saturating_add(grace));
        self.pairing.next_deadline().into_iter().chain(held).min()
    }

    /// Whether a sync read now can decide a verdict: a population is held
    /// or waits for its sync. (A sync read while none does can still pair
    /// with a population written later; its losses are read by then.)
    pub fn awaits_sync(&self) -> bool {
        !self.held.is_empty() || self.pairing.pending() > 0
    }

    /// Ends the run: writes what is still held, then the `summary` record.
    pub fn finish(&mut self, out: &mut Vec<Record>) {
        self.decide(out, None, true);
        self.counts.fold_into(&mut self.summary);
        self.pairing.fold_drops(&mut self.summary);
        let mut s = self.summary.clone();
        s.pending = self.pairing.pending() as u64;
        s.finish();
        out.push(Record::Summary(Box::new(s)));
    }
}

#[cfg(test)]
mod tests;
