//! Checks of the hot-plug shapes real machines produce: device memory with compound struct
//! pages (`memremap_pages()`, the device-dax path), one DIMM of many sections, and virtio-mem
//! adding block after block into one new direct-map slot.

use anyhow::{ensure, Context as _, Result};
use sync_trace::record::{
    CallRecord, LatencyKind, PairedRecord, PopulateRecord, Source, SyncRecord,
};
use sync_trace_common::{Region, Target};

use super::batches::check_batched;
use super::hotadd::{
    bounded_by_mapping, no_unsynced, populated_and_paired, vmemmap_helper_sync, AT_32T, AT_512G,
    SLOT_DIRECT_32T, SLOT_DIRECT_512G, SLOT_VMEMMAP_32T,
};
use super::module_last::Last;
use super::output::{stack_has, Output};
use super::sections;
use crate::vm::KernelId;

const MIB: u64 = 1 << 20;
/// A memory block (and section) on x86_64.
const BLOCK: u64 = 128 * MIB;

/// Exactly one `populate` of `slot` in a step, and its `paired`.
fn one_population(
    o: &Output,
    step: &str,
    slot: usize,
    region: Region,
) -> Result<(PopulateRecord, PairedRecord)> {
    let pops: Vec<PopulateRecord> = o
        .populates(step)?
        .into_iter()
        .filter(|p| p.pop.slot == slot)
        .collect();
    ensure!(
        pops.len() == 1,
        "{} populate records of slot {slot}, expected one: {pops:?}",
        pops.len()
    );
    let paired = populated_and_paired(o, step, slot, region)?;
    Ok((pops[0].clone(), paired))
}

/// A population is paired with a sync that ended no earlier than the population: its exact
/// time (`populated_ns` of an `exact` pairing), or for a population seen by its effect the
/// earliest it can have happened (`not_before_ns` of the `populate`).
fn populated_before_sync_end(pop: &PopulateRecord, paired: &PairedRecord) -> Result<()> {
    let end = paired.ts_ns;
    let (at, what) = if paired.latency_kind == LatencyKind::Exact {
        (paired.populated_ns, "populated_ns")
    } else {
        (pop.not_before_ns, "not_before_ns")
    };
    ensure!(
        at <= end,
        "slot {}: {what} {at} ns is {} ns after the end of the sync it is paired with: {paired:?}; populate: {pop:?}",
        paired.pop.slot,
        at - end
    );
    Ok(())
}

/// The sync paired with a population ended inside the kernel call that populated
/// (`[start_ns, end_ns]`, the module's ktime_get_ns() around memremap_pages()).
fn paired_inside(paired: &PairedRecord, start_ns: u64, end_ns: u64) -> Result<()> {
    let end = paired.ts_ns;
    ensure!(
        (start_ns..=end_ns).contains(&end),
        "slot {}: paired with a sync that ended at {end} ns, outside memremap_pages() [{start_ns}, {end_ns}]: {paired:?}",
        paired.pop.slot
    );
    Ok(())
}

/// A traced call's `[ts_ns, end_ns]`.
trait Span {
    fn span(&self) -> (u64, u64);
}

impl Span for SyncRecord {
    fn span(&self) -> (u64, u64) {
        (self.ts_ns, self.end_ns)
    }
}

impl Span for CallRecord {
    fn span(&self) -> (u64, u64) {
        (self.ts_ns, self.end_ns)
    }
}

/// A call's `[ts_ns, end_ns]` lies inside `[start_ns, end_ns]`.
fn inside(v: &impl Span, start_ns: u64, end_ns: u64) -> bool {
    let (a, b) = v.span();
    start_ns <= a && b <= end_ns
}

