//! Runs the page-table scan program on demand (BPF_PROG_TEST_RUN of a raw
//! tracepoint program: nothing is attached) and reads its result.
//!
//! Two kinds of scan, with different costs:
//! - [`Scanner::table`]: init_mm's top-level table only. Its cost does not
//!   depend on the number of processes: the periodic sweep.
//! - [`Scanner::walk`]: pgd_list, comparing only the slots asked for, in
//!   chunks (each test run stops after [`RUN_BUDGET_NS`] with a cursor the
//!   next run goes on from), so that no run holds a CPU with preemption off
//!   for long, whatever the length of the list.
//!   [`Scanner::verified_walk_of`] confirms a disagreement with a second
//!   complete walk.

use std::{path::Path, time::Duration};

use anyhow::{anyhow, Context as _};
use aya::{
    maps::{Array, MapData},
    programs::{FExit, RawTracePoint, RawTracePointRunOptions, TestRun},
    Ebpf, EbpfLoader, Pod,
};
use sync_trace_common::raw::{self, RawScan};

use super::{
    core_facts::{implausible_layout, missing_core},
    scan_stats::ScanStats,
    slot_set::SlotSet,
    snapshot::Snapshot,
    sweep::KernelSweep,
    symbols::Symbols,
    verified_walk::verify_walks,
};

/// `RawScan` as a map value.
#[derive(Clone, Copy)]
#[repr(transparent)]
struct ScanValue(RawScan);
// SAFETY: RawScan is repr(C) plain data; every bit pattern is valid.
unsafe impl Pod for ScanValue {}

/// Time budget of one test run of a walk: the program ends its chunk once
/// it has run this long (checked every few nodes), so a run lasts about this
/// plus a few nodes.
pub const RUN_BUDGET_NS: u64 = 500_000;
/// The kernel's own BTF, which CO-RE relocates the walk against.
const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";
/// Restarts from the head the program makes after an invalid node.
const MAX_RESTARTS: u32 = 3;
/// Nodes a run visits at least before it looks at the clock (ST_CLOCK_EVERY).
const NODES_PER_CLOCK: u64 = 4;

pub struct Scanner {
    ebpf: Ebpf,
    result: Array<MapData, ScanValue>,
    max_pgds: u32,
    /// Why walks are impossible here (table scans still work).
    no_walk: Option<String>,
    stats: ScanStats,
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
    /// Loads the scan object with a loader of its own, its sweep timer's
    /// period set to `sweep` (armed only by [`Scanner::arm_sweep`]), and
    /// verifies its scan program.
    pub fn open(syms: &Symbols, max_pgds: u32, sweep: Duration) -> anyhow::Result<Self> {
        let mut scanner = Self::load_in(&mut EbpfLoader::new(), syms, max_pgds, sweep)?;
        scanner.verify()?;
        Ok(scanner)
    }

