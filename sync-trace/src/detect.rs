//! Population detection by effect: compares each scan of init_mm's
//! top-level table with the previous one, and names the code that
//! populated a new entry when a helper sync or populate call was traced.
//! Walks of pgd_list go on to `verify.rs`.

use std::collections::VecDeque;

use sync_trace_common::{raw::PTRS, Layout};

use crate::{
    record::{
        CallRecord, Hex, PopulateRecord, Population, Record, Source, SyncRecord, Task, Trigger,
    },
    snapshot::Snapshot,
    verify::Verifier,
};

/// Traced hints kept to name the populating code (helper syncs are rare).
const MAX_HINTS: usize = 256;

/// A traced call that names a slot: `arch_sync_kernel_mappings(a, a)` or a
/// populate function.
#[derive(Clone, Debug)]
struct Hint {
    ts_ns: u64,
    slot: usize,
    task: Task,
    stack: Vec<String>,
}

/// A traced `init_memory_mapping()` call: direct-map populations in its
/// slots happen after its entry.
#[derive(Clone, Copy, Debug)]
struct Bound {
    ts_ns: u64,
    first: usize,
    last: usize,
}

#[derive(Default)]
pub struct Detector {
    /// Set before the baseline: the kernel has KASAN (its shadow region exists).
    pub kasan: bool,
    layout: Option<Layout>,
    known: Vec<bool>,
    last_empty_ns: Vec<u64>,
    hints: VecDeque<Hint>,
    bounds: VecDeque<Bound>,
    verifier: Verifier,
}

impl Detector {
    pub fn layout(&self) -> Option<Layout> {
        self.layout
    }

    /// Takes the first snapshot as the baseline: entries present at start
    /// are not populations (every later PGD inherits them).
    pub fn baseline(&mut self, snap: &Snapshot) -> Layout {
        let layout = snap.layout().with_kasan(self.kasan);
        self.layout = Some(layout);
        self.known = (0..PTRS).map(|s| snap.present(s)).collect();
        self.last_empty_ns = vec![snap.ts_ns(); PTRS];
        layout
    }

    fn add_hint(&mut self, h: Hint) {
        if self.hints.len() == MAX_HINTS {
            self.hints.pop_front();
        }
        self.hints.push_back(h);
    }

    pub fn hint_sync(&mut self, s: &SyncRecord) {
        if let (true, Some(l)) = (s.helper, self.layout) {
            self.add_hint(Hint {
                ts_ns: s.ts_ns,
                slot: l.slot(s.start.0),
                task: s.task.clone(),
                stack: s.stack.clone(),
            });
        }
    }

    /// `init_memory_mapping(start, end)` entered at `ts_ns`: direct-map
    /// populations of physical `[start, end)` happen after it. Fed at the
    /// call's exit, and while it is still running (its exit can come after
    /// the scan that sees its population).
    pub fn bound_direct_map(&mut self, ts_ns: u64, start: u64, end: u64) {
        let Some(l) = self.layout else { return };
        let va = |phys: u64| l.page_offset_base.wrapping_add(phys);
        let (first, last) = l.slots_of(va(start), va(end.max(start + 1) - 1));
        let b = Bound { ts_ns, first, last };
        if self
            .bounds
            .iter()
            .any(|x| x.ts_ns == b.ts_ns && x.first == b.first)
        {
            return;
        }
        if self.bounds.len() == MAX_HINTS {
            self.bounds.pop_front();
        }
        self.bounds.push_back(b);
    }

    pub fn hint_call(&mut self, c: &CallRecord) {
        if let Some(end) = c.end {
            self.bound_direct_map(c.ts_ns, c.addr.0, end.0);
            return;
        }
        if let Some(l) = self.layout {
            self.add_hint(Hint {
                ts_ns: c.ts_ns,
                slot: l.slot(c.addr.0),
                task: c.task.clone(),
                stack: c.stack.clone(),
            });
        }
    }

    /// Feeds a scan; appends `populate`, then `verify` and `mismatch` records.
    pub fn on_scan(&mut self, snap: &Snapshot, trigger: Trigger, out: &mut Vec<Record>) {
        let Some(layout) = self.layout else {
            self.baseline(snap);
            return;
        };
        let first = layout.kernel_boundary().max(256);
        for slot in first..PTRS {
            if !snap.present(slot) {
                self.last_empty_ns[slot] = snap.ts_ns();
                continue;
            }
            if self.known[slot] {
                continue;
            }
            self.known[slot] = true;
            out.push(Record::Populate(self.population(
                &layout,
                slot,
                snap.ts_ns(),
            )));
        }
        if snap.walked() || snap.incomplete() {
            self.verifier.on_walk(&layout, snap, trigger, out);
        }
    }