/// `devmap-32T`: the module's memremap_pages() of 128 MiB at 32 TiB with compound pages.
/// The kernel opens vmemmap slot 469 (synced only by `p4d_populate_kernel()`'s helper sync,
/// on kernels with "mm: introduce and use {pgd,p4d}_populate_kernel()") and direct-map slot
/// 337 (synced by `__kernel_physical_mapping_init()`).
pub fn check_devmap(o: &Output, kernel: KernelId) -> Result<()> {
    o.expect_exit("devmap", 0)?;
    let d = Last::of(o, "devmap")?;
    ensure!(
        d.get("mode")? == "devmap",
        "not a devmap line: {}",
        d.line()
    );
    ensure!(
        d.num("phys")? == AT_32T,
        "devmap not at 32 TiB: {}",
        d.line()
    );
    // What the kernel did, seen by the module in init_mm around the call.
    for (what, slot) in [("vmemmap", SLOT_VMEMMAP_32T), ("direct", SLOT_DIRECT_32T)] {
        ensure!(
            d.num(&format!("{what}_slot"))? == slot as u64
                && d.num(&format!("{what}_was"))? == 0
                && d.num(&format!("{what}_now"))? == 1,
            "memremap_pages() at 32 TiB did not open {what} slot {slot}: {}",
            d.line()
        );
    }
    let (start_ns, end_ns) = (d.num("start_ns")?, d.num("end_ns")?);

    o.expect_exit("run", 0)?;
    let layout = o.layouts("run")?;
    let present = layout
        .first()
        .map(|l| &l.present)
        .context("no layout record with present slots")?;
    for slot in [SLOT_VMEMMAP_32T, SLOT_DIRECT_32T] {
        ensure!(
            !present.contains(&slot),
            "slot {slot} already present when the run started: {present:?}"
        );
    }

    let helper = vmemmap_helper_sync(o, "run")?;
    ensure!(
        stack_has(&helper.stack, "memremap_pages"),
        "helper sync not called from memremap_pages(): {helper:?}"
    );
    ensure!(
        inside(&helper, start_ns, end_ns),
        "helper sync outside memremap_pages() [{start_ns}, {end_ns}]: {helper:?}"
    );

    let (vm_pop, vm) = one_population(o, "run", SLOT_VMEMMAP_32T, Region::Vmemmap)?;
    if kernel != KernelId::V6_1 {
        // The vmemmap populate path is traceable there.
        ensure!(
            vm.pop.source == Source::Helper && vm.latency_kind == LatencyKind::Exact,
            "vmemmap population not traced exactly: {vm:?}"
        );
    }
    populated_before_sync_end(&vm_pop, &vm)?;
    paired_inside(&vm, start_ns, end_ns)?;
    if let Some(section) = sections::populating_section(o, "run", kernel, AT_32T, BLOCK)? {
        sections::encloses(&section, &helper, &vm_pop)?;
    }

    let (dm_pop, dm) = one_population(o, "run", SLOT_DIRECT_32T, Region::DirectMap)?;
    populated_before_sync_end(&dm_pop, &dm)?;
    paired_inside(&dm, start_ns, end_ns)?;
    bounded_by_mapping(o, "run", SLOT_DIRECT_32T, AT_32T)?;

    no_unsynced(o, "run")?;
    check_devmap_calls(o, kernel)?;
    o.expect_exit("audit", 0)?;
    o.expect_exit("rmmod", 0)
}

/// The second memremap_pages() of the devmap scenario, at 32 TiB + 128 MiB (top-level entries
/// already present), traced with `--test-populate-calls`: the section call and the per-page
/// calls all go into the kernel's batches; nothing populated, nothing lost.
fn check_devmap_calls(o: &Output, kernel: KernelId) -> Result<()> {
    o.expect_exit("devmap-calls", 0)?;
    let d = Last::of(o, "devmap-calls")?;
    let phys = AT_32T + BLOCK;
    ensure!(
        d.num("phys")? == phys && d.num("vmemmap_was")? == 1 && d.num("direct_was")? == 1,
        "second devmap not at 32 TiB + 128 MiB over present slots: {}",
        d.line()
    );
    o.expect_exit("run-calls", 0)?;
    // 64 compound pages of 2 MiB, each with 8 pages of struct pages: 512
    // pages of memory map, each one call of both populate functions.
    let (calls, records) = check_batched(o, "run-calls", kernel, 512)?;
    println!("    devmap: {calls} vmemmap populate calls in {records} call records, none lost");
    sections::check_section_batched(o, "run-calls", kernel, phys, BLOCK)?;
    ensure!(
        o.populates("run-calls")?.is_empty(),
        "a population in the second devmap, whose top-level entries were present"
    );
    no_unsynced(o, "run-calls")
}

