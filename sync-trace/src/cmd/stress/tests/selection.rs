//! Which blocks and devices are selected, and when `stress` refuses to start.

use std::fs;

use super::fake::*;
use crate::cmd::stress::{
    blocks::{parse_blocks, BlockSpec},
    cycle::{self, CycleEvent, Plan},
    dax::{self, parse_dax, DaxSpec},
};

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
    assert_eq!(p.cycles, Some(cycle::DEFAULT_CYCLES));
    let d = std::time::Duration::from_millis(1);
    let p = Plan::build(&f.root, &BlockSpec::Movable, None, None, Some(d)).unwrap();
    assert_eq!(p.cycles, None);
    // A duration alone ends the cycling.
    let (r, evs) = cycle(&f, &p);
    r.unwrap();
    assert!(evs.iter().any(|e| matches!(e, CycleEvent::End { .. })));
}