    fn population(&self, layout: &Layout, slot: usize, seen_ns: u64) -> PopulateRecord {
        // After the last scan that saw it empty, and after the entry of a
        // traced init_memory_mapping() over it since then.
        let not_before_ns = self
            .bounds
            .iter()
            .filter(|b| (b.first..=b.last).contains(&slot) && b.ts_ns <= seen_ns)
            .map(|b| b.ts_ns)
            .fold(self.last_empty_ns[slot], u64::max);
        let hint = self
            .hints
            .iter()
            .rev()
            .find(|h| h.slot == slot && h.ts_ns >= not_before_ns && h.ts_ns <= seen_ns);
        let pop = |source| Population {
            level: layout.level(),
            slot,
            addr: Hex(layout.slot_addr(slot)),
            region: layout.region_of_slot(slot),
            source,
        };
        match hint {
            Some(h) => PopulateRecord {
                ts_ns: h.ts_ns,
                not_before_ns,
                cpu: Some(h.task.cpu),
                pid: Some(h.task.pid),
                comm: Some(h.task.comm.clone()),
                pop: pop(Source::Helper),
                stack: h.stack.clone(),
            },
            None => PopulateRecord {
                ts_ns: seen_ns,
                not_before_ns,
                cpu: None,
                pid: None,
                comm: None,
                pop: pop(Source::Effect),
                stack: Vec::new(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use sync_trace_common::{Method, Region, Target};

    use super::*;
    use crate::caller::Caller;

    const BOOT: [usize; 4] = [273, 402, 468, 511];

    fn helper_sync(ts: u64, addr: u64) -> SyncRecord {
        SyncRecord {
            ts_ns: ts,
            end_ns: ts + 20_000,
            duration_ns: 20_000,
            task: Task {
                cpu: 1,
                pid: 25,
                tid: 25,
                comm: "kworker/u4:1".into(),
            },
            function: Target::ArchSyncKernelMappings,
            start: Hex(addr),
            end: Hex(addr),
            slot_first: 469,
            slot_last: 469,
            helper: true,
            caller: Caller::PopulateHelper,
            method: Method::Fentry,
            entry_seen: true,
            stack: vec!["vmemmap_p4d_populate+0xc4".into()],
        }
    }

    #[test]
    fn new_entry_with_helper_hint_is_a_helper_population() {
        let mut d = Detector::default();
        d.baseline(&Snapshot::test(1_000, &BOOT));
        d.hint_sync(&helper_sync(5_000, 0xffffea8000000000));
        let mut out = Vec::new();
        d.on_scan(
            &Snapshot::test(9_000, &[273, 402, 468, 469, 511]),
            Trigger::Sync,
            &mut out,
        );
        let Record::Populate(p) = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(p.pop.slot, 469);
        assert_eq!(p.pop.source, Source::Helper);
        assert_eq!(p.pop.region, Region::Vmemmap);
        assert_eq!(p.pop.addr, Hex(0xffffea8000000000));
        assert_eq!((p.ts_ns, p.not_before_ns), (5_000, 1_000));
        assert_eq!(p.comm.as_deref(), Some("kworker/u4:1"));
        // A sync-triggered walk always yields a verify record.
        assert!(matches!(out[1], Record::Verify(ref v) if v.ok));
        // Seen once only.
        out.clear();
        d.on_scan(
            &Snapshot::test(10_000, &[273, 402, 468, 469, 511]),
            Trigger::Sweep,
            &mut out,
        );
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn new_entry_without_hint_is_an_effect_population() {
        let mut d = Detector::default();
        d.baseline(&Snapshot::test(1_000, &BOOT));
        // A hint for another slot, and one older than the last empty scan, do not count.
        d.hint_sync(&helper_sync(500, 0xffff890000000000));
        let mut out = Vec::new();
        d.on_scan(&Snapshot::test(2_000, &BOOT), Trigger::Sweep, &mut out);
        d.on_scan(
            &Snapshot::test(3_000, &[273, 274, 402, 468, 511]),
            Trigger::Sweep,
            &mut out,
        );
        let Record::Populate(p) = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(
            (p.pop.slot, p.pop.source, p.pop.region),
            (274, Source::Effect, Region::DirectMap)
        );
        assert_eq!((p.ts_ns, p.not_before_ns), (3_000, 2_000));
        assert!(p.cpu.is_none() && p.stack.is_empty());
    }

    #[test]
    fn a_traced_direct_map_call_bounds_an_effect_population() {
        let mut d = Detector::default();
        d.baseline(&Snapshot::test(1_000, &BOOT));
        let call = |ts: u64, start: u64| CallRecord {
            ts_ns: ts,
            end_ns: ts + 500,
            duration_ns: 500,
            task: Task::default(),
            function: Target::InitMemoryMapping,
            addr: Hex(start),
            end: Some(Hex(start + (128 << 20))),
            method: Method::Kprobe,
            entry_seen: true,
            stack: vec![],
        };
        d.hint_call(&call(1_500, 0x8000000000)); // 512 GiB: slot 274
        d.hint_call(&call(1_600, 0x10000000000)); // 1 TiB: slot 275, not ours
        let mut out = Vec::new();
        d.on_scan(
            &Snapshot::test(3_000, &[273, 274, 402, 468, 511]),
            Trigger::Sweep,
            &mut out,
        );
        let Record::Populate(p) = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!((p.pop.slot, p.pop.source), (274, Source::Effect));
        assert_eq!((p.ts_ns, p.not_before_ns), (3_000, 1_500));
    }

    #[test]
    fn slots_below_the_kernel_boundary_are_ignored() {
        let mut d = Detector::default();
        d.baseline(&Snapshot::test(1_000, &BOOT));
        let mut out = Vec::new();
        d.on_scan(
            &Snapshot::test(2_000, &[100, 272, 273, 402, 468, 511]),
            Trigger::Sweep,
            &mut out,
        );
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn walks_become_verify_and_mismatch_records() {
        let mut d = Detector::default();
        d.baseline(&Snapshot::test(1_000, &BOOT));
        let mut s = Snapshot::test(2_000, &BOOT);
        s.raw.missing[468 - 256] = 3;
        s.raw.mismatch[273 - 256] = 1;
        let mut out = Vec::new();
        d.on_scan(&s, Trigger::Sweep, &mut out);
        let Record::Verify(v) = &out[0] else {
            panic!("{out:?}")
        };
        assert!(!v.ok);
        assert_eq!(v.missing_in(468), 3);
        assert_eq!(v.slots_checked, 4);
        assert!(matches!(&out[1], Record::Mismatch(m) if m.slot == 273 && m.pgds == 1));
        // The same problems on the next sweep: nothing new.
        out.clear();
        d.on_scan(&s, Trigger::Sweep, &mut out);
        assert!(out.is_empty());
    }
}
