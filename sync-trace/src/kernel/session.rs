//! Loading the BPF object and attaching every target: what `probe` and
//! `run` share.

use aya::{Ebpf, EbpfLoader};
use sync_trace_common::{batch, raw};

use super::{
    attach::{attach_all, AttachChoice},
    facts::KernelFacts,
    privilege,
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
}

impl Globals {
    fn set<'a>(&'a self, loader: &mut EbpfLoader<'a>, must_exist: bool) {
        loader
            .override_global(raw::GLOBAL_CAPTURE_STACK, &self.capture, must_exist)
            .override_global(raw::GLOBAL_FORCE_LOG, &self.force, must_exist)
            .override_global(raw::GLOBAL_INIT_TOP_PGT, &self.top, must_exist)
            .override_global(raw::GLOBAL_PGDIR_SHIFT, &self.shift, must_exist)
            .override_global(batch::GLOBAL_BATCH_NS, &self.batch_ns, must_exist);
    }
}

impl Session {
    pub fn open(opts: &Options) -> anyhow::Result<Self> {
        Self::open_with(opts, |_, _| Ok(()), |_, _| ()).map(|(s, ())| s)
    }

    /// Opens a session, running `before_attach` once the kernel facts are
    /// known and before any probe attaches (`run` loads the scan object with
    /// the same loader and reads its baseline there), and `with_btf` after
    /// the probes attached, while the kernel's BTF is still parsed (`run`
    /// arms its sweep timer there, an fexit program).
    ///
    /// aya's loader parses the kernel's BTF when it is made (for CO-RE), and
    /// fentry/fexit need it parsed again (aya keeps the loader's private):
    /// one loader for both objects, dropped before the second parse, so one
    /// parsed BTF at a time is held, never two.
    pub fn open_with<T>(
        opts: &Options,
        before_attach: impl FnOnce(&KernelFacts, &mut EbpfLoader<'_>) -> anyhow::Result<T>,
        with_btf: impl FnOnce(&KernelFacts, &mut T),
    ) -> anyhow::Result<(Self, T)> {
        privilege::preflight().map_err(anyhow::Error::msg)?;
        let mut facts = KernelFacts::gather().map_err(anyhow::Error::msg)?;
        raise_memlock();
        // Batches need init_top_pgt (whether a call's top-level entry is
        // already present) and, on kernels that can run 5-level paging,
        // pgdir_shift; without init_top_pgt every call is traced alone.
        let top = facts.kallsyms.address_of("init_top_pgt").unwrap_or(0);
        let globals = Globals {
            capture: opts.capture_stack.into(),
            force: opts.force_log.into(),
            top,
            shift: facts.kallsyms.address_of("pgdir_shift").unwrap_or(0),
            batch_ns: if top == 0 { 0 } else { BATCH_NS },
        };
        let mut loader = EbpfLoader::new();
        crate::startup_phases::mark("loader (btf for CO-RE)");
        globals.set(&mut loader, true);
        if let Some(bytes) = opts.ring_bytes {
            loader.map_max_entries(raw::MAP_EVENTS, bytes);
        }
        let mut ebpf = loader.load(sync_trace_ebpf::SYNC_TRACE_BPF).map_err(|e| {
            let text = e.to_string();
            if text.contains("Operation not permitted") {
                anyhow::anyhow!("cannot create BPF maps: {}", privilege::explain_denied())
            } else {
                anyhow::anyhow!("cannot load the sync-trace BPF object: {text}")
            }
        })?;
        crate::startup_phases::mark("load sync_trace object");
        // Each had to exist in that object; the loader goes on to the scan
        // object, which has only some of them (with the same values).
        globals.set(&mut loader, false);
        let mut before = before_attach(&facts, &mut loader)?;
        drop(loader);
        let statuses = facts.with_btf(|facts| {
            let statuses = attach_all(
                &mut ebpf,
                facts,
                opts.attach,
                opts.sync_stand_in.as_deref(),
                opts.report,
            );
            with_btf(facts, &mut before);
            statuses
        });
        crate::startup_phases::mark("attach");
        Ok((
            Self {
                ebpf,
                facts,
                statuses,
            },
            before,
        ))
    }
}
