//! Loading the BPF object and attaching every target: what `probe` and
//! `run` share.

use std::time::Duration;

use anyhow::{anyhow, Context as _};
use aya::{programs::FExit, Ebpf, EbpfLoader};
use sync_trace_common::{batch, raw};

use super::{
    attach::{attach_loaded, load_all, AttachChoice},
    facts::KernelFacts,
    loader::loader_with,
    privilege,
    scan::Scanner,
    snapshot::Snapshot,
    sweep::KernelSweep,
    target_status::TargetStatus,
};

pub struct Session {
    pub ebpf: Ebpf,
    pub facts: KernelFacts,
    pub statuses: Vec<TargetStatus>,
}

pub struct Options {
    pub capture_stack: bool,
    pub force_log: bool,
    /// Size of the EVENTS ring buffer in bytes (a power of two, at least a
    /// page); `None` keeps the object's 256 KiB.
    pub ring_bytes: Option<u32>,
    /// Every fact of every target in the statuses, also those attaching
    /// does not need (`probe`'s report).
    pub report: bool,
    /// The attach method (`run --attach`).
    pub attach: AttachChoice,
    /// A function arch_sync_kernel_mappings' programs attach to instead
    /// (`run --test-sync-stand-in`).
    pub sync_stand_in: Option<String>,
    /// Attach the per-page vmemmap populate functions even where
    /// `__populate_section_memmap` covers them (`run --test-populate-calls`).
    pub populate_calls: bool,
}

/// A batch of populate calls (events.h, "Batches") older than this is
/// written at its next call. Batches are also written before every scan, so
/// this only bounds how long a batch stays open while calls keep coming: a
/// fifth of `run`'s default grace window.
const BATCH_NS: u64 = 20_000_000;

/// Raises RLIMIT_MEMLOCK for kernels that still charge BPF maps to it
/// (before 5.11); newer kernels use memcg accounting and ignore it.
fn raise_memlock() {
    let lim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit with a valid pointer to an initialized struct.
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) };
}

/// glibc's malloc as the start-up needs it: the kernel's BTF (about 14 MiB
/// once parsed, freed once everything is attached) is parsed on a thread of
/// its own. One arena for every thread, so that what it frees serves the
/// daemon afterwards instead of staying in that thread's arena; and a fixed
/// mmap threshold (glibc's initial 128 KiB): left dynamic, glibc raises it to
/// the size of each large buffer freed, so that the next ones come from the
/// heap, which may keep them resident once freed.
fn tune_malloc() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt takes two integers; it only changes malloc's settings.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// The object's knobs (`const volatile` globals), set by the loader.
struct Globals {
    capture: u32,
    force: u32,
    top: u64,
    shift: u64,
    batch_ns: u64,
    vmemmap: u64,
}

impl Globals {
    fn set<'a>(&'a self, loader: &mut EbpfLoader<'a>, must_exist: bool) {
        loader
            .override_global(raw::GLOBAL_CAPTURE_STACK, &self.capture, must_exist)
            .override_global(raw::GLOBAL_FORCE_LOG, &self.force, must_exist)
            .override_global(raw::GLOBAL_INIT_TOP_PGT, &self.top, must_exist)
            .override_global(raw::GLOBAL_PGDIR_SHIFT, &self.shift, must_exist)
            .override_global(batch::GLOBAL_BATCH_NS, &self.batch_ns, must_exist)
            .override_global(raw::GLOBAL_VMEMMAP_BASE, &self.vmemmap, must_exist);
    }
}

/// What `run` opens beside the session: the page-table scan object.
pub struct ScanOptions {
    pub max_pgds: u32,
    /// The sweep's period.
    pub sweep: Duration,
    /// Arm the sweep timer in the kernel (not under `--test-user-sweep`).
    pub kernel_sweep: bool,
}

/// The scanner, the table it read before any probe attached (the baseline),
/// and the sweep timer, armed after that table (`None` when not asked for).
pub struct Scanning {
    pub scanner: Scanner,
    pub before: Snapshot,
    pub sweep: Option<anyhow::Result<KernelSweep>>,
}

impl Session {
    pub fn open(opts: &Options) -> anyhow::Result<Self> {
        Self::open_inner(opts, None).map(|(s, _)| s)
    }

    /// Opens a session and the page-table scan object beside it: the scan
    /// program takes its baseline table before any probe attaches, and the
    /// sweep timer is armed after them.
    pub fn open_scanning(opts: &Options, scan: &ScanOptions) -> anyhow::Result<(Self, Scanning)> {
        let (session, scanning) = Self::open_inner(opts, Some(scan))?;
        let scanning = scanning.context("the scan object was not opened")?;
        Ok((session, scanning))
    }

