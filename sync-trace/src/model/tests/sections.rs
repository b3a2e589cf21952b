//! `__populate_section_memmap()` as evidence: its memory map's range names
//! the vmemmap slots it may populate (like `init_memory_mapping()`'s range
//! the direct map's), so a population inside it is bounded by its entry and
//! attributed to it; one that found its entries present (a batch) names nothing.

use sync_trace_common::{Method, Target};

use super::sim::*;
use crate::{
    kernel::snapshot::Snapshot,
    model::Model,
    record::{CallRecord, Hex, PopulateRecord, Record, Source, Task, Trigger},
};

/// pfn of 32 TiB, and one section of pages (128 MiB).
const PFN_32T: u64 = 1 << 33;
const SECTION_PAGES: u64 = 32768;
/// Its memory map with 64-byte struct pages: 2 MiB at ADDR, in SLOT.
const MEMMAP_END: u64 = ADDR + SECTION_PAGES * 64;

fn section(entry: u64, end: u64, addr: u64, addr_end: u64, calls: Option<u32>) -> Record {
    Record::Call(CallRecord {
        ts_ns: entry,
        end_ns: end,
        duration_ns: end - entry,
        task: Task {
            cpu: 2,
            pid: 42,
            tid: 42,
            comm: "devmap".into(),
        },
        function: Target::PopulateSectionMemmap,
        addr: Hex(addr),
        end: calls.is_none().then_some(Hex(addr_end)),
        method: Method::Fentry,
        entry_seen: true,
        stack: vec!["memremap_pages+0x4d0".to_string()].into(),
        calls,
        addr_last: calls.map(|_| Hex(addr_end - 1)),
    })
}

/// The model after a baseline at 0 with BOOT present, fed `recs`, then a
/// scan at `seen` with SLOT present too: the `populate` records.
fn populations(model: &mut Model, recs: &[Record], seen: u64) -> Vec<PopulateRecord> {
    let mut out = Vec::new();
    for r in recs {
        model.observe(r, &mut out);
    }
    let mut present = BOOT.to_vec();
    present.push(SLOT);
    model.on_scan(&Snapshot::test(seen, &present), Trigger::Sweep, &mut out);
    model.finish(&mut out);
    out.into_iter()
        .filter_map(|r| match r {
            Record::Populate(p) => Some(p),
            _ => None,
        })
        .collect()
}

fn model(struct_page: Option<u64>) -> Model {
    let mut m = Model::new(GRACE);
    let mut snap = Snapshot::test(0, &BOOT);
    if struct_page.is_none() {
        snap.raw.core = 0;
    }
    let layout = m.baseline(&snap, false);
    assert_eq!(layout.struct_page, struct_page);
    m
}

#[test]
fn a_population_inside_a_section_call_is_bounded_by_it_and_attributed_to_it() {
    let t = 10 * MS;
    let rec = section(t, t + MS, ADDR, MEMMAP_END, None);
    let pops = populations(&mut model(Some(64)), &[rec], t + 2 * MS);
    assert_eq!(pops.len(), 1, "{pops:?}");
    let p = &pops[0];
    assert_eq!(
        (p.pop.slot, p.pop.source, p.not_before_ns, p.ts_ns),
        (SLOT, Source::Call, t, t + 2 * MS),
        "{p:?}"
    );
    assert_eq!(p.comm.as_deref(), Some("devmap"));
    assert_eq!(p.stack.len(), 1);
    // A memory map that starts in the slot below still names SLOT: its whole range counts.
    let rec = section(t, t + MS, ADDR - (1 << 20), ADDR + (1 << 20), None);
    let pops = populations(&mut model(Some(64)), &[rec], t + 2 * MS);
    assert_eq!(
        (pops[0].pop.source, pops[0].not_before_ns),
        (Source::Call, t),
        "{pops:?}"
    );
}

#[test]
fn a_section_call_elsewhere_does_not_bound_it() {
    let t = 10 * MS;
    // The memory map of 16 TiB: slot 468, present since boot.
    let elsewhere = ADDR - (1 << 39);
    let rec = section(t, t + MS, elsewhere, elsewhere + (2 << 20), None);
    let pops = populations(&mut model(Some(64)), &[rec], t + 2 * MS);
    assert_eq!(pops.len(), 1, "{pops:?}");
    assert_eq!(
        (
            pops[0].pop.source,
            pops[0].not_before_ns,
            pops[0].comm.clone()
        ),
        (Source::Effect, 0, None),
        "{pops:?}"
    );
}

#[test]
fn a_section_call_over_present_slots_names_nothing() {
    let t = 10 * MS;
    // Traced alone over slot 468 (present since boot): no population.
    let mut m = model(Some(64));
    let rec = section(
        t,
        t + MS,
        ADDR - (1 << 39),
        ADDR - (1 << 39) + (2 << 20),
        None,
    );
    let mut out = Vec::new();
    m.observe(&rec, &mut out);
    m.on_scan(&Snapshot::test(t + 2 * MS, &BOOT), Trigger::Sweep, &mut out);
    m.finish(&mut out);
    assert!(
        !out.iter().any(|r| matches!(r, Record::Populate(_))),
        "{out:?}"
    );
    // A batch over SLOT: its calls found it present, so a later population of
    // SLOT is not theirs.
    let batch = section(t, t + MS, ADDR, MEMMAP_END, Some(3));
    let pops = populations(&mut model(Some(64)), &[batch], t + 2 * MS);
    assert_eq!(
        (
            pops[0].pop.source,
            pops[0].not_before_ns,
            pops[0].comm.clone()
        ),
        (Source::Effect, 0, None),
        "{pops:?}"
    );
}

/// A call still running when the scan sees the entry: its entry record,
/// raw arguments `(pfn, nr_pages, nid)`, placed with `sizeof(struct page)`;
/// unknown, the whole vmemmap region is taken, which still bounds it.
#[test]
fn a_running_section_call_bounds_it_from_its_raw_arguments() {
    let t = 10 * MS;
    for size in [Some(64), None] {
        let mut m = model(size);
        m.note_entry(
            Target::PopulateSectionMemmap,
            t,
            [PFN_32T, SECTION_PAGES, 0],
        );
        let pops = populations(&mut m, &[], t + 2 * MS);
        assert_eq!(
            (pops[0].pop.slot, pops[0].not_before_ns),
            (SLOT, t),
            "{size:?}: {pops:?}"
        );
    }
    // Another section's pages (16 TiB, slot 468) do not bound SLOT.
    let mut m = model(Some(64));
    m.note_entry(
        Target::PopulateSectionMemmap,
        t,
        [PFN_32T / 2, SECTION_PAGES, 0],
    );
    let pops = populations(&mut m, &[], t + 2 * MS);
    assert_eq!(pops[0].not_before_ns, 0, "{pops:?}");
}
