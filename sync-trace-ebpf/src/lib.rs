//! The sync-trace eBPF programs, compiled from C by the build script and
//! embedded here as 8-byte aligned ELF objects ready for `aya::EbpfLoader`.
//!
//! The record layouts and map names are defined in `src/bpf/events.h`; their
//! Rust twins are in `sync-trace-common`.

/// The kernel programs: entry and exit of every sync and populate target, for
/// fentry/fexit and for kprobe/kretprobe (see `src/bpf/sync_trace.bpf.c`).
pub static SYNC_TRACE_BPF: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sync_trace.bpf.o"));

/// The C header that defines the kernel/userspace contract, for tests that
/// check the Rust twins against it.
pub const EVENTS_H: &str = include_str!("bpf/events.h");

/// The on-demand page-table scan (see `src/bpf/pgtable_scan.bpf.c`), run with
/// BPF_PROG_TEST_RUN.
pub static PGTABLE_SCAN_BPF: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/pgtable_scan.bpf.o"));
