//! Pairs each population with the first sync that covers its slot, and
//! flags a population that got none within the grace window. Driven only by
//! records, so `run` and `replay` share it:
//! - `paired` when a covering sync ended after the population could have
//!   happened;
//! - `unsynced` only from a walk of pgd_list that started after the window
//!   closed (the daemon drains the ring buffer before it walks, so every
//!   sync that ended before the walk is known), with that walk's counts;
//! - either is `uncertain` when kernel records were lost in its window.

use std::collections::VecDeque;

use compact_str::CompactString;
use sync_trace_common::Target;

use crate::record::{
    Hex, LatencyKind, LostRecord, PairedRecord, PopulateRecord, Record, Source, Summary,
    SyncRecord, UnsyncedRecord, VerifyRecord,
};

/// Recent syncs kept for populations seen after their sync.
const MAX_SYNCS: usize = 4096;
/// The summary's name of their drops.
const HISTORY: &str = "sync_history";
/// A population is seen at most one sweep after it happened, so syncs that
/// ended this long before the newest one cannot pair with a future one.
const SYNC_HISTORY_NS: u64 = 10_000_000_000;
/// Populations waiting for a sync, or reported unsynced and waiting for a late one.
const MAX_UNPAIRED: usize = 1024;
/// Loss windows kept to qualify verdicts.
const MAX_LOSSES: usize = 256;

/// A population not yet paired with a sync: waiting for one, or reported
/// `unsynced` and waiting for a late one. (Not the tracer's `InFlight`,
/// a call whose exit is not read yet.)
#[derive(Debug)]
struct Unpaired {
    pop: PopulateRecord,
    /// Latency is measured from here.
    from_ns: u64,
    kind: LatencyKind,
    /// A walk that starts at or after this judges an unsynced population.
    deadline_ns: u64,
    reported: bool,
}

impl Unpaired {
    fn new(pop: &PopulateRecord, grace_ns: u64) -> Self {
        // Only a helper sync times a population exactly; otherwise the
        // latency runs from the earliest time it can have happened.
        let (from_ns, kind) = match pop.pop.source {
            Source::Helper => (pop.ts_ns, LatencyKind::Exact),
            Source::Call | Source::Effect => (pop.not_before_ns, LatencyKind::UpperBound),
        };
        Self {
            pop: pop.clone(),
            from_ns,
            kind,
            deadline_ns: pop.seen().saturating_add(grace_ns),
            reported: false,
        }
    }
}

/// What pairing needs of a sync kept for populations seen after it: what
/// a `paired` record takes from it and the slots it covers (not the whole
/// record, its stack and times: one is kept per sync).
#[derive(Clone, Debug)]
pub struct KnownSync {
    pub end_ns: u64,
    pub start: Hex,
    pub end: Hex,
    slot_first: usize,
    slot_last: usize,
    pub function: Target,
    pub cpu: u32,
    pub pid: u32,
    pub comm: CompactString,
}

impl KnownSync {
    fn of(s: &SyncRecord) -> Self {
        Self {
            end_ns: s.end_ns,
            start: s.start,
            end: s.end,
            slot_first: s.slot_first,
            slot_last: s.slot_last,
            function: s.function,
            cpu: s.task.cpu,
            pid: s.task.pid,
            comm: s.task.comm.clone(),
        }
    }

    /// [`SyncRecord::covers`].
    fn covers(&self, slot: usize) -> bool {
        self.start.0 <= self.end.0 && (self.slot_first..=self.slot_last).contains(&slot)
    }
}

pub struct Pairing {
    grace_ns: u64,
    syncs: VecDeque<KnownSync>,
    /// Syncs dropped from `syncs` (full) beyond the first, not yet in the
    /// summary: counted here, a map lookup per sync was a tenth of the model's time.
    history_drops: u64,
    unpaired: Vec<Unpaired>,
    /// Loss windows `(since_ns, ts_ns]` of ring-buffer records.
    losses: VecDeque<(u64, u64)>,
}

impl Pairing {
    pub fn new(grace_ns: u64) -> Self {
        Self {
            grace_ns,
            syncs: VecDeque::with_capacity(64),
            history_drops: 0,
            unpaired: Vec::new(),
            losses: VecDeque::new(),
        }
    }

    pub fn grace_ns(&self) -> u64 {
        self.grace_ns
    }

    /// Whether kernel records were lost between `from_ns` and `to_ns`.
    fn lost_within(&self, from_ns: u64, to_ns: u64) -> bool {
        self.losses
            .iter()
            .any(|&(since, ts)| ts == 0 || (since < to_ns && ts > from_ns))
    }

    fn paired(&self, p: &Unpaired, s: &KnownSync, out: &mut Vec<Record>, summary: &mut Summary) {
        let latency_ns = s.end_ns.saturating_sub(p.from_ns);
        let uncertain = self.lost_within(p.pop.empty(), s.end_ns);
        summary.count_paired(p.kind, latency_ns, uncertain);
        out.push(Record::Paired(PairedRecord {
            ts_ns: s.end_ns,
            cpu: s.cpu,
            pid: s.pid,
            comm: s.comm.clone(),
            pop: p.pop.pop.clone(),
            populated_ns: p.from_ns,
            latency_ns,
            latency_kind: p.kind,
            sync_function: s.function,
            sync_start: s.start,
            sync_end: s.end,
            late: p.reported,
            uncertain,
        }));
    }

