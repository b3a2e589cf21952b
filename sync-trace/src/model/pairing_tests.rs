//! Pairing fed record by record: pairs, late pairs, walks that judge or not,
//! confirmed and unconfirmed verdicts, losses.

use sync_trace_common::{Level, Method, Region, Target};

use super::*;
use crate::record::{Caller, Hex, SlotCount, Task, Trigger};

const MS: u64 = 1_000_000;

fn pop(ts: u64, not_before: u64, source: Source) -> PopulateRecord {
    crate::record::vmemmap_469(ts, not_before, source)
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
        stack: Default::default(),
    }
}

fn verify(start: u64, missing: u32) -> VerifyRecord {
    VerifyRecord {
        ts_ns: start + MS,
        start_ns: start,
        trigger: Trigger::Deadline,
        level: Level::P4d,
        pgds_total: 12,
        slots_checked: 5,
        slots: None,
        complete: true,
        truncated: false,
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
        (r.latency_ns, r.latency_kind, r.late, r.uncertain),
        (3 * MS, LatencyKind::Exact, false, false)
    );
    assert_eq!(p.next_deadline(), None);
}

#[test]
fn effect_population_pairs_with_an_earlier_sync_as_upper_bound() {
    let (mut p, mut out, mut sum) = (Pairing::new(100 * MS), vec![], Summary::default());
    // Too old: ended before the population could have happened.
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
fn a_sync_with_start_after_end_covers_nothing() {
    let (mut p, mut out, mut sum) = (Pairing::new(100 * MS), vec![], Summary::default());
    p.on_populate(&pop(10 * MS, 0, Source::Helper), &mut out, &mut sum);
    let mut s = sync(11 * MS, 12 * MS, 469, 469);
    s.start = Hex(0xffffea8000001000);
    s.end = Hex(0xffffea8000000000);
    p.on_sync(&s, &mut out, &mut sum);
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn only_a_walk_after_the_window_judges_then_late_pairing_follows() {
    let (mut p, mut out, mut sum) = (Pairing::new(100 * MS), vec![], Summary::default());
    p.on_populate(&pop(10 * MS, 0, Source::Helper), &mut out, &mut sum);
    assert_eq!(p.next_deadline(), Some(111 * MS));
    // A walk that started inside the window judges nothing.
    p.on_walk(&verify(110 * MS, 7), &mut out, &mut sum);
    assert!(out.is_empty());
    // Nor does a walk that ended early.
    let mut faulted = verify(112 * MS, 7);
    faulted.complete = false;
    p.on_walk(&faulted, &mut out, &mut sum);
    assert!(out.is_empty());
    // Nor one that compared other slots only.
    let mut others = verify(112 * MS, 7);
    others.slots = Some(vec![300, 301]);
    p.on_walk(&others, &mut out, &mut sum);
    assert!(out.is_empty());
    assert_eq!(p.due_slots(112 * MS).collect::<Vec<_>>(), vec![469]);
    p.on_walk(&verify(112 * MS, 7), &mut out, &mut sum);
    let Record::Unsynced(u) = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(
        (u.pgds_missing, u.pgds_total, u.confirmed, u.populated_ns),
        (7, 12, true, 10 * MS)
    );
    // Reported once.
    p.on_walk(&verify(500 * MS, 7), &mut out, &mut sum);
    assert_eq!(out.len(), 1);
    p.on_sync(&sync(309 * MS, 310 * MS, 469, 469), &mut out, &mut sum);
    let Record::Paired(r) = &out[1] else {
        panic!("{out:?}")
    };
    assert_eq!((r.latency_ns, r.late), (300 * MS, true));
    assert_eq!((sum.unsynced, sum.paired), (1, 1));
}

#[test]
fn a_walk_that_finds_every_pgd_carrying_it_is_not_confirmed() {
    let (mut p, mut out, mut sum) = (Pairing::new(100 * MS), vec![], Summary::default());
    p.on_populate(&pop(10 * MS, 0, Source::Effect), &mut out, &mut sum);
    p.on_walk(&verify(200 * MS, 0), &mut out, &mut sum);
    let Record::Unsynced(u) = &out[0] else {
        panic!("{out:?}")
    };
    assert!(!u.confirmed && u.pgds_missing == 0);
    assert_eq!((sum.unsynced, sum.unsynced_unconfirmed), (0, 1));
}

#[test]
fn losses_in_the_window_make_verdicts_uncertain() {
    let (mut p, mut out, mut sum) = (Pairing::new(100 * MS), vec![], Summary::default());
    let lost = |since, ts| LostRecord {
        what: "events".into(),
        count: 3,
        total: 3,
        ts_ns: ts,
        since_ns: since,
    };
    // Before the window: no effect.
    p.on_lost(&lost(0, MS / 2));
    p.on_populate(&pop(10 * MS, MS, Source::Helper), &mut out, &mut sum);
    p.on_lost(&lost(11 * MS, 12 * MS));
    p.on_sync(&sync(11 * MS, 13 * MS, 469, 469), &mut out, &mut sum);
    let Record::Paired(r) = &out[0] else {
        panic!("{out:?}")
    };
    assert!(r.uncertain);
    assert_eq!((sum.paired, sum.uncertain), (0, 1));
}
