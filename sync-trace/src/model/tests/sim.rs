//! The kernel and the event loop, simulated: the records the kernel
//! produces around a population, and the order in which the event loop
//! delivers them, its scans and its loss reads to the model.

use sync_trace_common::{Method, Target};

use crate::{
    kernel::snapshot::Snapshot,
    model::Model,
    record::{CallRecord, Caller, Hex, LostRecord, Record, SyncRecord, Task, Trigger},
};

pub(super) const US: u64 = 1_000;
pub(super) const MS: u64 = 1_000_000;
pub(super) const GRACE: u64 = 100 * MS;
/// Slot 469: the vmemmap entry a hot-add at 32 TiB creates (4-level, no KASLR).
pub(super) const SLOT: usize = 469;
pub(super) const ADDR: u64 = 0xffffea8000000000;
pub(super) const BOOT: [usize; 4] = [273, 402, 468, 511];
pub(super) const PGDS: u32 = 10;

pub(super) fn sync(
    function: Target,
    entry: u64,
    end: u64,
    start: u64,
    last: u64,
    slot: usize,
) -> Record {
    Record::Sync(SyncRecord {
        ts_ns: entry,
        end_ns: end,
        duration_ns: end - entry,
        task: Task {
            cpu: 1,
            pid: 7,
            tid: 7,
            comm: "kworker".into(),
        },
        function,
        start: Hex(start),
        end: Hex(last),
        slot_first: slot,
        slot_last: slot,
        helper: start == last,
        caller: Caller::Other,
        method: Method::Fentry,
        entry_seen: true,
        stack: Default::default(),
    })
}

pub(super) fn call(entry: u64, end: u64) -> Record {
    Record::Call(CallRecord {
        ts_ns: entry,
        end_ns: end,
        duration_ns: end - entry,
        task: Task::default(),
        function: Target::VmemmapP4dPopulate,
        addr: Hex(ADDR),
        end: None,
        method: Method::Fentry,
        entry_seen: true,
        stack: Default::default(),
        calls: None,
        addr_last: None,
    })
}

/// How the kernel follows the population of SLOT at `t`.
#[derive(Clone, Copy, Debug)]
pub(super) enum Follow {
    /// `arch_sync_kernel_mappings(a, a)` after `delay`, tail-calling
    /// `sync_global_pgds(a, a)`, each `dur` long.
    Helper { delay: u64, dur: u64 },
    /// One `sync_global_pgds` over a range that covers the slot.
    Range { delay: u64, dur: u64 },
    /// Nothing.
    Never,
}

/// The records the kernel produces, and when the entry became visible.
pub(super) fn kernel(
    t: u64,
    follow: Follow,
    calls: &[(u64, u64)],
    noise: &[u64],
) -> (Vec<Record>, Option<u64>) {
    let mut recs = Vec::new();
    let synced = match follow {
        Follow::Helper { delay, dur } => {
            let a = t + delay;
            recs.push(sync(
                Target::SyncGlobalPgds,
                a + US,
                a + US + dur,
                ADDR,
                ADDR,
                SLOT,
            ));
            recs.push(sync(
                Target::ArchSyncKernelMappings,
                a,
                a + 2 * US + dur,
                ADDR,
                ADDR,
                SLOT,
            ));
            Some(a + US + dur)
        }
        Follow::Range { delay, dur } => {
            let a = t + delay;
            recs.push(sync(
                Target::SyncGlobalPgds,
                a,
                a + dur,
                ADDR,
                ADDR + (1 << 30) - 1,
                SLOT,
            ));
            Some(a + dur)
        }
        Follow::Never => None,
    };
    // The call that made the entry, then others over the same slot.
    recs.push(call(
        t.saturating_sub(2 * US),
        t + 3 * US + synced.map_or(0, |s| s - t),
    ));
    for &(offset, dur) in calls {
        let entry = t + 5 * US + offset;
        recs.push(call(entry, entry + dur));
    }
    for &at in noise {
        recs.push(sync(
            Target::SyncGlobalPgds,
            at,
            at + 50 * US,
            0xffffc90000000000,
            0xffffc90000000fff,
            402,
        ));
    }
    recs.sort_by_key(end_of);
    (recs, synced)
}

pub(super) fn end_of(r: &Record) -> u64 {
    match r {
        Record::Sync(s) => s.end_ns,
        Record::Call(c) => c.end_ns,
        _ => 0,
    }
}

