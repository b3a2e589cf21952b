//! The sync-trace eBPF programs, compiled from C by the build script and
//! embedded here as 8-byte aligned ELF objects ready for `aya::EbpfLoader`.
//!
//! The record layouts and map names are defined in `src/bpf/events.h`; their
//! Rust twins are in `sync-trace-common`, and `tests/contract.rs` compares
//! the two through the BTF clang writes.

/// The kernel programs: entry and exit of every sync and populate target, for
/// fentry/fexit and for kprobe/kretprobe (see `src/bpf/sync_trace.bpf.c`).
pub static SYNC_TRACE_BPF: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sync_trace.bpf.o"));

/// The on-demand page-table scan (see `src/bpf/pgtable_scan.bpf.c`), run with
/// BPF_PROG_TEST_RUN.
pub static PGTABLE_SCAN_BPF: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/pgtable_scan.bpf.o"));

/// The kernel symbol lookup (see `src/bpf/ksym_lookup.bpf.c`): a syscall
/// program run once with BPF_PROG_TEST_RUN.
pub static KSYM_LOOKUP_BPF: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/ksym_lookup.bpf.o"));
