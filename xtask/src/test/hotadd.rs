//! Checks of the probe, idle and hot-add scenarios (real DIMM hot-add
//! through QMP on real Debian kernels).

use anyhow::{bail, ensure, Context as _, Result};
use serde_json::Value;

use super::output::{addr, stack_has, Output};
use crate::vm::KernelId;

/// 4-level, no KASLR (kernel-notes §5.1): the vmemmap slot a DIMM at 32 TiB
/// creates (469), the direct-map slot of a DIMM at 512 GiB (274) and of the
/// one at 32 TiB (337).
pub const VMEMMAP_32T: u64 = 0xffffea8000000000;
pub const SLOT_VMEMMAP_32T: u64 = 469;
pub const SLOT_DIRECT_32T: u64 = 337;
pub const SLOT_DIRECT_512G: u64 = 274;
/// Physical addresses of the DIMMs.
pub const AT_512G: u64 = 0x80_0000_0000;
pub const AT_32T: u64 = 0x2000_0000_0000;
/// 5-level, no KASLR: vmemmap_base.
const VMEMMAP_5LEVEL: u64 = 0xffd4000000000000;

fn target<'a>(probe: &'a Value, symbol: &str) -> Result<&'a Value> {
    probe["targets"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["symbol"] == symbol))
        .with_context(|| format!("probe lists no target {symbol}: {probe}"))
}

pub fn check_probe(o: &Output, kernel: KernelId) -> Result<()> {
    o.expect_exit("probe", 0)?;
    let p = o
        .json("probe")?
        .into_iter()
        .next()
        .context("probe printed no JSON")?;
    for sync in ["arch_sync_kernel_mappings", "sync_global_pgds"] {
        let t = target(&p, sync)?;
        ensure!(t["attached"] == true, "{sync} not attached: {t}");
    }
    for caller in ["vmemmap_p4d_populate", "vmemmap_pgd_populate"] {
        let t = target(&p, caller)?;
        if kernel == KernelId::V6_1 {
            ensure!(
                t["attached"] == false,
                "{caller} attached on 6.1, where it is notrace: {t}"
            );
            let reason = t["reason"].as_str().unwrap_or("");
            ensure!(
                reason.contains("notrace"),
                "{caller} refused without naming notrace: {t}"
            );
        } else {
            ensure!(
                t["attached"] == true,
                "{caller} not attached on {kernel:?}: {t}"
            );
        }
    }
    Ok(())
}

/// The events that page-table activity produces; none may appear at idle.
const ACTIVITY: [&str; 4] = ["sync", "populate", "paired", "unsynced"];

pub fn check_idle(o: &Output) -> Result<()> {
    o.expect_exit("idle", 0)?;
    let recs = o.json("idle")?;
    ensure!(
        recs.iter().any(|r| r["event"] == "summary"),
        "idle run printed no summary"
    );
    if let Some(r) = recs
        .iter()
        .find(|r| ACTIVITY.iter().any(|a| r["event"] == *a))
    {
        bail!("activity in 10 s of idle: {r}");
    }
    Ok(())
}

/// A `populate` of `slot` and its `paired`; returns the paired record.
pub fn populated_and_paired(o: &Output, step: &str, slot: u64, region: &str) -> Result<Value> {
    let pops = o.events(step, "populate")?;
    let p = pops
        .iter()
        .find(|p| p["slot"] == slot)
        .with_context(|| format!("no populate of slot {slot}; populate events: {pops:?}"))?;
    ensure!(p["region"] == region, "slot {slot} is not {region}: {p}");
    let paired = o.events(step, "paired")?;
    paired
        .into_iter()
        .find(|p| p["slot"] == slot)
        .with_context(|| format!("populate of slot {slot} never paired with a sync"))
}

/// The traced `init_memory_mapping()` of the DIMM at `phys` bounds when the
/// direct-map entry of `slot` appeared (`not_before_ns`).
pub fn bounded_by_mapping(o: &Output, step: &str, slot: u64, phys: u64) -> Result<()> {
    let calls = o.events(step, "call")?;
    let map = calls
        .iter()
        .find(|c| {
            c["function"] == "init_memory_mapping" && addr(c, "addr").is_ok_and(|a| a == phys)
        })
        .with_context(|| format!("no init_memory_mapping of {phys:#x} traced; calls: {calls:?}"))?;
    let pops = o.events(step, "populate")?;
    let pop = pops
        .iter()
        .find(|p| p["slot"] == slot)
        .with_context(|| format!("no populate of slot {slot}"))?;
    ensure!(
        pop["not_before_ns"].as_u64() >= map["ts_ns"].as_u64(),
        "population of slot {slot} not bounded by the init_memory_mapping entry: {pop} / {map}"
    );
    Ok(())
}

