//! A synthetic stream of raw ring-buffer records, byte for byte what the
//! eBPF programs write (`struct st_event`, sync-trace-common/src/raw/event.rs),
//! and the scans `run` would make between them.
//!
//! The mix: threads calling `arch_sync_kernel_mappings()` over vmalloc
//! ranges (the common sync on a busy machine: vmap/ioremap), an entry and
//! an exit each, with a 12-frame entry stack from one of three call sites;
//! every [`POP_EVERY`] calls a
//! population of the vmemmap slot 469 by a helper sync, seen by the next
//! scan, then cleared (a `depopulate`) by the scan after.

use sync_trace::kernel::{kallsyms::Kallsyms, snapshot::Snapshot, symbols::Symbols};
use sync_trace_common::{
    raw::{RawEventC, RawScan, COMM_LEN, EVENT_SIZE, MAX_STACK, SCAN_DONE, SCAN_WALKED},
    Target,
};

/// `enum st_kind` and `enum st_method` (events.h).
const KIND_ENTRY: u8 = 1;
const KIND_EXIT: u8 = 2;
const METHOD_FENTRY: u8 = 1;

/// x86_64 4-level layout without KASLR: the bases `Layout::new` takes.
pub const PGDIR_SHIFT: u32 = 39;
pub const PAGE_OFFSET_BASE: u64 = 0xffff_8880_0000_0000;
pub const VMALLOC_BASE: u64 = 0xffff_c900_0000_0000;
pub const VMEMMAP_BASE: u64 = 0xffff_ea00_0000_0000;
/// Kernel slots present at boot on such a guest: direct map, vmalloc,
/// vmemmap, the kernel image.
pub const BOOT_SLOTS: [usize; 4] = [273, 402, 468, 511];
/// The vmemmap slot a hot-add at 32 TiB populates, and its address.
pub const POP_SLOT: usize = 469;
const POP_ADDR: u64 = 0xffff_ea80_0000_0000;

/// Calls between two populations (each seen by a scan, then cleared).
pub const POP_EVERY: u64 = 50_000;
/// Threads the calls rotate over.
const THREADS: u32 = 8;
/// A call lasts this long (ns); calls start this far apart.
const CALL_NS: u64 = 2_000;
const GAP_NS: u64 = 5_000;

/// Functions of the synthetic kernel, 4 KiB apart from `_text`.
const SYMBOLS: [&str; 12] = [
    "arch_sync_kernel_mappings",
    "__apply_to_page_range",
    "apply_to_page_range",
    "vmap_range_noflush",
    "__vmalloc_node_range_noprof",
    "__vmalloc_node_noprof",
    "bpf_map_area_alloc",
    "array_map_alloc",
    "map_create",
    "__sys_bpf",
    "do_syscall_64",
    "entry_SYSCALL_64_after_hwframe",
];
const TEXT: u64 = 0xffff_ffff_8100_0000;
/// Where the BPF program runs: not in kallsyms (a tracing frame).
const BPF_PROG: u64 = 0xffff_ffff_c000_1234;

/// The symbol table of the synthetic kernel.
pub fn kallsyms() -> Symbols {
    let mut text = format!("{TEXT:016x} T _text\n");
    for (i, s) in SYMBOLS.iter().enumerate() {
        text += &format!("{:016x} T {s}\n", TEXT + 0x1000 * (i as u64 + 1));
    }
    text += &format!(
        "{:016x} D _end\n",
        TEXT + 0x1000 * (SYMBOLS.len() as u64 + 1)
    );
    Symbols::from_table(Kallsyms::parse(&text))
}

/// A scan of init_mm's table at `ts_ns` (a table scan: no walk).
pub fn table_scan(ts_ns: u64, with_pop: bool) -> Snapshot {
    let mut raw = RawScan::zeroed();
    raw.ts_ns = ts_ns;
    raw.end_ns = ts_ns + 1_000;
    raw.page_offset_base = PAGE_OFFSET_BASE;
    raw.vmalloc_base = VMALLOC_BASE;
    raw.vmemmap_base = VMEMMAP_BASE;
    raw.pgdir_shift = PGDIR_SHIFT;
    raw.status = SCAN_DONE;
    raw.page_size = 64; // sizeof(struct page) on x86_64
    for s in BOOT_SLOTS {
        raw.top[s] = (0x1000 * s as u64) | 0x63; // present, rw, accessed, dirty
    }
    if with_pop {
        raw.top[POP_SLOT] = (0x1000 * POP_SLOT as u64) | 0x63;
    }
    Snapshot { raw }
}

/// A walk of `pgds` PGDs that compared every present slot and found them
/// all in place.
pub fn clean_walk(ts_ns: u64, pgds: u32, with_pop: bool) -> Snapshot {
    let mut s = table_scan(ts_ns, with_pop);
    s.raw.status = SCAN_DONE | SCAN_WALKED;
    s.raw.pgds = pgds;
    s.raw.slots = [u64::MAX; sync_trace_common::raw::SLOT_WORDS];
    s
}

