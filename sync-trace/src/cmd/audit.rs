//! `sync-trace audit`: compares every PGD on pgd_list with init_mm now.
//! Exit 0 when all agree, 3 when any lacks an entry or disagrees, 1 on error.

use crate::{
    kernel::{facts::KernelFacts, privilege, scan::Scanner, slot_set::SlotSet},
    model::detect::Detector,
    output::sink::Sink,
    record::{Hex, Record, Trigger},
};

/// Exit status when a PGD lacks an entry or points elsewhere.
pub const EXIT_DISAGREE: i32 = 3;

/// The scan object's sweep period; `audit` never arms the sweep.
const DEFAULT_SWEEP: std::time::Duration = std::time::Duration::from_millis(75);

pub fn audit(json: bool, max_pgds: u32) -> anyhow::Result<i32> {
    privilege::preflight().map_err(anyhow::Error::msg)?;
    let facts = KernelFacts::gather().map_err(anyhow::Error::msg)?;
    let mut scanner = Scanner::open(&facts.symbols, max_pgds, DEFAULT_SWEEP)?;
    // The table first, for the layout: the walks compare the kernel slots.
    let table = scanner.table()?;
    let snap = scanner.verified_walk_of(&SlotSet::kernel(&table.layout()))?;
    let mut detector = Detector::default();
    let layout = detector.baseline(&snap, facts.symbols.has_kasan());
    let mut out = Vec::new();
    detector.verify(&snap, Trigger::Audit, &mut out);
    let Some(Record::Verify(v)) = out.first().cloned() else {
        return Err(anyhow::anyhow!("the page-table walk produced no result"));
    };
    let mut sink = Sink::stdout(json);
    if !json {
        println!(
            "audit: {}-level paging, kernel slots {}..511 from page_offset_base {}; init_mm has {} present",
            layout.paging.levels(),
            layout.kernel_boundary(),
            Hex(layout.page_offset_base),
            v.slots_checked,
        );
        println!(
            "audit: compared {} PGDs on pgd_list with init_mm ({}){}",
            v.pgds_total,
            if v.complete {
                "whole list"
            } else if snap.truncated() {
                "the walk stopped at --max-pgds"
            } else {
                "the walk was cut short: the list changed under it every time"
            },
            if snap.confirmed() {
                ", twice as they disagreed"
            } else {
                ""
            }
        );
    }
    for r in &out {
        sink.emit(r)?;
    }
    if snap.truncated() {
        return Err(anyhow::anyhow!(
            "pgd_list has more than --max-pgds {max_pgds} PGDs; raise --max-pgds"
        ));
    }
    if !v.complete {
        return Err(anyhow::anyhow!(
            "could not walk the whole pgd_list (it changed under every walk); run audit again"
        ));
    }
    Ok(if v.ok { 0 } else { EXIT_DISAGREE })
}
