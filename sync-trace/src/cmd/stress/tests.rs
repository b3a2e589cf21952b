//! Tests of `stress` on a fake sysfs tree in a temporary directory.
//!
//! The fake tree is files and symlinks: a write to `memoryN/state` leaves
//! the written word in the file (so `online_movable` reads back as online),
//! and driver bind files do not move the `driver` link. The write log and
//! injected faults (`SysfsRoot::inject`) stand in for the kernel's refusals.

use std::{
    fs,
    os::unix::fs::symlink,
    path::PathBuf,
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
};

use super::{
    blocks::{self, parse_blocks, BlockSpec},
    cycle::{run_cycles, CycleEvent, Op, Outcome, Plan},
    dax::{self, parse_dax, DaxSpec, Mode},
    html,
    observer::StressObserver,
    report::{percentiles, ReportBuilder, EXIT_ERROR, EXIT_FOUND},
    restore::RestoreGuard,
    sysfs::{Fault, FaultKind, SysfsRoot},
};
use crate::record::Record;

const BLOCK: u64 = 128 << 20;

struct Fake {
    dir: PathBuf,
    root: SysfsRoot,
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Fake {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sync-trace-stress-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join(blocks::MEMORY)).unwrap();
        fs::write(
            dir.join(blocks::MEMORY).join("block_size_bytes"),
            format!("{BLOCK:x}\n"),
        )
        .unwrap();
        let root = SysfsRoot::new(&dir);
        Self { dir, root }
    }

    fn file(&self, rel: &str, content: &str) {
        let p = self.dir.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, format!("{content}\n")).unwrap();
    }

    /// A block: `state` (`online`/`offline`), its zone, and `removable`
    /// where given.
    fn block(&self, id: u64, state: &str, zone: &str, removable: Option<&str>) {
        let d = format!("{}/memory{id}", blocks::MEMORY);
        self.file(&format!("{d}/state"), state);
        self.file(
            &format!("{d}/online"),
            if state == "online" { "1" } else { "0" },
        );
        self.file(&format!("{d}/valid_zones"), zone);
        if let Some(r) = removable {
            self.file(&format!("{d}/removable"), r);
        }
    }

    fn drivers(&self) {
        for d in [dax::DEVICE_DAX, dax::KMEM] {
            for f in ["bind", "unbind", "new_id", "remove_id"] {
                self.file(&format!("{}/{d}/{f}", dax::DRIVERS), "");
            }
        }
    }

    /// A dax device bound to `driver`, spanning `nblocks` blocks from `first`.
    fn dax(&self, name: &str, driver: &str, first: u64, nblocks: u64) {
        self.drivers();
        let d = format!("{}/{name}", dax::DEVICES);
        self.file(&format!("{d}/resource"), &format!("0x{:x}", first * BLOCK));
        self.file(&format!("{d}/size"), &format!("{}", nblocks * BLOCK));
        symlink(
            self.dir.join(format!("{}/{driver}", dax::DRIVERS)),
            self.dir.join(format!("{d}/driver")),
        )
        .unwrap();
    }

    fn state(&self, id: u64) -> String {
        self.root
            .read(&format!("{}/memory{id}/state", blocks::MEMORY))
            .unwrap()
    }

    fn writes(&self) -> Vec<(String, String)> {
        self.root
            .writes()
            .into_iter()
            .map(|w| (w.path, w.value))
            .collect()
    }
}

fn plan(f: &Fake, spec: BlockSpec, cycles: u64) -> Plan {
    Plan::build(&f.root, &spec, None, Some(cycles), None).unwrap()
}

fn cycle(f: &Fake, p: &Plan) -> (Result<(), String>, Vec<CycleEvent>) {
    let mut evs = Vec::new();
    let stop = AtomicBool::new(false);
    let r = run_cycles(&f.root, p, &stop, &mut |e| evs.push(e));
    (r, evs)
}

fn state_rel(id: u64) -> String {
    format!("{}/memory{id}/state", blocks::MEMORY)
}

// --- selection --------------------------------------------------------

