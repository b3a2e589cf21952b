//! The model fed with scans and records in the orders the kernel and the
//! event loop can produce them: a population, its syncs (or none), populate
//! calls around it, unrelated syncs, and scans at any point in between.
//! The event loop drains the ring buffer before each scan, so every record
//! that ended before a scan reaches the model before that scan does; records
//! that end after it may arrive before or after it.

mod properties;
mod sections;
mod sim;

use self::sim::*;
use crate::{
    kernel::snapshot::Snapshot,
    model::Model,
    record::{LatencyKind, Record, Source, Trigger},
};

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

/// The kernel batches the calls over a present entry (events.h,
/// "Batches"): the populating call stays alone, the calls after it become a
/// few records that count them. The populations and verdicts are those of
/// the populating call alone (the batched calls all came after it), with
/// the helper sync (exact), a range sync or none (bounded by its entry); the
/// same calls one by one give the same verdicts, with a bound never tighter
/// (beyond MAX_ACTS per slot, acts merge into looser spans).
#[test]
fn batched_calls_give_the_verdicts_of_the_populating_call() {
    let t = 10 * MS;
    let calls: Vec<(u64, u64)> = (0..512).map(|i| (i * 20 * US, 10 * US)).collect();
    for follow in [
        Follow::Helper {
            delay: 2 * US,
            dur: 30 * US,
        },
        Follow::Range {
            delay: 3 * MS,
            dur: 100 * US,
        },
        Follow::Never,
    ] {
        let (recs, synced) = kernel(t, follow, &calls, &[]);
        let verdicts = |recs: &[Record]| -> Vec<Record> {
            simulate(recs, t, synced, 0, 5 * MS, 0, None)
                .into_iter()
                .filter(|r| {
                    matches!(
                        r,
                        Record::Populate(_) | Record::Paired(_) | Record::Unsynced(_)
                    )
                })
                .collect()
        };
        // The call that entered first is the populating one.
        let first = (0..recs.len())
            .filter(|&i| matches!(recs[i], Record::Call(_)))
            .min_by_key(|&i| recs[i].ts_ns())
            .unwrap();
        let is_later_call = |i: usize, r: &Record| i != first && matches!(r, Record::Call(_));
        let alone: Vec<Record> = recs
            .iter()
            .enumerate()
            .filter(|&(i, r)| !is_later_call(i, r))
            .map(|(_, r)| r.clone())
            .collect();
        let later: Vec<_> = recs
            .iter()
            .enumerate()
            .filter_map(|(i, r)| match r {
                Record::Call(c) if i != first => Some(c.clone()),
                _ => None,
            })
            .collect();
        let mut batched = alone.clone();
        for chunk in later.chunks(100) {
            let mut b = chunk[0].clone();
            b.end_ns = chunk.last().unwrap().end_ns;
            b.duration_ns = chunk.iter().map(|c| c.duration_ns).sum();
            b.calls = Some(chunk.len() as u32);
            b.addr_last = Some(b.addr);
            batched.push(Record::Call(b));
        }
        let exact = verdicts(&alone);
        assert!(!exact.is_empty(), "{follow:?}");
        assert_eq!(verdicts(&batched), exact, "{follow:?}");
        let one_by_one = verdicts(&recs);
        assert_eq!(one_by_one.len(), exact.len(), "{follow:?}");
        for (a, b) in one_by_one.iter().zip(&exact) {
            match (a, b) {
                (Record::Populate(a), Record::Populate(b)) => {
                    assert_eq!((a.pop.source, a.ts_ns), (b.pop.source, b.ts_ns));
                    assert!(
                        a.not_before_ns <= b.not_before_ns,
                        "{follow:?}: {a:?} {b:?}"
                    );
                }
                (Record::Paired(a), Record::Paired(b)) => {
                    assert_eq!((a.latency_kind, a.uncertain), (b.latency_kind, b.uncertain));
                }
                (Record::Unsynced(a), Record::Unsynced(b)) => {
                    assert_eq!((a.confirmed, a.uncertain), (b.confirmed, b.uncertain));
                }
                _ => panic!("{follow:?}: {a:?} against {b:?}"),
            }
        }
    }
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
