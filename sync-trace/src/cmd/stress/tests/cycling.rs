//! Cycling memory blocks, and restoring them on every exit path.

use std::sync::atomic::{AtomicBool, Ordering};

use super::fake::*;
use crate::cmd::stress::{
    blocks::{self, BlockSpec},
    cycle::{run_cycles, CycleEvent, Op, Outcome},
    restore::RestoreGuard,
    sysfs::{Fault, FaultKind},
};

#[test]
fn a_cycle_offlines_then_onlines_into_the_same_zone() {
    let f = Fake::new();
    f.block(1, "online", "Movable", None);
    f.block(2, "online", "Normal", None);
    let p = plan(&f, BlockSpec::List(vec![1, 2]), 2);
    let (r, evs) = cycle(&f, &p);
    r.unwrap();
    let w = f.writes();
    let one = [
        (state_rel(1), "offline".to_string()),
        (state_rel(2), "offline".to_string()),
        (state_rel(1), "online_movable".to_string()),
        (state_rel(2), "online_kernel".to_string()),
    ];
    assert_eq!(w, [one.clone(), one].concat());
    assert!(matches!(evs.last(), Some(CycleEvent::Done(Ok(())))));
    assert!(evs
        .iter()
        .any(|e| matches!(e, CycleEvent::Restored { failures } if failures.is_empty())));
}

#[test]
fn busy_offline_is_an_outcome_not_an_error() {
    let f = Fake::new();
    f.block(1, "online", "Movable", None);
    f.block(2, "online", "Movable", None);
    f.root.inject(Fault {
        path: state_rel(1),
        nth: 0,
        kind: FaultKind::Busy,
    });
    let p = plan(&f, BlockSpec::Movable, 1);
    let (r, evs) = cycle(&f, &p);
    r.unwrap();
    let busy: Vec<_> = evs
        .iter()
        .filter_map(|e| match e {
            CycleEvent::Action(a) if a.outcome == Outcome::Busy => Some((a.target.as_str(), a.op)),
            _ => None,
        })
        .collect();
    assert_eq!(busy, [("memory1", Op::Offline)]);
    // memory1 stayed online and was not onlined again; memory2 cycled.
    let w = f.writes();
    assert_eq!(w.iter().filter(|(p, _)| *p == state_rel(1)).count(), 1);
    assert_eq!(w.iter().filter(|(p, _)| *p == state_rel(2)).count(), 2);
}

/// memory0 in a guest: the kernel refuses to offline a block that spans
/// zones or has holes (EINVAL). `all-offlinable` goes on with the others.
#[test]
fn a_refused_offline_is_an_outcome_but_a_refused_online_fails() {
    let f = Fake::new();
    f.block(1, "online", "Normal", None);
    f.block(2, "online", "Movable", None);
    f.root.inject(Fault {
        path: state_rel(1),
        nth: 0,
        kind: FaultKind::Invalid,
    });
    let p = plan(&f, BlockSpec::AllOfflinable, 1);
    let (r, evs) = cycle(&f, &p);
    r.unwrap();
    assert!(evs.iter().any(|e| matches!(e,
        CycleEvent::Action(a) if a.target == "memory1" && a.outcome == Outcome::Refused)));
    let w = f.writes();
    assert_eq!(w.iter().filter(|(p, _)| *p == state_rel(2)).count(), 2);
    // The same EINVAL on the way back online is an error.
    let f = Fake::new();
    f.block(2, "online", "Movable", None);
    f.root.inject(Fault {
        path: state_rel(2),
        nth: 1,
        kind: FaultKind::Invalid,
    });
    let p = plan(&f, BlockSpec::Movable, 1);
    let (r, _) = cycle(&f, &p);
    assert!(r.is_err());
}

