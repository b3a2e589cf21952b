//! `__populate_section_memmap()` calls: where it is traced (6.11 and later), every vmemmap
//! population happens inside one, and `run` attaches it instead of the per-page
//! `vmemmap_pgd_populate()`/`vmemmap_p4d_populate()` (one probe pair per memory section).
//! Its `call` record names the memory map it makes: `vmemmap_base + pfn * sizeof(struct
//! page)`, to the end of the pages'.

use anyhow::{ensure, Context as _, Result};
use sync_trace::record::{CallRecord, PopulateRecord, Record, SyncRecord};
use sync_trace_common::Target;

use super::output::{of_kind, Output};
use crate::vm::KernelId;

/// 4-level, no KASLR: `vmemmap_base`.
const VMEMMAP_BASE: u64 = 0xffffea0000000000;
/// `sizeof(struct page)` in the Debian kernels the guests run (x86_64, no debug options).
const STRUCT_PAGE: u64 = 64;
const PAGE: u64 = 4096;

/// The memory map of physical `[phys, phys + size)` under 4-level paging without KASLR.
pub fn memmap_of(phys: u64, size: u64) -> (u64, u64) {
    let at = |p: u64| VMEMMAP_BASE + p / PAGE * STRUCT_PAGE;
    (at(phys), at(phys + size))
}

/// Whether the kernel traces `__populate_section_memmap()` (`__meminit` is notrace before
/// 6.11).
pub fn traced(kernel: KernelId) -> bool {
    !matches!(kernel, KernelId::V6_1 | KernelId::V6_1Reverted)
}

fn section_calls(recs: &[Record]) -> Vec<CallRecord> {
    of_kind::<CallRecord>(recs)
        .into_iter()
        .filter(|c| c.function == Target::PopulateSectionMemmap)
        .collect()
}

fn per_page_calls(recs: &[Record]) -> Vec<CallRecord> {
    of_kind::<CallRecord>(recs)
        .into_iter()
        .filter(|c| c.function.is_per_page_vmemmap())
        .collect()
}

/// The section call that made the memory map of `[phys, phys + size)`, traced alone (its
/// top-level entry was empty), in a run without `--test-populate-calls`: no per-page
/// vmemmap call is traced beside it. `None` where the function is notrace (then no
/// record of it may appear).
pub fn populating_section(
    o: &Output,
    step: &str,
    kernel: KernelId,
    phys: u64,
    size: u64,
) -> Result<Option<CallRecord>> {
    let recs = o.records(step)?;
    populating_in(&recs, traced(kernel), memmap_of(phys, size))
}

fn populating_in(recs: &[Record], traced: bool, memmap: (u64, u64)) -> Result<Option<CallRecord>> {
    let sections = section_calls(recs);
    let per_page = per_page_calls(recs);
    ensure!(
        per_page.is_empty(),
        "per-page vmemmap populate calls traced where __populate_section_memmap covers them: {per_page:?}"
    );
    if !traced {
        ensure!(
            sections.is_empty(),
            "__populate_section_memmap traced where it is notrace: {sections:?}"
        );
        return Ok(None);
    }
    let c = sections
        .iter()
        .find(|c| c.calls.is_none() && c.addr.0 == memmap.0)
        .with_context(|| {
            format!(
                "no __populate_section_memmap call record over the memory map at {:#x}; section records: {sections:?}",
                memmap.0
            )
        })?;
    ensure!(
        c.end.map(|e| e.0) == Some(memmap.1) && c.entry_seen,
        "__populate_section_memmap record not over [{:#x}, {:#x}) with its entry: {c:?}",
        memmap.0,
        memmap.1
    );
    Ok(Some(c.clone()))
}

/// The helper sync of the new slot ran inside the section call, on its thread; the
/// population is bounded below by the call's entry (the model took it as evidence).
pub fn encloses(section: &CallRecord, helper: &SyncRecord, pop: &PopulateRecord) -> Result<()> {
    ensure!(
        section.task.tid == helper.task.tid
            && section.ts_ns <= helper.ts_ns
            && helper.end_ns <= section.end_ns,
        "helper sync not inside the __populate_section_memmap call: {helper:?}; call: {section:?}"
    );
    ensure!(
        pop.not_before_ns >= section.ts_ns,
        "population not bounded by the section call's entry ({} ns): {pop:?}",
        section.ts_ns
    );
    Ok(())
}

