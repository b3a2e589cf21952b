//! One verification pass over `n` PGDs, simulated: the walk of pgd_list
//! the scan program makes in the kernel (pgtable_scan.bpf.c, `st_walk_one`:
//! per PGD, the kernel half of its top-level table read and compared with
//! init_mm's in the slots asked for), then the userspace side of the pass
//! as `run` makes it (`verify_walks`, the model's `on_scan`, the sink).
//!
//! The simulated kernel keeps 1024 distinct tables (2 MiB, more than a
//! core's L2 cache) that the PGDs point to in turn: a real kernel has a
//! 4 KiB page per PGD, so per-PGD cache misses are if anything more
//! frequent there; the guest figures measure the real walk.

use std::{io, sync::Arc};

use anyhow::ensure;
use sync_trace::{
    kernel::verified_walk::verify_walks,
    model::Model,
    output::{
        metrics::{Context, Metrics},
        sink::Sink,
    },
    record::{Record, Trigger},
};
use sync_trace_common::raw::{RawScan, HALF, KERNEL_HALF, PTRS, SCAN_DONE, SCAN_WALKED};

use crate::{
    clock::cpu_secs,
    stream::{self, POP_SLOT},
};

/// Distinct simulated PGD tables (kernel halves).
const TABLES: usize = 1024;
/// `ST_FEW`: up to this many slots are read one by one, more as a whole half.
const FEW: usize = 8;
/// Table-address bits an entry's comparison looks at (`w->mask`: the
/// physical address bits of a 4 KiB-aligned table).
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
const PRESENT: u64 = 1;

/// init_mm's table and the PGDs on pgd_list (each an index into `tables`).
struct Kernel {
    top: [u64; PTRS],
    tables: Vec<[u64; HALF]>,
    pgd_list: Vec<u32>,
}

impl Kernel {
    fn new(pgds: usize, top: [u64; PTRS]) -> Self {
        let mut half = [0; HALF];
        half.copy_from_slice(&top[KERNEL_HALF..]);
        Self {
            top,
            tables: vec![half; TABLES],
            // A stride co-prime with TABLES: consecutive PGDs are far apart.
            pgd_list: (0..pgds).map(|i| ((i * 389) % TABLES) as u32).collect(),
        }
    }

    /// `st_walk_one` for every PGD: counts per slot asked for (`list`).
    fn walk(&self, base: &RawScan, list: &[usize]) -> RawScan {
        let mut s = *base;
        s.missing = [0; HALF];
        s.mismatch = [0; HALF];
        let count = |s: &mut RawScan, idx: usize, tgt: u64| {
            let r = self.top[KERNEL_HALF + idx];
            if r & PRESENT == 0 {
                return;
            }
            if tgt & PRESENT == 0 {
                s.missing[idx] += 1;
            } else if (r ^ tgt) & ADDR_MASK != 0 {
                s.mismatch[idx] += 1;
            }
        };
        let mut h = [0u64; HALF];
        for &pgd in &self.pgd_list {
            let table = &self.tables[pgd as usize];
            if list.len() <= FEW {
                for &idx in list {
                    count(&mut s, idx, table[idx]);
                }
            } else {
                // bpf_probe_read_kernel of the whole half into scratch.
                h.copy_from_slice(table);
                for &idx in list {
                    count(&mut s, idx, h[idx]);
                }
            }
        }
        s.pgds = self.pgd_list.len() as u32;
        s.status = SCAN_DONE | SCAN_WALKED;
        s
    }
}

/// ns per PGD of one pass over `pgds` PGDs (the best of `reps`), with the
/// check that it found every PGD in place.
pub fn ns_per_pgd(pgds: usize, reps: usize) -> anyhow::Result<f64> {
    let table = stream::table_scan(stream_now(), true);
    let kernel = Kernel::new(pgds, table.raw.top);
    let mut model = Model::new(crate::pipeline::GRACE_NS);
    let layout = model.baseline(&table, false);
    let metrics = Metrics::new(&Context {
        kernel: "synthetic",
        paging: layout.paging,
        probes: &[],
    });
    let mut sink = Sink::writer(true, Box::new(io::sink())).with_metrics(Some(Arc::new(metrics)));
    let mut out = Vec::new();
    let mut best = f64::INFINITY;
    for rep in 0..reps {
        let mut base = stream::clean_walk(stream_now() + rep as u64 * 1_000_000, 0, true);
        // The slots a full walk compares: init_mm's present kernel slots.
        let list: Vec<usize> = (layout.kernel_boundary().max(KERNEL_HALF)..PTRS)
            .filter(|&s| base.raw.top[s] & PRESENT != 0)
            .map(|s| s - KERNEL_HALF)
            .collect();
        base.raw.nslots = list.len() as u32;
        let t0 = cpu_secs();
        let snap = verify_walks(|| {
            Ok(sync_trace::kernel::snapshot::Snapshot {
                raw: kernel.walk(&base.raw, &list),
            })
        })?;
        model.on_scan(&snap, Trigger::Audit, &mut out);
        let verify = out.iter().find_map(|r| match r {
            Record::Verify(v) => Some(v.clone()),
            _ => None,
        });
        sink.emit_all(&mut out)?;
        best = best.min(cpu_secs() - t0);
        let Some(v) = verify else {
            anyhow::bail!("a pass over {pgds} PGDs wrote no verify record");
        };
        ensure!(
            v.ok && v.pgds_total as usize == pgds && v.compared(POP_SLOT),
            "a pass over {pgds} clean PGDs: {v:?}"
        );
    }
    Ok(best * 1e9 / pgds as f64)
}

fn stream_now() -> u64 {
    crate::pipeline::START_NS
}
