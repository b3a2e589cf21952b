//! A sysfs write that does not return (memory hotplug wedged, as when a task oopsed while
//! holding a lock the write needs): given up on after the write timeout, cycling
//! stops, the restore does not block either, and the report names the write.

use std::{
    ffi::CString,
    time::{Duration, Instant},
};

use super::{fake::*, records::*};
use crate::cmd::stress::{
    blocks::BlockSpec,
    cycle::{CycleEvent, Op, Outcome},
    observer::StressObserver,
    report::{EXIT_ERROR, EXIT_FOUND},
    sysfs::{Fault, FaultKind, HungWrite, SysfsRoot, WriteError},
    watchdog::{self, Ended},
};

const TIMEOUT: Duration = Duration::from_millis(300);

fn mkfifo(p: &std::path::Path) {
    let c = CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[test]
fn the_watchdog_writes_and_reports_errno() {
    let f = Fake::new();
    let p = f.dir.join("attr");
    std::fs::write(&p, "old contents\n").unwrap();
    assert_eq!(
        watchdog::write(&p, "offline", TIMEOUT).unwrap(),
        Ended::Written
    );
    assert_eq!(std::fs::read_to_string(&p).unwrap(), "offline");
    assert_eq!(
        watchdog::write(&f.dir.join("absent/attr"), "1", TIMEOUT).unwrap(),
        Ended::Errno(libc::ENOENT)
    );
}

#[test]
fn a_write_that_does_not_return_is_given_up_on() {
    let f = Fake::new();
    let p = f.dir.join("fifo");
    // Opening a FIFO no one reads for writing blocks: a write that never returns.
    mkfifo(&p);
    let t = Instant::now();
    // A FIFO's open waits killably: the writer ends when killed.
    assert_eq!(
        watchdog::write(&p, "online", TIMEOUT).unwrap(),
        Ended::Hung { killed: true }
    );
    let took = t.elapsed();
    assert!(
        took >= TIMEOUT && took < TIMEOUT * 10,
        "gave up after {took:?}"
    );

    let root = SysfsRoot::new(&f.dir).with_write_timeout(TIMEOUT);
    match root.write("fifo", "online_movable") {
        Err(WriteError::Hung(h)) => {
            assert_eq!(
                h,
                HungWrite {
                    path: p.display().to_string(),
                    value: "online_movable".into(),
                    timeout_ms: 300,
                    ended_when_killed: true,
                }
            );
            let line = h.explain();
            assert!(
                line.contains("writing \"online_movable\" to ")
                    && line.contains("did not return within 300ms")
                    && line.contains("memory hotplug looks wedged")
                    && line.contains("ended only when killed")
                    && line.contains("dmesg"),
                "{line}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(root.hung().len(), 1);
}

#[test]
fn a_hung_write_stops_the_cycles_and_the_restore_goes_on() {
    let mut f = Fake::new();
    f.root = f.root.clone().with_write_timeout(TIMEOUT);
    for id in 1..=3 {
        f.block(id, "online", "Movable", None);
    }
    // The offline of memory2 never returns (cycle 1: memory1 offline, then memory2).
    f.root.inject(Fault {
        path: state_rel(2),
        nth: 0,
        kind: FaultKind::Hang,
    });
    let p = plan(&f, BlockSpec::Movable, 5);
    let t = Instant::now();
    let (r, evs) = cycle(&f, &p);
    assert!(t.elapsed() < TIMEOUT * 10, "{:?}", t.elapsed());
    let e = r.unwrap_err();
    assert!(e.contains("memory2: offline: writing \"offline\""), "{e}");
    // One cycle began; memory3 was not touched; memory1 was onlined again.
    assert_eq!(
        evs.iter()
            .filter(|e| matches!(e, CycleEvent::Start { .. }))
            .count(),
        1
    );
    let hung: Vec<_> = evs
        .iter()
        .filter_map(|e| match e {
            CycleEvent::Hung(h) => Some(h),
            _ => None,
        })
        .collect();
    assert_eq!(hung.len(), 1, "{evs:?}");
    assert!(hung[0].path.ends_with("memory2/state") && hung[0].value == "offline");
    assert!(evs.iter().any(|e| matches!(e,
        CycleEvent::Action(a) if a.target == "memory2" && a.op == Op::Offline && matches!(a.outcome, Outcome::Hung(_)))));
    assert!(!f.writes().iter().any(|w| w.0 == state_rel(3)));
    assert_eq!(f.state(1), "online_movable");
    assert!(evs
        .iter()
        .any(|e| matches!(e, CycleEvent::Restored { failures } if failures.is_empty())));
}

#[test]
fn a_restore_write_that_hangs_is_named_and_the_rest_not_attempted() {
    let mut f = Fake::new();
    f.root = f.root.clone().with_write_timeout(TIMEOUT);
    for id in 1..=2 {
        f.block(id, "online", "Movable", None);
    }
    // Cycle 1: both offlined; the online of memory1 hangs (cycling stops with both
    // offline); the restore's online of memory1 hangs too, so memory2 is not attempted.
    for nth in [1, 2] {
        f.root.inject(Fault {
            path: state_rel(1),
            nth,
            kind: FaultKind::Hang,
        });
    }
    let p = plan(&f, BlockSpec::Movable, 5);
    let t = Instant::now();
    let (r, evs) = cycle(&f, &p);
    // Two timeouts, not one per block.
    assert!(t.elapsed() < TIMEOUT * 6, "{:?}", t.elapsed());
    let e = r.unwrap_err();
    assert!(e.contains("did not return"), "{e}");
    let failures = evs
        .iter()
        .find_map(|e| match e {
            CycleEvent::Restored { failures } => Some(failures.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(
        failures[0].starts_with("memory1: left offline (was online): writing")
            && failures[0].contains("did not return"),
        "{failures:?}"
    );
    assert!(
        failures[1].starts_with("memory2: left offline (was online): not attempted"),
        "{failures:?}"
    );
    assert_eq!(f.state(2), "offline");
    // The restore's writes: memory1's online only.
    let w = f.writes();
    assert_eq!(w.iter().filter(|w| w.0 == state_rel(2)).count(), 1);
    // The hang of the cycles is the one reported.
    assert_eq!(
        evs.iter()
            .filter(|e| matches!(e, CycleEvent::Hung(_)))
            .count(),
        1
    );
}

#[test]
fn a_hang_only_in_the_restore_is_reported_after_it() {
    let mut f = Fake::new();
    f.root = f.root.clone().with_write_timeout(TIMEOUT);
    f.block(1, "online", "Movable", None);
    // The cycle's online fails (left offline); the restore's online hangs.
    f.root.inject(Fault {
        path: state_rel(1),
        nth: 1,
        kind: FaultKind::Failed,
    });
    f.root.inject(Fault {
        path: state_rel(1),
        nth: 2,
        kind: FaultKind::Hang,
    });
    let p = plan(&f, BlockSpec::Movable, 1);
    let (_, evs) = cycle(&f, &p);
    let i_hung = evs
        .iter()
        .position(|e| matches!(e, CycleEvent::Hung(_)))
        .expect("a Hung event");
    let i_restored = evs
        .iter()
        .position(|e| matches!(e, CycleEvent::Restored { .. }))
        .unwrap();
    assert_eq!(i_hung + 1, i_restored);
}

fn hung() -> HungWrite {
    HungWrite {
        path: "/sys/devices/system/memory/memory40/state".into(),
        value: "online_movable".into(),
        timeout_ms: 60_000,
        ended_when_killed: false,
    }
}

#[test]
fn a_wedged_run_exits_3_with_a_finding_and_1_without() {
    let failures = vec![
        "memory40: left offline (was online): writing \"online_movable\" to /sys/devices/system/memory/memory40/state did not return within 1m".to_string(),
    ];
    let mut b = two_cycles(true);
    b.cycle_event(&CycleEvent::Hung(hung()));
    b.cycle_event(&CycleEvent::Restored {
        failures: failures.clone(),
    });
    b.cycle_event(&CycleEvent::Done(Err(
        "memory40: online: writing ... did not return".into(),
    )));
    let r = b.finish(&empty_plan(), false, None);
    assert_eq!(r.exit_code, EXIT_FOUND, "{}", r.verdict);
    assert!(
        r.verdict.starts_with("FOUND: 1 unsynced")
            && r.verdict.contains("memory hotplug looks wedged: writing \"online_movable\" to /sys/devices/system/memory/memory40/state did not return within 1m")
            && r.verdict.contains("could not restore memory40"),
        "{}",
        r.verdict
    );
    assert_eq!(r.hung_write, Some(hung()));
    let text = r.text();
    assert!(
        text.contains("WEDGED: memory hotplug looks wedged"),
        "{text}"
    );
    assert!(text.contains("NOT RESTORED: memory40"), "{text}");
    let page = crate::cmd::stress::html::page(&r);
    assert!(page.contains("WEDGED: memory hotplug looks wedged"));
    let v: serde_json::Value = serde_json::to_value(&r).unwrap();
    assert_eq!(
        v["hung_write"]["path"],
        "/sys/devices/system/memory/memory40/state"
    );
    assert_eq!(v["hung_write"]["value"], "online_movable");
    assert_eq!(v["hung_write"]["timeout_ms"], 60_000);
    assert_eq!(v["hung_write"]["ended_when_killed"], false);

    let mut b = two_cycles(false);
    b.cycle_event(&CycleEvent::Hung(hung()));
    b.cycle_event(&CycleEvent::Restored { failures });
    let r = b.finish(&empty_plan(), false, None);
    assert_eq!(r.exit_code, EXIT_ERROR);
    assert!(
        r.verdict.starts_with("ERROR: memory hotplug looks wedged"),
        "{}",
        r.verdict
    );
}
