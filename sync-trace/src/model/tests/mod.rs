//! The model fed with scans and records in the orders the kernel and the
//! event loop can produce them: a population, its syncs (or none), populate
//! calls around it, unrelated syncs, and scans at any point in between.
//! The event loop drains the ring buffer before each scan, so every record
//! that ended before a scan reaches the model before that scan does; records
//! that end after it may arrive before or after it.

use proptest::prelude::*;
use sync_trace_common::{Method, Target};

use super::*;
use crate::record::{Caller, LostRecord, Source, Task};

const US: u64 = 1_000;
const MS: u64 = 1_000_000;
const GRACE: u64 = 100 * MS;
/// Slot 469: the vmemmap entry a hot-add at 32 TiB creates (4-level, no KASLR).
const SLOT: usize = 469;
const ADDR: u64 = 0xffffea8000000000;
const BOOT: [usize; 4] = [273, 402, 468, 511];
const PGDS: u32 = 10;

fn sync(function: Target, entry: u64, end: u64, start: u64, last: u64, slot: usize) -> Record {
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
        stack: vec![],
    })
}

fn call(entry: u64, end: u64) -> Record {
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
        stack: vec![],
    })
}

/// How the kernel follows the population of SLOT at `t`.
#[derive(Clone, Copy, Debug)]
enum Follow {
    /// `arch_sync_kernel_mappings(a, a)` after `delay`, tail-calling
    /// `sync_global_pgds(a, a)`, each `dur` long.
    Helper { delay: u64, dur: u64 },
    /// One `sync_global_pgds` over a range that covers the slot.
    Range { delay: u64, dur: u64 },
    /// Nothing.
    Never,
}