    /// The first-ending known sync that covers `slot` and ended at or after `from_ns`.
    pub fn first_covering(&self, slot: usize, from_ns: u64) -> Option<&KnownSync> {
        self.syncs
            .iter()
            .filter(|s| s.covers(slot) && s.end_ns >= from_ns)
            .min_by_key(|s| s.end_ns)
    }

    pub fn on_populate(
        &mut self,
        pop: &PopulateRecord,
        out: &mut Vec<Record>,
        summary: &mut Summary,
    ) {
        summary.count_population(pop.pop.region.name(), pop.pop.source.name());
        let p = Unpaired::new(pop, self.grace_ns);
        if let Some(s) = self.first_covering(pop.pop.slot, p.from_ns) {
            let s = s.clone();
            self.paired(&p, &s, out, summary);
            return;
        }
        if self.unpaired.len() == MAX_UNPAIRED {
            self.unpaired.remove(0);
            summary.count_dropped("pending_populations");
        }
        self.unpaired.push(p);
    }

    /// Populations waiting for a covering sync or for a walk that judges them.
    pub fn pending(&self) -> usize {
        self.unpaired.len()
    }

    pub fn on_sync(&mut self, s: &SyncRecord, out: &mut Vec<Record>, summary: &mut Summary) {
        let known = KnownSync::of(s);
        let mut i = 0;
        while i < self.unpaired.len() {
            let p = &self.unpaired[i];
            if known.covers(p.pop.pop.slot) && known.end_ns >= p.from_ns {
                let p = self.unpaired.remove(i);
                self.paired(&p, &known, out, summary);
            } else {
                i += 1;
            }
        }
        while self
            .syncs
            .front()
            .is_some_and(|f| f.end_ns.saturating_add(SYNC_HISTORY_NS) < s.end_ns)
        {
            self.syncs.pop_front();
        }
        if self.syncs.len() == MAX_SYNCS {
            self.syncs.pop_front();
            if self.history_drops == 0 && !summary.dropped.contains_key(HISTORY) {
                // The first one is logged.
                summary.count_dropped(HISTORY);
            } else {
                self.history_drops += 1;
            }
        }
        self.syncs.push_back(known);
    }

    /// Adds the drops counted here into `summary`.
    pub fn fold_drops(&mut self, summary: &mut Summary) {
        summary.count_dropped_n(HISTORY, std::mem::take(&mut self.history_drops));
    }

    pub fn on_lost(&mut self, l: &LostRecord) {
        if l.what != "events" {
            return;
        }
        if self.losses.len() == MAX_LOSSES {
            // Merge the two oldest windows: a wider window only makes more
            // verdicts uncertain, never fewer.
            let (a, _) = self.losses.pop_front().unwrap_or_default();
            if let Some(next) = self.losses.front_mut() {
                next.0 = next.0.min(a);
            }
        }
        self.losses.push_back((l.since_ns, l.ts_ns));
    }

    /// Slots of the populations whose window closed by `now_ns`, unjudged.
    pub fn due_slots(&self, now_ns: u64) -> impl Iterator<Item = usize> + '_ {
        self.unpaired
            .iter()
            .filter(move |p| !p.reported && p.deadline_ns <= now_ns)
            .map(|p| p.pop.pop.slot)
    }

    /// The earliest grace deadline still to judge, if any.
    pub fn next_deadline(&self) -> Option<u64> {
        self.unpaired
            .iter()
            .filter(|p| !p.reported)
            .map(|p| p.deadline_ns)
            .min()
    }

    /// Judges every population whose window closed before the walk `v`
    /// started and whose slot it compared: `unsynced`, with the walk's
    /// counts for the slot. A walk that
    /// ended early (a fault, not a cut at `--max-pgds`) judges nothing.
    pub fn on_walk(&mut self, v: &VerifyRecord, out: &mut Vec<Record>, summary: &mut Summary) {
        if !(v.complete || v.truncated) {
            return;
        }
        let start = v.started_ns();
        let mut judged = Vec::new();
        for p in self
            .unpaired
            .iter_mut()
            .filter(|p| !p.reported && p.deadline_ns <= start && v.compared(p.pop.pop.slot))
        {
            p.reported = true;
            judged.push((p.pop.clone(), p.from_ns, v.missing_in(p.pop.pop.slot)));
        }
        for (pop, from_ns, missing) in judged {
            let confirmed = missing > 0;
            let uncertain = self.lost_within(pop.empty(), start);
            summary.count_unsynced(confirmed, uncertain);
            out.push(Record::Unsynced(UnsyncedRecord {
                ts_ns: v.ts_ns,
                cpu: pop.cpu,
                pid: pop.pid,
                comm: pop.comm.clone(),
                pop: pop.pop.clone(),
                populated_ns: from_ns,
                grace_ns: self.grace_ns,
                pgds_missing: missing,
                pgds_total: v.pgds_total,
                walk_complete: v.complete,
                confirmed,
                uncertain,
                stack: pop.stack.clone(),
            }));
        }
    }
}

#[cfg(test)]
#[path = "pairing_tests.rs"]
mod tests;