/// `hotadd-1G-32T`: one DIMM of 1 GiB (eight sections) at 32 TiB. Each new top-level entry is
/// one population, paired; the vmemmap one with a latency no longer than the helper sync's
/// window.
pub fn check_dimm_1g(o: &Output, kernel: KernelId, size: u64) -> Result<()> {
    o.expect_exit("hotadd", 0)?;
    // The whole DIMM is one arch_add_memory(): one init_memory_mapping() over it.
    let calls = o.calls("hotadd")?;
    let map = calls
        .iter()
        .find(|c| {
            c.function == Target::InitMemoryMapping
                && c.addr.0 == AT_32T
                && c.end.is_some_and(|e| e.0 == AT_32T + size)
        })
        .with_context(|| {
            format!(
                "no init_memory_mapping of the {} MiB DIMM at 32 TiB; calls: {calls:?}",
                size / MIB
            )
        })?;

    let helper = vmemmap_helper_sync(o, "hotadd")?;
    let (vm_pop, vm) = one_population(o, "hotadd", SLOT_VMEMMAP_32T, Region::Vmemmap)?;
    ensure!(
        vm.pop.source == Source::Helper && vm.latency_kind == LatencyKind::Exact,
        "vmemmap population not traced exactly: {vm:?}"
    );
    populated_before_sync_end(&vm_pop, &vm)?;
    // The window in which slot 469 was written: after the direct map was done
    // (arch_add_memory() maps, then add_pages()) and, where traced, inside the
    // __populate_section_memmap() call of the DIMM's first section, which makes the helper
    // sync; up to the helper sync's end.
    let mut floor = map.end_ns;
    let mut floor_what = "init_memory_mapping()'s return";
    if let Some(c) = sections::populating_section(o, "hotadd", kernel, AT_32T, BLOCK)? {
        sections::encloses(&c, &helper, &vm_pop)?;
        floor = floor.max(c.ts_ns);
        floor_what = "the entry of the __populate_section_memmap() call that syncs";
    }
    let (sync_at, sync_end) = helper.span();
    let latency = vm.latency_ns;
    ensure!(
        floor <= sync_at,
        "{floor_what} ({floor} ns) after the helper sync's entry: {helper:?}"
    );
    ensure!(
        latency <= sync_end - floor,
        "vmemmap latency {latency} ns exceeds the helper sync's window: its duration {} ns + {} ns from {floor_what} to its entry; paired: {vm:?}; helper sync: {helper:?}",
        sync_end - sync_at,
        sync_at - floor
    );

    let (dm_pop, dm) = one_population(o, "hotadd", SLOT_DIRECT_32T, Region::DirectMap)?;
    populated_before_sync_end(&dm_pop, &dm)?;
    bounded_by_mapping(o, "hotadd", SLOT_DIRECT_32T, AT_32T)?;
    no_unsynced(o, "hotadd")?;
    o.expect_exit("audit", 0)
}

/// `virtio-mem-512G`: the driver adds eight 128 MiB blocks at 512 GiB back to back. Only
/// the first opens direct-map slot 274: one population, paired, nothing unsynced.
pub fn check_virtio_mem(o: &Output, blocks: u64) -> Result<()> {
    o.expect_exit("plug", 0)?;
    let added: u64 = o
        .value("plug", "blocks_added")?
        .parse()
        .context("bad blocks_added")?;
    ensure!(
        added == blocks,
        "virtio-mem added {added} memory blocks, expected {blocks}"
    );
    o.expect_exit("run", 0)?;
    // Several block-sized additions into the slot, each its own init_memory_mapping().
    let slot = AT_512G..AT_512G + (512 << 30);
    let maps: Vec<CallRecord> = o
        .calls("run")?
        .into_iter()
        .filter(|c| c.function == Target::InitMemoryMapping && slot.contains(&c.addr.0))
        .collect();
    ensure!(
        maps.len() >= 2
            && maps.iter().all(|m| m
                .end
                .is_some_and(|e| e.0.checked_sub(m.addr.0) == Some(BLOCK))),
        "expected several block-sized init_memory_mapping calls in the new slot: {maps:?}"
    );
    let (pop, p) = one_population(o, "run", SLOT_DIRECT_512G, Region::DirectMap)?;
    populated_before_sync_end(&pop, &p)?;
    bounded_by_mapping(o, "run", SLOT_DIRECT_512G, AT_512G)?;
    no_unsynced(o, "run")?;
    o.expect_exit("audit", 0)
}