    /// Loads the scan object with `loader` (the session's: its BTF, parsed
    /// once, serves both objects' CO-RE): its maps are made and its
    /// programs relocated, none verified yet ([`Scanner::verify`]).
    ///
    /// aya's loader borrows the values of the globals it sets for as long as
    /// it lives, which may be longer than this call: they are leaked, a few
    /// words once per scanner (one per process).
    pub fn load_in(
        loader: &mut EbpfLoader<'_>,
        syms: &Symbols,
        max_pgds: u32,
        sweep: Duration,
    ) -> anyhow::Result<Self> {
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
        // Without the kernel's BTF, aya applies no CO-RE relocation and the
        // program would see the local (wrong) struct layouts: walks refuse.
        // (The loader reads it itself; a BTF it cannot parse is caught by
        // the layout check after the first walk's set-up.)
        let no_walk = (!Path::new(VMLINUX_BTF).exists()).then(|| {
            "walking pgd_list needs the kernel's BTF (/sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF) for the layout of struct page and mm_struct; it is missing".to_string()
        });
        let addrs: &'static [u64] = Vec::leak(addrs);
        let max_pgds: &'static u32 = Box::leak(Box::new(max_pgds));
        for ((knob, _, _), a) in SYMBOLS.iter().zip(addrs) {
            loader.override_global(knob, a, true);
        }
        loader.override_global(raw::GLOBAL_MAX_PGDS, max_pgds, true);
        loader.override_global(raw::GLOBAL_RUN_BUDGET_NS, &RUN_BUDGET_NS, true);
        loader.override_global(raw::GLOBAL_MAX_RESTARTS, &MAX_RESTARTS, true);
        let sweep_ns: &'static u64 = Box::leak(Box::new(
            u64::try_from(sweep.as_nanos()).unwrap_or(u64::MAX).max(1),
        ));
        loader.override_global(raw::GLOBAL_SWEEP_NS, sweep_ns, true);
        let mut ebpf = loader
            .load(sync_trace_ebpf::PGTABLE_SCAN_BPF)
            .context("cannot load the page-table scan BPF object")?;
        let result: Array<MapData, ScanValue> = Array::try_from(
            ebpf.take_map(raw::MAP_SCAN)
                .context("SCAN map missing from the scan object")?,
        )?;
        crate::startup_phases::mark("load scan object (CO-RE)");
        Ok(Self {
            ebpf,
            result,
            max_pgds: *max_pgds,
            no_walk,
            stats: ScanStats::default(),
        })
    }

    /// Verifies (loads into the kernel) the scan program.
    pub fn verify(&mut self) -> anyhow::Result<()> {
        verify_scan(scan_prog(&mut self.ebpf)?)
    }

    /// Verifies the scan program and takes init_mm's table ([`Scanner::table`])
    /// on this thread while `beside` runs on another with the sweep timer's
    /// arming program, when `sweep` (to load it there: the scan program's
    /// verification is the longest wait of the start-up, and the kernel
    /// verifies programs of two threads at once).
    pub fn verify_and_table_beside<R: Send>(
        &mut self,
        sweep: bool,
        beside: impl FnOnce(Option<anyhow::Result<&mut FExit>>) -> R + Send,
    ) -> anyhow::Result<(Snapshot, R)> {
        let mut scan = None;
        let mut arm = None;
        for (name, p) in self.ebpf.programs_mut() {
            if name == raw::PROG_SCAN {
                scan = Some(p);
            } else if name == raw::PROG_SWEEP_ARM {
                arm = Some(p);
            }
        }
        let scan: &mut RawTracePoint = scan
            .context("scan program missing from the object")?
            .try_into()
            .context("scan program is not a raw tracepoint program")?;
        let arm = sweep.then(|| {
            let p = arm.context("sweep arming program missing from the scan object")?;
            anyhow::Ok(<&mut FExit>::try_from(p)?)
        });
        std::thread::scope(|s| {
            let other = std::thread::Builder::new()
                .name("verify".into())
                .spawn_scoped(s, || {
                    crate::startup_phases::begin_thread();
                    beside(arm)
                })
                .context("cannot start a thread")?;
            let here = verify_scan(scan).and_then(|()| {
                let r = run_scan(scan, &self.result, &[raw::SCAN_TABLE])?;
                table_of(&mut self.stats, r)
            });
            let r = other
                .join()
                .map_err(|_| anyhow!("the verification thread panicked"))?;
            crate::startup_phases::mark("baseline table scan");
            Ok((here?, r))
        })
    }

    fn run(&mut self, args: &[u64]) -> anyhow::Result<RawScan> {
        run_scan(scan_prog(&mut self.ebpf)?, &self.result, args)
    }

    /// Starts the sweep in the kernel (see [`KernelSweep`]), its arming
    /// program loaded ([`KernelSweep::load`]).
    pub fn arm_sweep(&mut self, period: Duration) -> anyhow::Result<KernelSweep> {
        KernelSweep::arm(&mut self.ebpf, period)
    }

    /// What the scans cost so far.
    pub fn stats(&self) -> &ScanStats {
        &self.stats
    }

    /// init_mm's top-level table and the layout variables; no walk. The
    /// snapshot has neither `walked()` nor `incomplete()`.
    pub fn table(&mut self) -> anyhow::Result<Snapshot> {
        let r = self.run(&[raw::SCAN_TABLE])?;
        table_of(&mut self.stats, r)
    }

    /// One walk of pgd_list comparing `slots` (those init_mm has when it
    /// starts), in as many test runs as it takes. The snapshot's table is
    /// init_mm's at the start of the walk. A walk that ended early
    /// (invalid node after every restart, fault, `--max-pgds`) comes back
    /// `incomplete()` and without counts; a kernel that lacks what the walk
    /// needs is an error naming it.
    pub fn walk(&mut self, slots: &SlotSet) -> anyhow::Result<Snapshot> {
        if let Some(why) = &self.no_walk {
            return Err(anyhow!("{why}"));
        }
        let mut args = [0u64; 1 + raw::SLOT_WORDS];
        args[0] = raw::SCAN_WALK_BEGIN;
        args[1..].copy_from_slice(&slots.words());
        let mut r = self.run(&args)?;
        // `busy_ns` accumulates over the walk's runs.
        let mut busy = 0;
        let mut per_run = |r: &RawScan, stats: &mut ScanStats| {
            // Saturating: the counter is the kernel's, and may be anything.
            stats.walk_run(r.busy_ns.saturating_sub(busy));
            busy = r.busy_ns;
        };
        per_run(&r, &mut self.stats);
        // The set-up run: refuse before any node is read when the layout
        // variables, a CO-RE fact or a plausible struct layout is missing.
        if r.status & raw::SCAN_NO_LAYOUT != 0 {
            return Err(anyhow!("the page-table scan could not read the kernel layout variables (page_offset_base, init_top_pgt)"));
        }
        if r.status & raw::SCAN_NO_CORE != 0 {
            let why = format!(
                "walking pgd_list needs {} from the kernel's BTF, which lacks it: refusing to walk from guessed offsets",
                missing_core(r.core).join(", ")
            );
            self.no_walk = Some(why.clone());
            return Err(anyhow!("{why}"));
        }
        if let Some(why) = implausible_layout(&r) {
            self.no_walk = Some(why.clone());
            return Err(anyhow!("{why}"));
        }
        // Each run but the first (set-up) and the last visits at least
        // NODES_PER_CLOCK nodes, and a walk visits at most
        // (restarts + 1) * max_pgds nodes.
        let max_runs =
            u64::from(MAX_RESTARTS + 1) * u64::from(self.max_pgds) / NODES_PER_CLOCK + 16;
        while r.status & raw::SCAN_MORE != 0 {
            if u64::from(r.runs) > max_runs {
                return Err(anyhow!(
                    "the pgd_list walk made no progress after {} test runs",
                    r.runs
                ));
            }
            r = self.run(&[raw::SCAN_WALK_NEXT])?;
            per_run(&r, &mut self.stats);
        }
        log::debug!(
            "walk of {} slots: status {:#x}, {} PGDs, {} compared, {} runs, {} restarts, longest run {} ns, core {:#x}",
            slots.len(),
            r.status,
            r.pgds,
            r.nslots,
            r.runs,
            r.restarts,
            r.max_run_ns,
            r.core
        );
        self.stats.walk(&r);
        if r.status & raw::SCAN_NOT_BEGUN != 0 || r.status & raw::SCAN_DONE == 0 {
            return Err(anyhow!(
                "the page-table scan program did not finish the walk"
            ));
        }
        let mut snap = Snapshot { raw: r };
        if !snap.complete() {
            snap.clear_counts();
        }
        Ok(snap)
    }

    /// Walks comparing `slots`, verified by [`verify_walks`]: a disagreement
    /// is reported only when two complete walks see it (per-slot minimum);
    /// a walk that ended early never contributes counts.
    pub fn verified_walk_of(&mut self, slots: &SlotSet) -> anyhow::Result<Snapshot> {
        verify_walks(|| self.walk(slots))
    }

    /// [`Scanner::verified_walk_of`] every kernel slot init_mm has.
    pub fn verified_walk(&mut self) -> anyhow::Result<Snapshot> {
        self.verified_walk_of(&SlotSet::all())
    }
}