/// The task names of the threads: most plain, some that JSON must escape
/// (a quote, a backslash, a tab), one not UTF-8, one not ASCII, one of the
/// full 16 bytes without a NUL.
const COMMS: [&[u8]; THREADS as usize] = [
    b"bpftool",
    b"kworker/u4:1",
    b"systemd-udevd",
    b"modprobe",
    b"we\"ird\\tab\t",
    b"\xff\xfe-bin",
    b"caf\xc3\xa9",
    b"0123456789abcdef",
];

/// Distinct call sites: the stack of call `i` of a batch returns into
/// `vmap_range_noflush` at one of this many offsets.
const CALL_SITES: usize = 3;

fn event(kind: u8, target: Target, ts_ns: u64, i: usize, range: [u64; 2]) -> RawEventC {
    let tid = (i as u32) % THREADS;
    let mut stack = [0; MAX_STACK];
    let mut frames = 0;
    if kind == KIND_ENTRY {
        stack[0] = BPF_PROG;
        for (f, _) in SYMBOLS.iter().enumerate() {
            stack[f + 1] = TEXT + 0x1000 * (f as u64 + 1) + 0x40 + 8 * f as u64;
        }
        stack[4] += 0x10 * (i % CALL_SITES) as u64;
        frames = SYMBOLS.len() + 1;
    }
    let mut comm = [0; COMM_LEN];
    let name = COMMS[tid as usize];
    comm[..name.len()].copy_from_slice(name);
    RawEventC {
        ts_ns,
        args: [range[0], range[1], 0],
        ret: 0,
        duration_ns: if kind == KIND_EXIT { CALL_NS } else { 0 },
        pid: 1000 + tid,
        tid: 1000 + tid,
        cpu: tid % 2,
        flags: 0,
        kind,
        target: target as u8,
        method: METHOD_FENTRY,
        pad: 0,
        stack_bytes: 8 * frames as i32,
        comm,
        stack,
    }
}

fn bytes_of(c: &RawEventC) -> [u8; EVENT_SIZE] {
    // SAFETY: RawEventC is repr(C) plain data without padding (its size is
    // the sum of its fields, checked in sync-trace-common against events.h).
    unsafe { std::mem::transmute_copy(c) }
}

/// Calls per batch: `run` drains the ring in batches, then flushes.
pub const BATCH_CALLS: usize = 128;
/// Offsets in `struct st_event` (raw/event.rs checks them against events.h).
const TS_OFF: usize = 0;
const ARGS_OFF: usize = 8;

/// The records, made batch by batch in one buffer that holds the
/// template (only the times and ranges change, rewritten in place), so
/// that making them costs little next to reading them: `run` reads the
/// kernel's records where the ring holds them, with no copy.
pub struct Stream {
    call: u64,
    ts_ns: u64,
    batch: Vec<u8>,
}

impl Stream {
    pub fn new(start_ns: u64) -> Self {
        let mut batch = Vec::with_capacity(2 * BATCH_CALLS * EVENT_SIZE);
        for i in 0..BATCH_CALLS {
            let t = Target::ArchSyncKernelMappings;
            batch.extend_from_slice(&bytes_of(&event(KIND_ENTRY, t, 0, i, [0, 0])));
            batch.extend_from_slice(&bytes_of(&event(KIND_EXIT, t, 0, i, [0, 0])));
        }
        Self {
            call: 0,
            ts_ns: start_ns,
            batch,
        }
    }

    /// Ring records of the next calls, up to [`BATCH_CALLS`]
    /// ([`EVENT_SIZE`] bytes each); a batch ends early after a call that
    /// `run` would follow with a scan, which is returned.
    pub fn fill(&mut self) -> (&[u8], Option<Snapshot>) {
        let mut scan = None;
        let mut n = 0;
        while n < BATCH_CALLS && scan.is_none() {
            self.call += 1;
            self.ts_ns += GAP_NS;
            let phase = self.call % POP_EVERY;
            let v = VMALLOC_BASE + (self.call % 4096) * 0x10_0000;
            let range = match phase {
                // The helper sync right after the entry was written, then
                // the scan that sees it.
                0 => [POP_ADDR, POP_ADDR],
                _ => [v, v + 0x4000],
            };
            let end_ns = self.ts_ns + CALL_NS;
            if phase == 0 || phase == POP_EVERY / 2 {
                // Half a cycle after its population the entry is gone.
                scan = Some(table_scan(end_ns + 500, phase == 0));
            }
            let call = &mut self.batch[2 * n * EVENT_SIZE..2 * (n + 1) * EVENT_SIZE];
            let (entry, exit) = call.split_at_mut(EVENT_SIZE);
            for (rec, ts) in [(entry, self.ts_ns), (exit, end_ns)] {
                rec[TS_OFF..TS_OFF + 8].copy_from_slice(&ts.to_ne_bytes());
                rec[ARGS_OFF..ARGS_OFF + 8].copy_from_slice(&range[0].to_ne_bytes());
                rec[ARGS_OFF + 8..ARGS_OFF + 16].copy_from_slice(&range[1].to_ne_bytes());
            }
            n += 1;
        }
        (&self.batch[..2 * n * EVENT_SIZE], scan)
    }
}