/// A section call over top-level entries already present went into a batch: a `call`
/// record counting it, over the memory map of `[phys, phys + size)`, and no call record of
/// its own.
pub fn check_section_batched(
    o: &Output,
    step: &str,
    kernel: KernelId,
    phys: u64,
    size: u64,
) -> Result<()> {
    let recs = o.records(step)?;
    batched_in(&recs, traced(kernel), memmap_of(phys, size))
}

fn batched_in(recs: &[Record], traced: bool, (start, end): (u64, u64)) -> Result<()> {
    let sections = section_calls(recs);
    if !traced {
        ensure!(
            sections.is_empty(),
            "__populate_section_memmap traced where it is notrace: {sections:?}"
        );
        return Ok(());
    }
    let alone: Vec<&CallRecord> = sections.iter().filter(|c| c.calls.is_none()).collect();
    ensure!(
        alone.is_empty(),
        "a section call over present top-level entries traced alone: {alone:?}"
    );
    ensure!(
        sections.iter().any(|c| {
            let (a, b) = c.covered();
            a <= start && end - 1 <= b
        }),
        "no batch of __populate_section_memmap calls over [{start:#x}, {end:#x}): {sections:?}"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use sync_trace::record::{Hex, Task};
    use sync_trace_common::Method;

    use super::*;

    const AT_32T: u64 = 0x2000_0000_0000;
    const SECTION: u64 = 128 << 20;

    fn call(function: Target, addr: u64, end: Option<u64>, calls: Option<u32>) -> Record {
        Record::Call(CallRecord {
            ts_ns: 1,
            end_ns: 2,
            duration_ns: 1,
            task: Task::default(),
            function,
            addr: Hex(addr),
            end: end.map(Hex),
            method: Method::Fentry,
            entry_seen: true,
            stack: Default::default(),
            calls,
            addr_last: calls.map(|_| Hex(end.unwrap_or(addr) - 1)),
        })
    }

    #[test]
    fn the_memory_map_of_32_tib() {
        assert_eq!(
            memmap_of(AT_32T, SECTION),
            (0xffffea8000000000, 0xffffea8000200000)
        );
    }

    #[test]
    fn a_populating_section_is_found_and_per_page_calls_fail() {
        let (a, b) = memmap_of(AT_32T, SECTION);
        let sec = call(Target::PopulateSectionMemmap, a, Some(b), None);
        assert!(populating_in(std::slice::from_ref(&sec), true, (a, b))
            .unwrap()
            .is_some());
        // Wrong bounds, a batch, nothing, or per-page calls beside it: all fail.
        let off = call(Target::PopulateSectionMemmap, a, Some(b + PAGE), None);
        assert!(populating_in(&[off], true, (a, b)).is_err());
        assert!(populating_in(&[], true, (a, b)).is_err());
        let page = call(Target::VmemmapP4dPopulate, a, None, None);
        assert!(populating_in(&[sec.clone(), page], true, (a, b)).is_err());
        // Notrace: nothing may appear.
        assert!(populating_in(&[], false, (a, b)).unwrap().is_none());
        assert!(populating_in(&[sec], false, (a, b)).is_err());
    }

    #[test]
    fn a_section_over_present_entries_must_be_batched() {
        let (a, b) = memmap_of(AT_32T + SECTION, SECTION);
        let mut batch = call(Target::PopulateSectionMemmap, a, None, Some(1));
        if let Record::Call(c) = &mut batch {
            c.addr_last = Some(Hex(b - 1));
        }
        assert!(batched_in(std::slice::from_ref(&batch), true, (a, b)).is_ok());
        let alone = call(Target::PopulateSectionMemmap, a, Some(b), None);
        assert!(batched_in(&[batch.clone(), alone], true, (a, b)).is_err());
        assert!(batched_in(&[], true, (a, b)).is_err());
        assert!(batched_in(&[], false, (a, b)).is_ok());
        assert!(batched_in(&[batch], false, (a, b)).is_err());
    }
}