fn scan_prog(ebpf: &mut Ebpf) -> anyhow::Result<&mut RawTracePoint> {
    ebpf.program_mut(raw::PROG_SCAN)
        .context("scan program missing from the object")?
        .try_into()
        .context("scan program is not a raw tracepoint program")
}

fn verify_scan(prog: &mut RawTracePoint) -> anyhow::Result<()> {
    prog.load()
        .map_err(|e| anyhow!("cannot load the page-table scan program: {e}"))?;
    // What the verifier went through (Linux 5.16 and later): its cost.
    let processed = prog
        .info()
        .ok()
        .and_then(|i| i.verified_instruction_count())
        .map_or_else(|| "?".to_string(), |n| n.to_string());
    log::debug!(
        "page-table scan program loaded: {processed} instructions processed by the verifier"
    );
    crate::startup_phases::mark(&format!(
        "verify scan program ({processed} insns processed)"
    ));
    Ok(())
}

/// One test run of the scan program with `args`; its result.
fn run_scan(
    prog: &mut RawTracePoint,
    result: &Array<MapData, ScanValue>,
    args: &[u64],
) -> anyhow::Result<RawScan> {
    let mut opts = RawTracePointRunOptions::new();
    opts.args[..args.len()].copy_from_slice(args);
    prog.test_run(opts)
        .map_err(|e| anyhow!("running the page-table scan failed: {e}: BPF_PROG_TEST_RUN of raw tracepoint programs needs Linux 5.10 or later"))?;
    let key = if args[0] == raw::SCAN_TABLE {
        raw::SCAN_KEY_TABLE
    } else {
        raw::SCAN_KEY_WALK
    };
    Ok(result
        .get(&key, 0)
        .context("cannot read the scan result")?
        .0)
}

/// The snapshot of a table scan's result `r`.
fn table_of(stats: &mut ScanStats, r: RawScan) -> anyhow::Result<Snapshot> {
    stats.table(&r);
    if r.status & raw::SCAN_DONE == 0 {
        return Err(anyhow!("the page-table scan program did not finish"));
    }
    if r.status & raw::SCAN_NO_LAYOUT != 0 {
        return Err(anyhow!("the page-table scan could not read the kernel layout variables (page_offset_base, init_top_pgt)"));
    }
    Ok(Snapshot { raw: r })
}
