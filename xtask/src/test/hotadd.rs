//! Checks of the probe, idle and hot-add scenarios (real DIMM hot-add
//! through QMP on real Debian kernels).

use anyhow::{bail, ensure, Context as _, Result};
use sync_trace::{
    record::probe::{ProbeReport, TargetReport},
    record::{Caller, LatencyKind, PairedRecord, Record, Source, SyncRecord},
};
use sync_trace_common::{Paging, Region, Target};

use super::output::{stack_has, Output};
use super::sections;
use crate::vm::KernelId;

/// 4-level, no KASLR (docs/kernel.md, "Layout and KASLR"): the vmemmap slot a DIMM at 32 TiB
/// creates (469), the direct-map slot of a DIMM at 512 GiB (274) and of the
/// one at 32 TiB (337).
pub const VMEMMAP_32T: u64 = 0xffffea8000000000;
pub const SLOT_VMEMMAP_32T: usize = 469;
pub const SLOT_DIRECT_32T: usize = 337;
pub const SLOT_DIRECT_512G: usize = 274;
/// Physical addresses of the DIMMs.
pub const AT_512G: u64 = 0x80_0000_0000;
pub const AT_32T: u64 = 0x2000_0000_0000;
/// 5-level, no KASLR: vmemmap_base.
const VMEMMAP_5LEVEL: u64 = 0xffd4000000000000;

fn target<'a>(probe: &'a ProbeReport, symbol: &str) -> Result<&'a TargetReport> {
    probe
        .target(symbol)
        .with_context(|| format!("probe lists no target {symbol}: {probe:?}"))
}

pub fn check_probe(o: &Output, kernel: KernelId) -> Result<()> {
    o.expect_exit("probe", 0)?;
    let p = o.probe("probe")?;
    for sync in ["arch_sync_kernel_mappings", "sync_global_pgds"] {
        let t = target(&p, sync)?;
        ensure!(t.attached, "{sync} not attached: {t:?}");
    }
    // __populate_section_memmap() and the per-page vmemmap populate functions below it are
    // notrace on 6.1; from 6.11 the section one is attached and covers the others.
    let section = target(&p, "__populate_section_memmap")?;
    for caller in [
        "__populate_section_memmap",
        "vmemmap_p4d_populate",
        "vmemmap_pgd_populate",
    ] {
        let t = target(&p, caller)?;
        let reason = t.reason.as_deref().unwrap_or("");
        if kernel == KernelId::V6_1 {
            ensure!(
                !t.attached,
                "{caller} attached on 6.1, where it is notrace: {t:?}"
            );
            ensure!(
                reason.contains("notrace"),
                "{caller} refused without naming notrace: {t:?}"
            );
        } else if caller == "__populate_section_memmap" {
            ensure!(t.attached, "{caller} not attached on {kernel:?}: {t:?}");
        } else {
            ensure!(
                !t.attached && reason.contains("covered per section") && section.attached,
                "{caller} attached beside __populate_section_memmap, or left out without it: {t:?}"
            );
        }
    }
    Ok(())
}

/// The events that page-table activity produces (`sync`, `populate`,
/// `paired`, `unsynced`); none may appear at idle.
fn is_activity(r: &Record) -> bool {
    matches!(
        r,
        Record::Sync(_) | Record::Populate(_) | Record::Paired(_) | Record::Unsynced(_)
    )
}

pub fn check_idle(o: &Output) -> Result<()> {
    o.expect_exit("idle", 0)?;
    let recs = o.records("idle")?;
    ensure!(
        recs.iter().any(|r| matches!(r, Record::Summary(_))),
        "idle run printed no summary"
    );
    if let Some(r) = recs.iter().find(|r| is_activity(r)) {
        bail!("activity in 10 s of idle: {r:?}");
    }
    Ok(())
}

/// A `populate` of `slot` and its `paired`; returns the paired record.
pub fn populated_and_paired(
    o: &Output,
    step: &str,
    slot: usize,
    region: Region,
) -> Result<PairedRecord> {
    let pops = o.populates(step)?;
    let p = pops
        .iter()
        .find(|p| p.pop.slot == slot)
        .with_context(|| format!("no populate of slot {slot}; populate events: {pops:?}"))?;
    ensure!(
        p.pop.region == region,
        "slot {slot} is not {}: {p:?}",
        region.name()
    );
    let paired = o.paired(step)?;
    paired
        .into_iter()
        .find(|p| p.pop.slot == slot)
        .with_context(|| format!("populate of slot {slot} never paired with a sync"))
}

/// The traced `init_memory_mapping()` of the DIMM at `phys` bounds when the
/// direct-map entry of `slot` appeared (`not_before_ns`).
pub fn bounded_by_mapping(o: &Output, step: &str, slot: usize, phys: u64) -> Result<()> {
    let calls = o.calls(step)?;
    let map = calls
        .iter()
        .find(|c| c.function == Target::InitMemoryMapping && c.addr.0 == phys)
        .with_context(|| format!("no init_memory_mapping of {phys:#x} traced; calls: {calls:?}"))?;
    let pops = o.populates(step)?;
    let pop = pops
        .iter()
        .find(|p| p.pop.slot == slot)
        .with_context(|| format!("no populate of slot {slot}"))?;
    ensure!(
        pop.not_before_ns >= map.ts_ns,
        "population of slot {slot} not bounded by the init_memory_mapping entry: {pop:?} / {map:?}"
    );
    Ok(())
}