#[test]
fn an_error_mid_cycle_restores_what_was_offlined() {
    let f = Fake::new();
    f.block(1, "online", "Movable", None);
    f.block(2, "online", "Movable", None);
    f.root.inject(Fault {
        path: state_rel(2),
        nth: 0,
        kind: FaultKind::Failed,
    });
    let p = plan(&f, BlockSpec::Movable, 3);
    let (r, evs) = cycle(&f, &p);
    let e = r.unwrap_err();
    assert!(e.contains("memory2") && e.contains("offline failed"), "{e}");
    // memory1 was offline when memory2 failed; the guard onlined it.
    assert_eq!(f.state(1), "online_movable");
    assert_eq!(f.state(2), "online");
    assert_eq!(
        f.writes(),
        [
            (state_rel(1), "offline".to_string()),
            (state_rel(2), "offline".to_string()),
            (state_rel(1), "online_movable".to_string()),
        ]
    );
    // One cycle began and ended; the error is the result.
    assert_eq!(
        evs.iter()
            .filter(|e| matches!(e, CycleEvent::Start { .. }))
            .count(),
        1
    );
    assert!(matches!(evs.last(), Some(CycleEvent::Done(Err(_)))));
}

#[test]
fn an_injected_failure_stops_the_cycles_and_restores() {
    let f = Fake::new();
    f.block(1, "online", "Movable", None);
    f.block(2, "online", "Movable", None);
    let mut p = plan(&f, BlockSpec::Movable, 3);
    // Write 2 is memory2's offline: memory1 is offline then.
    p.fail_at_step = Some(2);
    let (r, _) = cycle(&f, &p);
    let e = r.unwrap_err();
    assert!(
        e.contains("memory2") && e.contains("injected failure of write 2"),
        "{e}"
    );
    assert_eq!(f.state(1), "online_movable");
    assert_eq!(f.state(2), "online");
    // memory2 was never written: the failure replaced the write.
    assert_eq!(
        f.writes(),
        [
            (state_rel(1), "offline".to_string()),
            (state_rel(1), "online_movable".to_string()),
        ]
    );
}

#[test]
fn a_failed_online_is_retried_by_the_restore() {
    let f = Fake::new();
    f.block(1, "online", "Movable", None);
    f.root.inject(Fault {
        path: state_rel(1),
        nth: 1,
        kind: FaultKind::Failed,
    });
    let p = plan(&f, BlockSpec::Movable, 2);
    let (r, evs) = cycle(&f, &p);
    assert!(r.unwrap_err().contains("memory1: online failed"));
    assert_eq!(f.state(1), "online_movable");
    assert!(evs
        .iter()
        .any(|e| matches!(e, CycleEvent::Restored { failures } if failures.is_empty())));
}

#[test]
fn what_cannot_be_restored_is_named() {
    let f = Fake::new();
    f.block(1, "online", "Movable", None);
    // The cycle's online and every restore attempt: EBUSY.
    for nth in 1..=6 {
        f.root.inject(Fault {
            path: state_rel(1),
            nth,
            kind: FaultKind::Busy,
        });
    }
    let p = plan(&f, BlockSpec::Movable, 1);
    let (r, evs) = cycle(&f, &p);
    let e = r.unwrap_err();
    assert!(
        e.contains("could not restore") && e.contains("memory1: left offline (was online)"),
        "{e}"
    );
    assert!(evs.iter().any(|e| matches!(e,
        CycleEvent::Restored { failures } if failures.len() == 1 && failures[0].starts_with("memory1"))));
}