#[test]
fn blocks_argument() {
    assert_eq!(
        parse_blocks("32,40-42,memory7,32").unwrap(),
        BlockSpec::List(vec![7, 32, 40, 41, 42])
    );
    assert_eq!(
        parse_blocks("all-offlinable").unwrap(),
        BlockSpec::AllOfflinable
    );
    assert_eq!(parse_blocks("none").unwrap(), BlockSpec::None);
    assert!(parse_blocks("9-3").is_err());
    assert!(parse_blocks("x").is_err());
    assert!(parse_blocks("").is_err());
    assert_eq!(parse_dax("all").unwrap(), DaxSpec::All);
    assert_eq!(
        parse_dax("dax0.0,dax1.0").unwrap(),
        DaxSpec::List(vec!["dax0.0".into(), "dax1.0".into()])
    );
    assert!(parse_dax("pmem0").is_err());
}

#[test]
fn selection_never_takes_a_non_removable_block() {
    let f = Fake::new();
    f.block(0, "online", "Normal", Some("0"));
    f.block(1, "online", "Movable", Some("1"));
    f.block(2, "online", "Movable", None); // modern kernel: no `removable`
    f.block(3, "offline", "Normal Movable", Some("1"));
    f.block(4, "online", "Normal", Some("1"));
    f.block(5, "online", "Movable", Some("0"));

    let ids = |p: &Plan| p.blocks.iter().map(|b| b.id).collect::<Vec<_>>();
    let movable = plan(&f, BlockSpec::Movable, 1);
    assert_eq!(ids(&movable), [1, 2]);
    let all = plan(&f, BlockSpec::AllOfflinable, 1);
    assert_eq!(ids(&all), [1, 2, 4]);
    assert!(all
        .skipped
        .iter()
        .any(|s| s.target == "memory0" && s.reason.contains("non-removable")));
    let listed = plan(&f, BlockSpec::List(vec![0, 1, 3, 5]), 1);
    assert_eq!(ids(&listed), [1]);
    let skipped: Vec<&str> = listed.skipped.iter().map(|s| s.target.as_str()).collect();
    assert_eq!(skipped, ["memory0", "memory3", "memory5"]);
    // A missing block is an error, not a skip.
    let e = Plan::build(&f.root, &BlockSpec::List(vec![9]), None, Some(1), None).unwrap_err();
    assert!(e.contains("memory block 9 does not exist"), "{e}");
    // The non-removable blocks are never written, whatever the cycles do.
    cycle(&f, &all).0.unwrap();
    assert!(f
        .writes()
        .iter()
        .all(|(p, _)| !p.contains("memory0/") && !p.contains("memory5/")));
}

#[test]
fn nothing_to_cycle_is_refused() {
    let f = Fake::new();
    f.block(0, "online", "Normal", Some("0"));
    let e = Plan::build(&f.root, &BlockSpec::Movable, None, None, None).unwrap_err();
    assert!(e.contains("nothing to cycle"), "{e}");
    let p = Plan::build(&f.root, &BlockSpec::List(vec![0]), None, None, None).unwrap_err();
    assert!(p.contains("non-removable"), "{p}");
}

#[test]
fn refuses_to_start_when_it_could_not_restore() {
    let f = Fake::new();
    f.block(1, "online", "Movable", None);
    f.dax("dax0.0", dax::DEVICE_DAX, 16, 1);
    fs::remove_file(f.dir.join(format!("{}/kmem/bind", dax::DRIVERS))).unwrap();
    let p = plan(&f, BlockSpec::Movable, 1);
    let e = p.check_writable(&f.root).unwrap_err();
    assert!(e.contains("bus/dax/drivers/kmem/bind"), "{e}");
    assert!(e.contains("does not start"), "{e}");
    // Nothing was written.
    assert!(f.writes().is_empty());
    // With every file in place it starts.
    f.drivers();
    p.check_writable(&f.root).unwrap();
}

