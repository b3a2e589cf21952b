//! The fake sysfs tree and the helpers that cycle on it.

use std::{
    fs,
    os::unix::fs::symlink,
    path::PathBuf,
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
};

use crate::cmd::stress::{
    blocks::{self, BlockSpec},
    cycle::{run_cycles, CycleEvent, Plan},
    dax::{self},
    sysfs::SysfsRoot,
};

pub(super) const BLOCK: u64 = 128 << 20;

pub(super) struct Fake {
    pub(super) dir: PathBuf,
    pub(super) root: SysfsRoot,
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Fake {
    pub(super) fn new() -> Self {
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

    pub(super) fn file(&self, rel: &str, content: &str) {
        let p = self.dir.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, format!("{content}\n")).unwrap();
    }

    /// A block: `state` (`online`/`offline`), its zone, and `removable`
    /// where given.
    pub(super) fn block(&self, id: u64, state: &str, zone: &str, removable: Option<&str>) {
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

    pub(super) fn drivers(&self) {
        for d in [dax::DEVICE_DAX, dax::KMEM] {
            for f in ["bind", "unbind", "new_id", "remove_id"] {
                self.file(&format!("{}/{d}/{f}", dax::DRIVERS), "");
            }
        }
    }

    /// A dax device bound to `driver`, spanning `nblocks` blocks from `first`.
    pub(super) fn dax(&self, name: &str, driver: &str, first: u64, nblocks: u64) {
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

    pub(super) fn state(&self, id: u64) -> String {
        self.root
            .read(&format!("{}/memory{id}/state", blocks::MEMORY))
            .unwrap()
    }

    pub(super) fn writes(&self) -> Vec<(String, String)> {
        self.root
            .writes()
            .into_iter()
            .map(|w| (w.path, w.value))
            .collect()
    }
}

pub(super) fn plan(f: &Fake, spec: BlockSpec, cycles: u64) -> Plan {
    Plan::build(&f.root, &spec, None, Some(cycles), None).unwrap()
}

pub(super) fn cycle(f: &Fake, p: &Plan) -> (Result<(), String>, Vec<CycleEvent>) {
    let mut evs = Vec::new();
    let stop = AtomicBool::new(false);
    let r = run_cycles(&f.root, p, &stop, &mut |e| evs.push(e));
    (r, evs)
}

pub(super) fn state_rel(id: u64) -> String {
    format!("{}/memory{id}/state", blocks::MEMORY)
}