pub fn no_unsynced(o: &Output, step: &str) -> Result<()> {
    if let Some(u) = o.events(step, "unsynced")?.first() {
        bail!("unexpected unsynced: {u}");
    }
    Ok(())
}

/// The kernel programs' aya-log records reach the daemon's log (stderr).
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
pub fn vmemmap_helper_sync(o: &Output, step: &str) -> Result<Value> {
    let syncs = o.events(step, "sync")?;
    let helper = syncs
        .iter()
        .find(|s| s["function"] == "arch_sync_kernel_mappings" && s["helper"] == true)
        .with_context(|| format!("no arch_sync_kernel_mappings(a, a) call; syncs: {syncs:?}"))?;
    ensure!(
        addr(helper, "start")? == VMEMMAP_32T && addr(helper, "end")? == VMEMMAP_32T,
        "helper sync not at the new vmemmap slot {VMEMMAP_32T:#x}: {helper}"
    );
    ensure!(
        stack_has(helper, "vmemmap_p4d_populate"),
        "helper sync stack lacks the vmemmap populate path: {helper}"
    );
    Ok(helper.clone())
}

pub fn check_hotadd_32t(o: &Output) -> Result<()> {
    o.expect_exit("hotadd", 0)?;
    check_kernel_log(o)?;
    vmemmap_helper_sync(o, "hotadd")?;
    let vm = populated_and_paired(o, "hotadd", SLOT_VMEMMAP_32T, "vmemmap")?;
    ensure!(
        vm["source"] == "helper" && vm["latency_kind"] == "exact",
        "vmemmap population not traced exactly: {vm}"
    );
    populated_and_paired(o, "hotadd", SLOT_DIRECT_32T, "direct_map")?;
    bounded_by_mapping(o, "hotadd", SLOT_DIRECT_32T, AT_32T)?;
    no_unsynced(o, "hotadd")?;
    o.expect_exit("audit", 0)
}

pub fn check_hotadd_512g(o: &Output) -> Result<()> {
    o.expect_exit("hotadd", 0)?;
    let slot_start = 0xffff890000000000u64;
    let syncs = o.events("hotadd", "sync")?;
    let direct = syncs
        .iter()
        .find(|s| {
            s["function"] == "sync_global_pgds"
                && addr(s, "start").is_ok_and(|a| (slot_start..slot_start + (1 << 39)).contains(&a))
        })
        .with_context(|| {
            format!("no sync_global_pgds over the new direct-map range; syncs: {syncs:?}")
        })?;
    ensure!(
        direct["caller"] == "direct_map",
        "direct-map sync not attributed to the direct map: {direct}"
    );
    ensure!(
        stack_has(direct, "__kernel_physical_mapping_init"),
        "direct-map sync stack lacks __kernel_physical_mapping_init: {direct}"
    );
    populated_and_paired(o, "hotadd", SLOT_DIRECT_512G, "direct_map")?;
    bounded_by_mapping(o, "hotadd", SLOT_DIRECT_512G, AT_512G)?;
    no_unsynced(o, "hotadd")?;
    o.expect_exit("audit", 0)
}

/// 5-level: the DIMM at 512 GiB lands in existing top-level entries; only
/// second-level (P4D) entries are new, which need no sync and are never flagged.
pub fn check_hotadd_5level(o: &Output) -> Result<()> {
    o.expect_exit("hotadd", 0)?;
    let layout = o.events("hotadd", "layout")?;
    ensure!(
        layout.first().is_some_and(|l| l["paging"] == "5"),
        "not 5-level: {layout:?}"
    );
    let syncs = o.events("hotadd", "sync")?;
    ensure!(
        syncs.iter().any(|s| s["function"] == "sync_global_pgds"
            && addr(s, "start")
                .is_ok_and(|a| (VMEMMAP_5LEVEL..VMEMMAP_5LEVEL + (1 << 49)).contains(&a))),
        "no sync_global_pgds over the vmemmap range; syncs: {syncs:?}"
    );
    if let Some(p) = o.events("hotadd", "populate")?.first() {
        bail!("a top-level population under 5-level, where the DIMM needs none: {p}");
    }
    no_unsynced(o, "hotadd")?;
    o.expect_exit("audit", 0)
}