    /// Independent work runs on two threads at two points, each joined
    /// before what needs it:
    /// - The kernel looks the symbols the objects' globals need up while a
    ///   thread parses the kernel's BTF; their CO-RE needs the BTF, so the
    ///   loads wait for both. With kernel stacks, a third thread reads
    ///   /proc/kallsyms (the kernel formats every line: the longest single
    ///   wait) beside everything up to the attaches, and is joined last.
    /// - Once both objects are loaded, a thread verifies every probe's
    ///   programs and the sweep timer's while this one verifies the scan
    ///   program and reads the baseline table. Nothing attaches before that
    ///   table; the probes attach after both are done, then the timer is armed.
    ///
    /// The BTF is parsed once, for CO-RE and fentry/fexit (`loader.rs`), and
    /// dropped once everything is attached. Every thread has ended when this
    /// returns (`run` drops its privileges later, which applies to the
    /// calling thread).
    fn open_inner(
        opts: &Options,
        scan: Option<&ScanOptions>,
    ) -> anyhow::Result<(Self, Option<Scanning>)> {
        privilege::preflight().map_err(anyhow::Error::msg)?;
        tune_malloc();
        let (btf, facts) = std::thread::scope(|s| {
            let parse = std::thread::Builder::new()
                .name("btf".into())
                .spawn_scoped(s, || {
                    crate::startup_phases::begin_thread();
                    KernelFacts::parse_btf()
                })
                .context("cannot start a thread")?;
            let facts = KernelFacts::gather().map_err(anyhow::Error::msg);
            // Kernel stacks need the whole symbol table: read beside the
            // rest of the start, joined at its end.
            if let Ok(f) = &facts {
                if opts.capture_stack {
                    f.symbols.load_table_beside();
                }
            }
            let btf = parse
                .join()
                .map_err(|_| anyhow!("parsing the kernel's BTF panicked"))?;
            anyhow::Ok((btf, facts?))
        })?;
        let mut facts = facts;
        facts.set_btf(btf);
        // The threads have ended: the loader may be made (`loader_with`).
        let mut loader = loader_with(facts.btf.as_ref());
        crate::startup_phases::mark("loader");
        raise_memlock();
        // Batches need init_top_pgt (whether a call's top-level entry is
        // already present) and, on kernels that can run 5-level paging,
        // pgdir_shift; without init_top_pgt every call is traced alone. A
        // section's memory map is placed with vmemmap_base (without it,
        // section calls are traced alone).
        let top = facts.symbols.address_of("init_top_pgt").unwrap_or(0);
        let globals = Globals {
            capture: opts.capture_stack.into(),
            force: opts.force_log.into(),
            top,
            shift: facts.symbols.address_of("pgdir_shift").unwrap_or(0),
            batch_ns: if top == 0 { 0 } else { BATCH_NS },
            vmemmap: facts.symbols.address_of("vmemmap_base").unwrap_or(0),
        };
        globals.set(&mut loader, true);
        if let Some(bytes) = opts.ring_bytes {
            loader.map_max_entries(raw::MAP_EVENTS, bytes);
        }
        let mut ebpf = loader.load(sync_trace_ebpf::SYNC_TRACE_BPF).map_err(|e| {
            let text = e.to_string();
            if text.contains("Operation not permitted") {
                anyhow!("cannot create BPF maps: {}", privilege::explain_denied())
            } else {
                anyhow!("cannot load the sync-trace BPF object: {text}")
            }
        })?;
        crate::startup_phases::mark("load sync_trace object");
        // Each had to exist in that object; the loader goes on to the scan
        // object, which has only some of them (with the same values).
        globals.set(&mut loader, false);
        let scanner = scan
            .map(|o| Scanner::load_in(&mut loader, &facts.symbols, o.max_pgds, o.sweep))
            .transpose()?;
        drop(loader);
        // What the thread beside the scan program's verification does.
        let load_probes = |facts: &mut KernelFacts,
                           ebpf: &mut Ebpf,
                           arm: Option<anyhow::Result<&mut FExit>>| {
            let sweep = arm.map(|p| {
                let r = p.and_then(|p| {
                    KernelSweep::load(p, facts.btf.as_ref())?;
                    Ok(p.info().ok().and_then(|i| i.verified_instruction_count()))
                });
                let n = r.as_ref().ok().copied().flatten().unwrap_or(0);
                crate::startup_phases::mark(&format!("verify sweep timer ({n} insns processed)"));
                r.map(drop)
            });
            let loaded = load_all(
                ebpf,
                facts,
                opts.attach,
                opts.sync_stand_in.as_deref(),
                opts.populate_calls,
            );
            (loaded, sweep)
        };
        let (loaded, sweep, scanning) = match (scanner, scan) {
            (Some(mut scanner), Some(o)) => {
                let (before, (loaded, sweep)) = scanner
                    .verify_and_table_beside(o.kernel_sweep, |arm| {
                        load_probes(&mut facts, &mut ebpf, arm)
                    })?;
                (loaded, sweep, Some((scanner, before, o)))
            }
            _ => {
                let (loaded, _) = load_probes(&mut facts, &mut ebpf, None);
                (loaded, None, None)
            }
        };
        let statuses = attach_loaded(&mut ebpf, &facts, loaded, opts.report);
        crate::startup_phases::mark("attach");
        // Armed after the baseline table: a change after the timer's first
        // reading is written by the timer, one before it is seen by the
        // baseline walk `run` makes before `ready`.
        let scanning = scanning.map(|(mut scanner, before, o)| {
            let sweep = sweep.map(|loaded| loaded.and_then(|()| scanner.arm_sweep(o.sweep)));
            crate::startup_phases::mark("sweep timer");
            Scanning {
                scanner,
                before,
                sweep,
            }
        });
        facts.drop_btf();
        if opts.capture_stack {
            facts.symbols.table();
            crate::startup_phases::mark("symbol table joined");
        }
        Ok((
            Self {
                ebpf,
                facts,
                statuses,
            },
            scanning,
        ))
    }
}
