//! Device-dax: the sysfs sequences between devdax and system-ram.

use std::{fs, os::unix::fs::symlink};

use super::fake::*;
use crate::cmd::stress::{
    blocks::BlockSpec,
    cycle::{CycleEvent, Op, Outcome, Plan},
    dax::{self, Mode},
    restore::RestoreGuard,
    sysfs::{Fault, FaultKind},
};

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
