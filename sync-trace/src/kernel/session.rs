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

impl Session {
    pub fn open(opts: &Options) -> anyhow::Result<Self> {
        Self::open_with(opts, |_| Ok(())).map(|(s, ())| s)
    }

    /// Opens a session, running `before_attach` once the kernel facts are
    /// known and before any probe attaches (`run` reads its baseline there).
    pub fn open_with<T>(
        opts: &Options,
        before_attach: impl FnOnce(&KernelFacts) -> anyhow::Result<T>,
    ) -> anyhow::Result<(Self, T)> {
        privilege::preflight().map_err(anyhow::Error::msg)?;
        let facts = KernelFacts::gather().map_err(anyhow::Error::msg)?;
        raise_memlock();
        let capture: u32 = opts.capture_stack.into();
        let force: u32 = opts.force_log.into();
        // Batches need init_top_pgt (whether a call's top-level entry is
        // already present) and, on kernels that can run 5-level paging,
        // pgdir_shift; without init_top_pgt every call is traced alone.
        let top = facts.kallsyms.address_of("init_top_pgt").unwrap_or(0);
        let shift = facts.kallsyms.address_of("pgdir_shift").unwrap_or(0);
        let batch_ns = if top == 0 { 0 } else { BATCH_NS };
        let mut loader = EbpfLoader::new();
        loader
            .override_global(raw::GLOBAL_CAPTURE_STACK, &capture, true)
            .override_global(raw::GLOBAL_FORCE_LOG, &force, true)
            .override_global(raw::GLOBAL_INIT_TOP_PGT, &top, true)
            .override_global(raw::GLOBAL_PGDIR_SHIFT, &shift, true)
            .override_global(batch::GLOBAL_BATCH_NS, &batch_ns, true);
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
        let before = before_attach(&facts)?;
        let statuses = attach_all(
            &mut ebpf,
            &facts,
            opts.attach,
            opts.sync_stand_in.as_deref(),
        );
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