/// The records the kernel produces, and when the entry became visible.
fn kernel(
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

fn end_of(r: &Record) -> u64 {
    match r {
        Record::Sync(s) => s.end_ns,
        Record::Call(c) => c.end_ns,
        _ => 0,
    }
}

/// Records lost between two reads of the counters, `since` and `ts`.
fn lost(since: u64, ts: u64) -> Record {
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
enum Delivery {
    Entry(Target, u64, [u64; 3]),
    Record(Record),
}

fn deliveries(recs: &[Record]) -> Vec<(u64, Delivery)> {
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
struct Losses {
    at: Option<u64>,
    last_read: u64,
}

impl Losses {
    fn read(&mut self, now: u64, model: &mut Model, out: &mut Vec<Record>) {
        if self.at.is_some_and(|at| at <= now) {
            let r = lost(self.last_read, now);
            out.push(r.clone());
            model.observe(&r, out);
            self.at = None;
        }
        self.last_read = now;
    }
}

fn deliver(model: &mut Model, d: &Delivery, out: &mut Vec<Record>) {
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
fn simulate(
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

fn follow() -> impl Strategy<Value = Follow> {
    prop_oneof![
        (0..200 * US, 1..500 * US).prop_map(|(delay, dur)| Follow::Helper { delay, dur }),
        (0..30 * MS, 1..2 * MS).prop_map(|(delay, dur)| Follow::Range { delay, dur }),
        Just(Follow::Never),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn verdicts_follow_the_kernel(
        t in MS..80 * MS,
        follow in follow(),
        calls in prop::collection::vec((0..40 * MS, 1..200 * US), 0..60),
        noise in prop::collection::vec(0..300 * MS, 0..5),
        first_scan in 0..50 * MS,
        period in MS..50 * MS,
        early in 0usize..4,
        loss in prop::option::of((0..100 * MS, 0..5 * MS)),
    ) {
        let (recs, synced) = kernel(t, follow, &calls, &noise);
        // Records lost right when the population happened, or long after
        // every verdict.
        let loss_holds_t = loss.map(|(_, width)| width % 2 == 0);
        let loss_at = loss.map(|(after, width)| {
            if width % 2 == 0 { t } else { t + 2 * GRACE + 10 * period + after }
        });
        let out = simulate(&recs, t, synced, first_scan, period, early, loss_at);
        let pops: Vec<&PopulateRecord> = out.iter().filter_map(|r| match r {
            Record::Populate(p) => Some(p),
            _ => None,
        }).collect();
        prop_assert_eq!(pops.len(), 1, "{:?}", out);
        let pop = pops[0];
        prop_assert_eq!(pop.pop.slot, SLOT);
        // The bounds are true: it happened after not_before and by ts.
        prop_assert!(pop.not_before_ns <= t, "not_before {} after the population {}", pop.not_before_ns, t);
        prop_assert!(pop.ts_ns >= t, "ts {} before the population {}", pop.ts_ns, t);
        let paired: Vec<_> = out.iter().filter_map(|r| match r {
            Record::Paired(p) => Some(p),
            _ => None,
        }).collect();
        let unsynced: Vec<_> = out.iter().filter_map(|r| match r {
            Record::Unsynced(u) => Some(u),
            _ => None,
        }).collect();
        match (follow, synced) {
            (Follow::Never, _) => {
                prop_assert!(paired.is_empty(), "{:?}", paired);
                prop_assert_eq!(unsynced.len(), 1, "{:?}", out);
                prop_assert!(unsynced[0].confirmed && unsynced[0].pgds_missing == PGDS);
            }
            (_, Some(end)) => {
                // Every sync here ends well within the grace window.
                prop_assert!(unsynced.is_empty(), "false unsynced: {:?}", out);
                prop_assert_eq!(paired.len(), 1, "{:?}", out);
                let p = paired[0];
                prop_assert!(p.ts_ns >= t && p.ts_ns <= end + 3 * US, "{:?}", p);
                prop_assert!(p.latency_ns >= p.ts_ns - pop.ts_ns.min(p.ts_ns) || p.latency_kind == LatencyKind::UpperBound);
                if let Follow::Helper { .. } = follow {
                    prop_assert_eq!(pop.pop.source, Source::Helper);
                    prop_assert_eq!(p.latency_kind, LatencyKind::Exact);
                    prop_assert!(p.latency_ns <= end - t, "{:?}", p);
                } else {
                    prop_assert_eq!(p.latency_kind, LatencyKind::UpperBound);
                    prop_assert!(p.latency_ns >= p.ts_ns - t, "an upper bound below the truth: {:?}", p);
                }
            }
            (_, None) => unreachable!(),
        }
        let verdicts: Vec<bool> = out.iter().filter_map(|r| match r {
            Record::Paired(p) => Some(p.uncertain),
            Record::Unsynced(u) => Some(u.uncertain),
            _ => None,
        }).collect();
        match loss_holds_t {
            Some(true) => prop_assert!(verdicts.iter().all(|&u| u), "loss around the population, verdict certain: {:?}", out),
            _ => prop_assert!(verdicts.iter().all(|&u| !u), "no loss in the window, verdict uncertain: {:?}", out),
        }
        let Some(Record::Summary(s)) = out.last() else { panic!("no summary") };
        prop_assert_eq!(s.paired + s.unsynced + s.uncertain, 1);
    }
}

/// The case a busy machine produced: the scan ran between the write and
/// the helper sync, so the sync arrives after the scan that saw the entry.
#[test]
fn a_helper_sync_after_the_scan_still_makes_a_helper_population() {
    let t = 10 * MS;
    let (recs, synced) = kernel(
        t,
        Follow::Helper {
            delay: MS,
            dur: 20 * US,
        },
        &[],
        &[],
    );
    let out = simulate(&recs, t, synced, t + 100 * US, 50 * MS, 0, None);
    let pop = out.iter().find_map(|r| match r {
        Record::Populate(p) => Some(p),
        _ => None,
    });
    let pop = pop.expect("a population");
    assert_eq!(
        (pop.pop.source, pop.ts_ns),
        (Source::Helper, t + MS),
        "{pop:?}"
    );
    assert!(out
        .iter()
        .any(|r| matches!(r, Record::Paired(p) if p.latency_kind == LatencyKind::Exact)));
}

/// 6.12 with compound pages: hundreds of populate calls over the slot, most
/// after the helper sync. The first act times it, not the last.
#[test]
fn many_populate_calls_after_the_sync_do_not_move_the_population() {
    let t = 10 * MS;
    let calls: Vec<(u64, u64)> = (0..242).map(|i| (i * 50 * US, 10 * US)).collect();
    let (recs, synced) = kernel(
        t,
        Follow::Helper {
            delay: 2 * US,
            dur: 30 * US,
        },
        &calls,
        &[],
    );
    let out = simulate(&recs, t, synced, 0, 50 * MS, 0, None);
    let kinds: Vec<&str> = out
        .iter()
        .filter_map(|r| match r {
            Record::Populate(_) => Some("populate"),
            Record::Paired(_) => Some("paired"),
            Record::Unsynced(_) => Some("unsynced"),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, vec!["populate", "paired"], "{out:?}");
}

/// A host with 100,000 processes: the counts of a walk of every PGD reach
/// the verdict whole; a walk cut at `--max-pgds` says so in the verdict and
/// confirms nothing it could not count.
#[test]
fn a_hundred_thousand_pgds_are_counted_or_the_cut_is_reported() {
    const HOSTS: u32 = 100_000;
    for cut in [false, true] {
        let mut model = Model::new(GRACE);
        model.baseline(&Snapshot::test(0, &BOOT), false);
        let mut out = Vec::new();
        let mut present = BOOT.to_vec();
        present.push(SLOT);
        let mut seen = Snapshot::test(10 * MS, &present);
        seen.raw.status = sync_trace_common::raw::SCAN_DONE; // a table scan
        model.on_scan(&seen, Trigger::Sweep, &mut out);
        let mut walk = Snapshot::test(10 * MS + GRACE + MS, &present);
        walk.raw.pgds = HOSTS;
        if cut {
            walk.raw.status |= sync_trace_common::raw::SCAN_TRUNCATED;
        } else {
            walk.raw.missing[SLOT - 256] = HOSTS;
        }
        model.on_scan(&walk, Trigger::Sweep, &mut out);
        let u = out
            .iter()
            .find_map(|r| match r {
                Record::Unsynced(u) => Some(u),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no unsynced: {out:?}"));
        assert_eq!(u.pgds_total, HOSTS, "{u:?}");
        if cut {
            assert!(
                !u.walk_complete && !u.confirmed && u.pgds_missing == 0,
                "{u:?}"
            );
        } else {
            assert!(
                u.walk_complete && u.confirmed && u.pgds_missing == HOSTS,
                "{u:?}"
            );
        }
    }
}
