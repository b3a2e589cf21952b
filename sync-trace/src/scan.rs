//! Runs the page-table scan program on demand (BPF_PROG_TEST_RUN of a raw
//! tracepoint program: nothing is attached) and reads its result.

use anyhow::{anyhow, Context as _};
use aya::{
    maps::{Array, MapData},
    programs::{RawTracePoint, RawTracePointRunOptions, TestRun},
    Ebpf, EbpfLoader, Pod,
};
use sync_trace_common::raw::{self, RawScan};

use crate::{kallsyms::Kallsyms, snapshot::Snapshot};

/// `RawScan` as a map value.
#[derive(Clone, Copy)]
#[repr(transparent)]
struct ScanValue(RawScan);
// SAFETY: RawScan is repr(C) plain data; every bit pattern is valid.
unsafe impl Pod for ScanValue {}

/// Walks compared before a disagreement is believed (kernel-notes §7.2: the
/// list can change under the walk).
const CONFIRM_WALKS: usize = 2;

pub struct Scanner {
    ebpf: Ebpf,
    result: Array<MapData, ScanValue>,
}

/// Kernel symbols the scan reads: (global knob, symbol, required).
const SYMBOLS: [(&str, &str, bool); 7] = [
    (raw::GLOBAL_INIT_TOP_PGT, "init_top_pgt", true),
    (raw::GLOBAL_PGD_LIST, "pgd_list", true),
    (raw::GLOBAL_PAGE_OFFSET_BASE, "page_offset_base", true),
    (raw::GLOBAL_VMALLOC_BASE, "vmalloc_base", true),
    (raw::GLOBAL_VMEMMAP_BASE, "vmemmap_base", true),
    (raw::GLOBAL_PGDIR_SHIFT, "pgdir_shift", false),
    (raw::GLOBAL_SME_ME_MASK, "sme_me_mask", false),
];

impl Scanner {
    pub fn open(syms: &Kallsyms, max_pgds: u32) -> anyhow::Result<Self> {
        let mut addrs = Vec::with_capacity(SYMBOLS.len());
        for (_, sym, required) in SYMBOLS {
            let a = syms.address_of(sym).unwrap_or(0);
            if required && a == 0 {
                return Err(anyhow!(
                    "kernel symbol `{sym}` is not in /proc/kallsyms: the page-table scan needs an x86_64 kernel with CONFIG_KALLSYMS_ALL and CONFIG_DYNAMIC_MEMORY_LAYOUT"
                ));
            }
            addrs.push(a);
        }
        let mut loader = EbpfLoader::new();
        for ((knob, _, _), a) in SYMBOLS.iter().zip(&addrs) {
            loader.override_global(knob, a, true);
        }
        loader.override_global(raw::GLOBAL_MAX_PGDS, &max_pgds, true);
        let mut ebpf = loader
            .load(sync_trace_ebpf::PGTABLE_SCAN_BPF)
            .context("cannot load the page-table scan BPF object")?;
        let result: Array<MapData, ScanValue> = Array::try_from(
            ebpf.take_map(raw::MAP_SCAN)
                .context("SCAN map missing from the scan object")?,
        )?;
        let mut scanner = Self { ebpf, result };
        scanner
            .prog()?
            .load()
            .map_err(|e| anyhow!("cannot load the page-table scan program: {e}"))?;
        Ok(scanner)
    }

    fn prog(&mut self) -> anyhow::Result<&mut RawTracePoint> {
        self.ebpf
            .program_mut(raw::PROG_SCAN)
            .context("scan program missing from the object")?
            .try_into()
            .context("scan program is not a raw tracepoint program")
    }

    /// One scan: init_mm's top-level table, plus a pgd_list walk when `walk`.
    pub fn scan(&mut self, walk: bool) -> anyhow::Result<Snapshot> {
        let mut opts = RawTracePointRunOptions::new();
        opts.args[0] = if walk {
            raw::SCAN_WALK
        } else {
            raw::SCAN_TABLE
        };
        self.prog()?
            .test_run(opts)
            .map_err(|e| anyhow!("running the page-table scan failed: {e}: BPF_PROG_TEST_RUN of raw tracepoint programs needs Linux 5.10 or later"))?;
        let v = self
            .result
            .get(&0, 0)
            .context("cannot read the scan result")?;
        let snap = Snapshot { raw: v.0 };
        if snap.raw.status & raw::SCAN_DONE == 0 {
            return Err(anyhow!("the page-table scan program did not finish"));
        }
        if snap.raw.status & raw::SCAN_NO_LAYOUT != 0 {
            return Err(anyhow!("the page-table scan could not read the kernel layout variables (page_offset_base, init_top_pgt)"));
        }
        Ok(snap)
    }

    /// A walk whose disagreements are confirmed by further walks: only what
    /// every walk saw is kept.
    pub fn verified_walk(&mut self) -> anyhow::Result<Snapshot> {
        let mut snap = self.scan(true)?;
        for _ in 1..CONFIRM_WALKS {
            if !snap.has_disagreement() && !snap.incomplete() {
                break;
            }
            let again = self.scan(true)?;
            // Keep the complete walk's header (table, list length, status)
            // and the per-slot minimum of both walks' counts.
            let (mut kept, other) = if snap.incomplete() && !again.incomplete() {
                (again, snap)
            } else {
                (snap, again)
            };
            kept.confirm_with(&other);
            snap = kept;
        }
        Ok(snap)
    }
}