#[test]
fn default_cycles_and_duration() {
    let f = Fake::new();
    f.block(1, "online", "Movable", None);
    let p = Plan::build(&f.root, &BlockSpec::Movable, None, None, None).unwrap();
    assert_eq!(p.cycles, Some(super::cycle::DEFAULT_CYCLES));
    let d = std::time::Duration::from_millis(1);
    let p = Plan::build(&f.root, &BlockSpec::Movable, None, None, Some(d)).unwrap();
    assert_eq!(p.cycles, None);
    // A duration alone ends the cycling.
    let (r, evs) = cycle(&f, &p);
    r.unwrap();
    assert!(evs.iter().any(|e| matches!(e, CycleEvent::End { .. })));
}

// --- cycling and restoring ----------------------------------------------

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

// --- device-dax ------------------------------------------------------------

fn pos(w: &[(String, String)], path: &str, value: &str) -> usize {
    w.iter()
        .position(|(p, v)| p.ends_with(path) && v == value)
        .unwrap_or_else(|| panic!("no write of {value:?} to {path} in {w:?}"))
}

#[test]
fn dax_devdax_to_system_ram_and_back() {
    let f = Fake::new();
    f.dax("dax0.0", dax::DEVICE_DAX, 16, 2);
    // The blocks kmem adds (the fake tree has them from the start).
    f.block(16, "offline", "Normal Movable", None);
    f.block(17, "offline", "Normal Movable", None);
    assert_eq!(dax::block_ids(&f.root, "dax0.0"), [16, 17]);
    let p = Plan::build(&f.root, &BlockSpec::None, None, Some(1), None).unwrap();
    assert_eq!(p.dax.len(), 1);
    assert_eq!(p.dax[0].mode, Mode::Devdax);
    p.check_writable(&f.root).unwrap();
    let (r, evs) = cycle(&f, &p);
    r.unwrap();
    let w = f.writes();
    let d = "dax0.0";
    // devdax → system-ram: unbind device_dax, new_id to kmem, online the blocks.
    let unbind_dd = pos(&w, "device_dax/unbind", d);
    let new_kmem = pos(&w, "kmem/new_id", d);
    let on16 = pos(&w, "memory16/state", "online_movable");
    let on17 = pos(&w, "memory17/state", "online_movable");
    assert!(
        unbind_dd < new_kmem && new_kmem < on16 && on16 < on17,
        "{w:?}"
    );
    // system-ram → devdax: offline every block before kmem unbinds.
    let off16 = pos(&w, "memory16/state", "offline");
    let off17 = pos(&w, "memory17/state", "offline");
    let unbind_kmem = pos(&w, "kmem/unbind", d);
    let remove_id = pos(&w, "kmem/remove_id", d);
    let new_dd = pos(&w, "device_dax/new_id", d);
    assert!(
        on17 < off16 && off16 < off17 && off17 < unbind_kmem,
        "{w:?}"
    );
    assert!(unbind_kmem < remove_id && remove_id < new_dd, "{w:?}");
    let ops: Vec<(Op, Vec<u64>)> = evs
        .iter()
        .filter_map(|e| match e {
            CycleEvent::Action(a) => Some((a.op, a.blocks.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        ops,
        [
            (Op::ToSystemRam, vec![16, 17]),
            (Op::ToDevdax, vec![16, 17])
        ]
    );
}

#[test]
fn dax_busy_offline_never_unbinds_kmem() {
    let f = Fake::new();
    f.dax("dax1.0", dax::KMEM, 32, 2);
    f.block(32, "online", "Movable", None);
    f.block(33, "online", "Movable", None);
    f.root.inject(Fault {
        path: state_rel(33),
        nth: 0,
        kind: FaultKind::Busy,
    });
    // Blocks of a system-ram device are cycled with it, never alone.
    let p = Plan::build(&f.root, &BlockSpec::AllOfflinable, None, Some(1), None).unwrap();
    assert!(p.blocks.is_empty(), "{:?}", p.blocks);
    let (r, evs) = cycle(&f, &p);
    r.unwrap();
    let w = f.writes();
    assert!(!w.iter().any(|(p, _)| p.ends_with("kmem/unbind")), "{w:?}");
    // memory32 went offline, then back online when memory33 was busy.
    let off = pos(&w, "memory32/state", "offline");
    let on = pos(&w, "memory32/state", "online_movable");
    assert!(off < on);
    assert!(evs.iter().any(|e| matches!(e,
        CycleEvent::Action(a) if a.op == Op::ToDevdax && a.outcome == Outcome::Busy)));
    // No way back was attempted: the device never left system-ram.
    assert!(!evs
        .iter()
        .any(|e| matches!(e, CycleEvent::Action(a) if a.op == Op::ToSystemRam)));
}

#[test]
fn dax_restore_puts_the_mode_back() {
    let f = Fake::new();
    f.dax("dax0.0", dax::DEVICE_DAX, 16, 1);
    f.block(16, "online", "Movable", None);
    let found = dax::select(&f.root, None).unwrap().0;
    {
        let _g = RestoreGuard::new(&f.root, &[], &found);
        // The device ends up in kmem (as a failed cycle would leave it).
        let link = f.dir.join(format!("{}/dax0.0/driver", dax::DEVICES));
        fs::remove_file(&link).unwrap();
        symlink(f.dir.join(format!("{}/kmem", dax::DRIVERS)), &link).unwrap();
    }
    let w = f.writes();
    let off = pos(&w, "memory16/state", "offline");
    let unbind = pos(&w, "kmem/unbind", "dax0.0");
    assert!(off < unbind);
    pos(&w, "device_dax/new_id", "dax0.0");
}

// --- the report --------------------------------------------------------------

fn rec(json: &str) -> Record {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"))
}

fn populate(ts: u64, slot: usize, region: &str) -> Record {
    rec(&format!(
        r#"{{"event":"populate","ts_ns":{ts},"not_before_ns":{ts},"cpu":null,"pid":null,"comm":null,"level":"p4d","slot":{slot},"addr":"0xffffea0000000000","region":"{region}","source":"helper","stack":[]}}"#
    ))
}

fn paired(ts: u64, slot: usize, latency: u64) -> Record {
    rec(&format!(
        r#"{{"event":"paired","ts_ns":{},"cpu":1,"pid":9,"comm":"k","level":"p4d","slot":{slot},"addr":"0xffffea0000000000","region":"vmemmap","source":"helper","populated_ns":{ts},"latency_ns":{latency},"latency_kind":"exact","sync_function":"sync_global_pgds","sync_start":"0xffffea0000000000","sync_end":"0xffffea0000000000","late":false}}"#,
        ts + latency
    ))
}

fn sync(ts: u64, dur: u64) -> Record {
    rec(&format!(
        r#"{{"event":"sync","ts_ns":{ts},"end_ns":{},"duration_ns":{dur},"cpu":1,"pid":9,"tid":9,"comm":"k","function":"sync_global_pgds","start":"0xffffea0000000000","end":"0xffffea0000000000","slot_first":468,"slot_last":468,"helper":true,"caller":"populate_helper","method":"fentry","entry_seen":true,"stack":[]}}"#,
        ts + dur
    ))
}

fn unsynced(ts: u64, slot: usize, confirmed: bool) -> Record {
    rec(&format!(
        r#"{{"event":"unsynced","ts_ns":{},"cpu":null,"pid":null,"comm":null,"level":"p4d","slot":{slot},"addr":"0xfffffd0000000000","region":"other","source":"effect","populated_ns":{ts},"grace_ns":100000000,"pgds_missing":{},"pgds_total":5,"walk_complete":true,"confirmed":{confirmed},"stack":[]}}"#,
        ts + 100_000_000,
        if confirmed { 4 } else { 0 }
    ))
}

fn verify(ts: u64, missing_slot: Option<usize>) -> Record {
    let missing = missing_slot.map_or(String::new(), |s| {
        format!(r#"{{"slot":{s},"addr":"0xfffffd0000000000","region":"other","pgds":4}}"#)
    });
    rec(&format!(
        r#"{{"event":"verify","ts_ns":{ts},"trigger":"sync","level":"p4d","pgds_total":5,"slots_checked":70,"complete":true,"ok":{},"missing":[{missing}],"mismatched":[]}}"#,
        missing_slot.is_none()
    ))
}

fn action(ts: u64, target: &str, op: Op, outcome: Outcome, blocks: Vec<u64>) -> CycleEvent {
    CycleEvent::Action(super::cycle::Action {
        ts_ns: ts,
        end_ns: ts + 10,
        target: target.into(),
        op,
        outcome,
        blocks,
    })
}

fn empty_plan() -> Plan {
    Plan {
        blocks: vec![],
        dax: vec![],
        skipped: vec![],
        cycles: Some(2),
        duration: None,
    }
}

/// Two cycles: the first clean, the second with an unsynced population.
fn two_cycles(found: bool) -> ReportBuilder {
    let mut b = ReportBuilder::default();
    let s = 1_000_000_000u64;
    b.record(&rec(
        r#"{"event":"layout","ts_ns":1,"kernel":"6.12.0-test","paging":"4","page_offset_base":"0xffff888000000000","vmalloc_base":"0xffffc90000000000","vmemmap_base":"0xffffea0000000000","kernel_boundary":273,"present":[273]}"#,
    ));
    b.record(&sync(s / 2, 1_000)); // before the first cycle
    b.cycle_event(&CycleEvent::Start {
        index: 1,
        of: Some(2),
        ts_ns: s,
    });
    b.cycle_event(&action(s + 1, "memory32", Op::Offline, Outcome::Ok, vec![]));
    b.cycle_event(&action(
        s + 2,
        "memory33",
        Op::Offline,
        Outcome::Busy,
        vec![],
    ));
    b.cycle_event(&action(s + 3, "memory32", Op::Online, Outcome::Ok, vec![]));
    b.cycle_event(&action(
        s + 4,
        "dax0.0",
        Op::ToSystemRam,
        Outcome::Ok,
        vec![16, 17],
    ));
    b.cycle_event(&action(
        s + 5,
        "dax0.0",
        Op::ToDevdax,
        Outcome::Ok,
        vec![16, 17],
    ));
    for i in 0..100u64 {
        let t = s + 10 + i * 1000;
        b.record(&sync(t, 2_000 + i));
        b.record(&populate(t, 468, "vmemmap"));
        b.record(&paired(t, 468, (i + 1) * 1_000));
    }
    b.record(&verify(s + 500_000, None));
    b.cycle_event(&CycleEvent::End {
        index: 1,
        ts_ns: 2 * s,
    });
    b.cycle_event(&CycleEvent::Start {
        index: 2,
        of: Some(2),
        ts_ns: 3 * s,
    });
    b.record(&populate(3 * s + 10, 337, "direct_map"));
    b.record(&sync(3 * s + 20, 5_000));
    b.record(&paired(3 * s + 10, 337, 7_000));
    if found {
        b.record(&populate(3 * s + 30, 506, "other"));
        b.record(&unsynced(3 * s + 30, 506, true));
        b.record(&verify(3 * s + 200_000_000, Some(506)));
    }
    b.record(&rec(
        r#"{"event":"lost","what":"events","count":3,"total":3,"ts_ns":3000000100,"since_ns":3000000000}"#,
    ));
    b.cycle_event(&CycleEvent::End {
        index: 2,
        ts_ns: 4 * s,
    });
    b.cycle_event(&CycleEvent::Restored { failures: vec![] });
    b.cycle_event(&CycleEvent::Done(Ok(())));
    b
}

#[test]
fn percentiles_are_nearest_rank() {
    let v: Vec<u64> = (1..=100).rev().collect();
    let p = percentiles(&v);
    assert_eq!((p.count, p.p50_ns, p.p99_ns, p.max_ns), (100, 50, 99, 100));
    let p = percentiles(&[7]);
    assert_eq!((p.p50_ns, p.p99_ns, p.max_ns), (7, 7, 7));
    assert_eq!(percentiles(&[]).count, 0);
    let p = percentiles(&[1, 2, 3, 1000]);
    assert_eq!((p.p50_ns, p.p99_ns), (2, 1000));
}

#[test]
fn report_counts_per_cycle() {
    let r = two_cycles(false).finish(&empty_plan(), false, None);
    assert_eq!(r.kernel.as_deref(), Some("6.12.0-test"));
    assert_eq!(r.cycles.len(), 2);
    assert_eq!(r.before.syncs, 1);
    let c1 = &r.cycles[0];
    assert_eq!(c1.offlined, ["memory32", "dax0.0"]);
    assert_eq!(c1.onlined, ["memory32", "dax0.0"]);
    assert_eq!(c1.busy, ["memory33"]);
    assert_eq!(
        (c1.added.clone(), c1.removed.clone()),
        (vec![16, 17], vec![16, 17])
    );
    assert_eq!(c1.populations.get("vmemmap"), Some(&100));
    assert_eq!((c1.syncs, c1.paired), (100, 100));
    assert_eq!(
        (c1.latency.p50_ns, c1.latency.p99_ns, c1.latency.max_ns),
        (50_000, 99_000, 100_000)
    );
    let c2 = &r.cycles[1];
    assert_eq!(c2.populations.get("direct_map"), Some(&1));
    assert_eq!((c2.syncs, c2.paired, c2.lost, c2.unsynced), (1, 1, 3, 0));
    assert_eq!(c2.latency.max_ns, 7_000);
    assert_eq!(r.totals.populations, 101);
    assert_eq!(r.totals.syncs, 102);
    assert_eq!(r.latency.count, 101);
    assert_eq!(r.exit_code, 0);
    assert!(r.verdict.starts_with("clean: 2 cycle(s)"), "{}", r.verdict);
    assert!(
        r.verdict.contains("3 kernel record(s) lost"),
        "{}",
        r.verdict
    );
    let slots: Vec<(usize, &str, &str)> = r
        .slots
        .iter()
        .map(|s| (s.slot, s.region.as_str(), s.verdict.as_str()))
        .collect();
    assert_eq!(
        slots,
        [(337, "direct_map", "paired"), (468, "vmemmap", "paired")]
    );
    assert_eq!((r.slots[1].pgds_verified, r.slots[1].pgds_total), (5, 5));
    let text = r.text();
    assert!(text.contains("memory33"), "{text}");
    assert!(
        text.lines().last().unwrap().starts_with("verdict: clean"),
        "{text}"
    );
}

#[test]
fn unsynced_and_mismatch_exit_3_errors_exit_1() {
    let r = two_cycles(true).finish(&empty_plan(), false, None);
    assert_eq!(r.cycles[1].unsynced, 1);
    assert_eq!(r.exit_code, EXIT_FOUND);
    assert!(r.verdict.starts_with("FOUND: 1 unsynced"), "{}", r.verdict);
    let row = r.slots.iter().find(|s| s.slot == 506).unwrap();
    assert_eq!((row.pgds_verified, row.pgds_total), (1, 5));
    assert!(
        row.verdict.starts_with("unsynced: 4 of 5"),
        "{}",
        row.verdict
    );

    let mut b = two_cycles(false);
    b.record(&rec(
        r#"{"event":"mismatch","ts_ns":3000000500,"level":"p4d","slot":400,"addr":"0xffffc80000000000","region":"vmalloc","pgds":2,"pgds_total":5}"#,
    ));
    let r = b.finish(&empty_plan(), false, None);
    assert_eq!((r.cycles[1].mismatches, r.exit_code), (1, EXIT_FOUND));
    assert!(r
        .slots
        .iter()
        .any(|s| s.slot == 400 && s.verdict.starts_with("mismatch")));

    // An unconfirmed unsynced is reported, not a finding.
    let mut b = two_cycles(false);
    b.record(&unsynced(3_000_000_040, 507, false));
    let r = b.finish(&empty_plan(), false, None);
    assert_eq!((r.totals.unsynced_unconfirmed, r.exit_code), (1, 0));

    // A block not restored, or an error, is exit 1 and named.
    let mut b = two_cycles(true);
    b.cycle_event(&CycleEvent::Restored {
        failures: vec!["memory32: left offline (was online): busy (EBUSY)".into()],
    });
    let r = b.finish(&empty_plan(), false, None);
    assert_eq!(r.exit_code, EXIT_ERROR);
    assert!(
        r.verdict.contains("memory32: left offline"),
        "{}",
        r.verdict
    );
    assert!(r.text().contains("NOT RESTORED: memory32"));
    let r = two_cycles(false).finish(&empty_plan(), true, Some("tracing: ring gone".into()));
    assert_eq!(r.exit_code, EXIT_ERROR);
    assert!(r.text().contains("interrupted"));
}

#[test]
fn json_report_is_one_document() {
    let r = two_cycles(true).finish(&empty_plan(), false, None);
    let s = serde_json::to_string(&r).unwrap();
    assert!(!s.contains('\n'));
    let v: serde_json::Value = serde_json::from_str(&s).unwrap();
    assert_eq!(v["exit_code"], 3);
    assert_eq!(v["cycles"].as_array().unwrap().len(), 2);
    assert_eq!(v["cycles"][0]["latency"]["p99_ns"], 99_000);
    assert_eq!(v["cycles"][0]["busy"][0], "memory33");
    assert_eq!(v["cycles"][0]["actions"][3]["op"], "to_system_ram");
    assert!(v["verdict"].as_str().unwrap().starts_with("FOUND"));
}

fn svgs(page: &str) -> Vec<&str> {
    page.split("<svg")
        .skip(1)
        .map(|s| &s[..s.find("</svg>").expect("closed svg")])
        .collect()
}

#[test]
fn html_is_self_contained_with_every_plot() {
    let r = two_cycles(true).finish(&empty_plan(), false, None);
    let page = html::page(&r);
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(!page.contains("http://") && !page.contains("https://"));
    assert!(!page.contains("<script") && !page.contains("<link") && !page.contains("src="));
    let plots = svgs(&page);
    assert_eq!(plots.len(), 3);
    for (p, what) in plots.iter().zip(["latency", "per cycle", "sync duration"]) {
        assert!(
            p.contains("<rect") || p.contains("<circle"),
            "{what} plot is empty"
        );
    }
    assert!(plots[2].matches("<circle").count() >= 100);
    for needle in [
        "populate to sync latency distribution",
        "populations and syncs per cycle",
        "sync duration over time",
        "<td>506</td>",
        "unsynced: 4 of 5",
        "verdict: FOUND",
        "memory33",
    ] {
        assert!(page.contains(needle), "no {needle:?}");
    }
    // Without data every plot still renders, saying so.
    let r = ReportBuilder::default().finish(&empty_plan(), false, None);
    let page = html::page(&r);
    assert_eq!(svgs(&page).len(), 3);
    assert_eq!(page.matches("recorded</text>").count(), 3);
}

#[test]
fn long_text_reports_show_the_eventful_cycles() {
    let mut b = ReportBuilder::default();
    let s = 1_000_000_000u64;
    for i in 1..=60u64 {
        b.cycle_event(&CycleEvent::Start {
            index: i,
            of: None,
            ts_ns: i * s,
        });
        b.cycle_event(&action(
            i * s + 1,
            "memory32",
            Op::Offline,
            Outcome::Ok,
            vec![],
        ));
        if i == 30 {
            b.record(&populate(i * s + 5, 274, "direct_map"));
        }
        b.cycle_event(&CycleEvent::End {
            index: i,
            ts_ns: i * s + 10,
        });
    }
    let r = b.finish(&empty_plan(), false, None);
    let text = r.text();
    let rows: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<u64>().is_ok() || *w == "start")
        .collect();
    assert_eq!(rows, ["start", "1", "30", "60", "274"], "{text}");
    assert!(text.contains("57 cycle(s) without"), "{text}");
    assert_eq!(r.cycles.len(), 60);
}