#[test]
fn an_interrupted_offline_stops_and_restores() {
    let f = Fake::new();
    f.block(1, "online", "Movable", None);
    f.block(2, "online", "Movable", None);
    f.root.inject(Fault {
        path: state_rel(2),
        nth: 0,
        kind: FaultKind::Interrupted,
    });
    let p = plan(&f, BlockSpec::Movable, 5);
    // Ctrl-C: the glue sets the stop flag and the write returns EINTR.
    let stop = AtomicBool::new(false);
    let mut evs = Vec::new();
    run_cycles(&f.root, &p, &stop, &mut |e| {
        if matches!(&e, CycleEvent::Action(a) if a.outcome == Outcome::Interrupted) {
            stop.store(true, Ordering::Relaxed);
        }
        evs.push(e);
    })
    .unwrap();
    assert_eq!(
        evs.iter()
            .filter(|e| matches!(e, CycleEvent::Start { .. }))
            .count(),
        1
    );
    // memory1 (offlined before the interruption) is onlined again.
    assert_eq!(f.state(1), "online_movable");
    assert!(matches!(evs.last(), Some(CycleEvent::Done(Ok(())))));
}

#[test]
fn stop_flag_before_start_cycles_nothing() {
    let f = Fake::new();
    f.block(1, "online", "Movable", None);
    let p = plan(&f, BlockSpec::Movable, 10);
    let stop = AtomicBool::new(true);
    let mut evs = Vec::new();
    run_cycles(&f.root, &p, &stop, &mut |e| evs.push(e)).unwrap();
    assert!(f.writes().is_empty());
    assert_eq!(evs.len(), 2, "{evs:?}"); // Restored, Done
}

#[test]
fn the_guard_restores_on_drop_and_on_panic() {
    let f = Fake::new();
    f.block(1, "online", "Movable", None);
    f.block(2, "offline", "Normal Movable", None);
    let found = [
        blocks::read_block(&f.root, 1).unwrap(),
        blocks::read_block(&f.root, 2).unwrap(),
    ];
    {
        // An early return (`?`) drops the guard.
        let _g = RestoreGuard::new(&f.root, &found, &[]);
        blocks::offline(&f.root, 1).unwrap();
        blocks::online(&f.root, 2, None).unwrap();
    }
    assert_eq!(f.state(1), "online_movable");
    assert_eq!(f.state(2), "offline");
    let root = f.root.clone();
    let found2 = found.clone();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _g = RestoreGuard::new(&root, &found2, &[]);
        blocks::offline(&root, 1).unwrap();
        panic!("mid-cycle");
    }));
    assert!(r.is_err());
    assert_eq!(f.state(1), "online_movable");
    // After restore(), drop does nothing more.
    let before = f.writes().len();
    {
        let mut g = RestoreGuard::new(&f.root, &found, &[]);
        assert!(g.restore().is_empty());
    }
    assert_eq!(f.writes().len(), before);
}

/// A stress killed mid-cycle (no Drop, no restore) leaves its journal; recovering from it puts
/// the blocks back and removes it; a finished run leaves none.
#[test]
fn a_journal_left_by_a_killed_stress_is_restored() {
    use crate::cmd::stress::journal;

    let f = Fake::new();
    f.block(1, "online", "Movable", None);
    f.block(2, "offline", "Normal Movable", None);
    let found = [
        blocks::read_block(&f.root, 1).unwrap(),
        blocks::read_block(&f.root, 2).unwrap(),
    ];
    let g = RestoreGuard::new(&f.root, &found, &[])
        .journaled(f.root.journal())
        .unwrap();
    blocks::offline(&f.root, 1).unwrap();
    blocks::online(&f.root, 2, None).unwrap();
    // SIGKILL: the guard never runs.
    std::mem::forget(g);
    assert!(f.root.journal().exists());
    let lines = journal::recover(&f.root, &f.root.journal()).unwrap();
    assert_eq!(
        lines,
        ["restored memory1 online", "restored memory2 offline"]
    );
    assert_eq!(f.state(1), "online_movable");
    assert_eq!(f.state(2), "offline");
    assert!(!f.root.journal().exists());
    assert!(journal::recover(&f.root, &f.root.journal())
        .unwrap()
        .is_empty());

    let p = plan(&f, BlockSpec::List(vec![1]), 1);
    let (r, _) = cycle(&f, &p);
    r.unwrap();
    assert!(
        !f.root.journal().exists(),
        "a restored run keeps its journal"
    );
}