pub fn no_unsynced(o: &Output, step: &str) -> Result<()> {
    if let Some(u) = o.unsynced(step)?.first() {
        bail!("unexpected unsynced: {u:?}");
    }
    Ok(())
}

/// The kernel programs' diagnostic records reach the daemon's log (stderr).
fn check_kernel_log(o: &Output) -> Result<()> {
    let want = format!(
        "forced kernel-side diagnostic at entry, start=0x{:x}",
        VMEMMAP_32T
    );
    let found = o
        .lines_of("hotadd")?
        .iter()
        .any(|l| l.starts_with("stderr: ") && l.contains("sync_trace_ebpf") && l.contains(&want));
    ensure!(
        found,
        "the daemon's log lacks the kernel-side message `{want}`"
    );
    Ok(())
}

/// The `arch_sync_kernel_mappings(a, a)` of `p4d_populate_kernel()` for the new vmemmap slot
/// at 32 TiB, called from the vmemmap populate path.
pub fn vmemmap_helper_sync(o: &Output, step: &str) -> Result<SyncRecord> {
    let syncs = o.syncs(step)?;
    let helper = syncs
        .iter()
        .find(|s| s.function == Target::ArchSyncKernelMappings && s.helper)
        .with_context(|| format!("no arch_sync_kernel_mappings(a, a) call; syncs: {syncs:?}"))?;
    ensure!(
        helper.start.0 == VMEMMAP_32T && helper.end.0 == VMEMMAP_32T,
        "helper sync not at the new vmemmap slot {VMEMMAP_32T:#x}: {helper:?}"
    );
    ensure!(
        stack_has(&helper.stack, "vmemmap_p4d_populate"),
        "helper sync stack lacks the vmemmap populate path: {helper:?}"
    );
    Ok(helper.clone())
}

pub fn check_hotadd_32t(o: &Output, kernel: KernelId) -> Result<()> {
    o.expect_exit("hotadd", 0)?;
    check_kernel_log(o)?;
    let helper = vmemmap_helper_sync(o, "hotadd")?;
    let vm = populated_and_paired(o, "hotadd", SLOT_VMEMMAP_32T, Region::Vmemmap)?;
    ensure!(
        vm.pop.source == Source::Helper && vm.latency_kind == LatencyKind::Exact,
        "vmemmap population not traced exactly: {vm:?}"
    );
    let pop = o
        .populates("hotadd")?
        .into_iter()
        .find(|p| p.pop.slot == SLOT_VMEMMAP_32T)
        .context("no populate record of the vmemmap slot")?;
    // The DIMM is one section (128 MiB).
    if let Some(s) = sections::populating_section(o, "hotadd", kernel, AT_32T, 128 << 20)? {
        sections::encloses(&s, &helper, &pop)?;
    }
    populated_and_paired(o, "hotadd", SLOT_DIRECT_32T, Region::DirectMap)?;
    bounded_by_mapping(o, "hotadd", SLOT_DIRECT_32T, AT_32T)?;
    no_unsynced(o, "hotadd")?;
    o.expect_exit("audit", 0)
}

pub fn check_hotadd_512g(o: &Output) -> Result<()> {
    o.expect_exit("hotadd", 0)?;
    let slot_start = 0xffff890000000000u64;
    let syncs = o.syncs("hotadd")?;
    let direct = syncs
        .iter()
        .find(|s| {
            s.function == Target::SyncGlobalPgds
                && (slot_start..slot_start + (1 << 39)).contains(&s.start.0)
        })
        .with_context(|| {
            format!("no sync_global_pgds over the new direct-map range; syncs: {syncs:?}")
        })?;
    ensure!(
        direct.caller == Caller::DirectMap,
        "direct-map sync not attributed to the direct map: {direct:?}"
    );
    ensure!(
        stack_has(&direct.stack, "__kernel_physical_mapping_init"),
        "direct-map sync stack lacks __kernel_physical_mapping_init: {direct:?}"
    );
    populated_and_paired(o, "hotadd", SLOT_DIRECT_512G, Region::DirectMap)?;
    bounded_by_mapping(o, "hotadd", SLOT_DIRECT_512G, AT_512G)?;
    no_unsynced(o, "hotadd")?;
    o.expect_exit("audit", 0)
}

/// 5-level: the DIMM at 512 GiB lands in existing top-level entries; only
/// second-level (P4D) entries are new, which need no sync and are never flagged.
pub fn check_hotadd_5level(o: &Output) -> Result<()> {
    o.expect_exit("hotadd", 0)?;
    let layout = o.layouts("hotadd")?;
    ensure!(
        layout.first().is_some_and(|l| l.paging == Paging::Five),
        "not 5-level: {layout:?}"
    );
    let syncs = o.syncs("hotadd")?;
    ensure!(
        syncs.iter().any(|s| s.function == Target::SyncGlobalPgds
            && (VMEMMAP_5LEVEL..VMEMMAP_5LEVEL + (1 << 49)).contains(&s.start.0)),
        "no sync_global_pgds over the vmemmap range; syncs: {syncs:?}"
    );
    if let Some(p) = o.populates("hotadd")?.first() {
        bail!("a top-level population under 5-level, where the DIMM needs none: {p:?}");
    }
    no_unsynced(o, "hotadd")?;
    o.expect_exit("audit", 0)
}