/// Records lost between two reads of the counters, `since` and `ts`.
pub(super) fn lost(since: u64, ts: u64) -> Record {
    Record::Lost(LostRecord {
        what: "events".into(),
        count: 1,
        total: 1,
        ts_ns: ts,
        since_ns: since,
    })
}

/// What reaches the model, in the order the event loop reads it: each
/// call's entry when it starts (the model notes it), its record when it ends.
/// (A test's sequence of records, held as they are made: their size does not matter.)
#[allow(clippy::large_enum_variant)]
pub(super) enum Delivery {
    Entry(Target, u64, [u64; 3]),
    Record(Record),
}

pub(super) fn deliveries(recs: &[Record]) -> Vec<(u64, Delivery)> {
    let mut d = Vec::new();
    for r in recs {
        match r {
            Record::Sync(s) => d.push((
                s.ts_ns,
                Delivery::Entry(s.function, s.ts_ns, [s.start.0, s.end.0, 0]),
            )),
            Record::Call(c) => d.push((
                c.ts_ns,
                Delivery::Entry(c.function, c.ts_ns, [0, c.addr.0, 0]),
            )),
            _ => {}
        }
        d.push((end_of(r), Delivery::Record(r.clone())));
    }
    d.sort_by_key(|(t, _)| *t);
    d
}

/// The event loop reads the loss counters before every drain and scan: a
/// loss at `loss_at` is reported at the first of them after it, with the
/// window between that read and the one before.
pub(super) struct Losses {
    pub(super) at: Option<u64>,
    pub(super) last_read: u64,
}

impl Losses {
    pub(super) fn read(&mut self, now: u64, model: &mut Model, out: &mut Vec<Record>) {
        if self.at.is_some_and(|at| at <= now) {
            let r = lost(self.last_read, now);
            out.push(r.clone());
            model.observe(&r, out);
            self.at = None;
        }
        self.last_read = now;
    }
}

pub(super) fn deliver(model: &mut Model, d: &Delivery, out: &mut Vec<Record>) {
    match d {
        Delivery::Entry(t, ts, args) => model.note_entry(*t, *ts, *args),
        Delivery::Record(r) => {
            out.push(r.clone());
            model.observe(r, out);
        }
    }
}

/// Runs the model: scans every `period` from `first_scan`, each one a walk;
/// before each scan everything that happened by then is delivered, and
/// `early` of the next period's deliveries come right after it.
pub(super) fn simulate(
    recs: &[Record],
    t: u64,
    synced: Option<u64>,
    first_scan: u64,
    period: u64,
    early: usize,
    loss_at: Option<u64>,
) -> Vec<Record> {
    let mut losses = Losses {
        at: loss_at,
        last_read: 0,
    };
    let mut model = Model::new(GRACE);
    model.baseline(&Snapshot::test(0, &BOOT), false);
    let ds = deliveries(recs);
    let mut out = Vec::new();
    let mut next = 0;
    let mut scan_at = first_scan;
    while scan_at < t + 2 * GRACE + 3 * period {
        while next < ds.len() && ds[next].0 <= scan_at {
            losses.read(ds[next].0, &mut model, &mut out);
            deliver(&mut model, &ds[next].1, &mut out);
            next += 1;
        }
        losses.read(scan_at, &mut model, &mut out);
        let mut present = BOOT.to_vec();
        let mut snap = if scan_at >= t {
            present.push(SLOT);
            let mut s = Snapshot::test(scan_at, &present);
            if synced.is_none_or(|e| e > scan_at) {
                s.raw.missing[SLOT - 256] = PGDS;
            }
            s
        } else {
            Snapshot::test(scan_at, &present)
        };
        snap.raw.end_ns = scan_at + 10 * US;
        model.on_scan(&snap, Trigger::Sweep, &mut out);
        for _ in 0..early {
            if next < ds.len() && ds[next].0 <= scan_at + period {
                losses.read(ds[next].0.max(scan_at), &mut model, &mut out);
                deliver(&mut model, &ds[next].1, &mut out);
                next += 1;
            }
        }
        scan_at += period;
    }
    for (at, d) in &ds[next..] {
        losses.read((*at).max(scan_at), &mut model, &mut out);
        deliver(&mut model, d, &mut out);
    }
    losses.read(u64::MAX, &mut model, &mut out);
    model.finish(&mut out);
    out
}
