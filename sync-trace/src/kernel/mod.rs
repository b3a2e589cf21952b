//! Everything that talks to the running kernel: what this process may do
//! (`privilege`), its symbols (`kallsyms`, `ksym_lookup`) and facts
//! (`facts`), loading and
//! attaching the BPF programs (`session`, `attach`, `target_status`), the
//! on-demand page-table scan (`scan`, its `snapshot`s, the `slot_set`s it
//! compares, `verified_walk`, `core_facts`, `scan_stats`, and the sweep
//! timer in the kernel, `sweep`), and turning
//! ring-buffer records into completed calls (`trace`) or log lines
//! (kernel-side diagnostics, `diag`) and the loss counters into `lost`
//! records (`lost`), and watching for
//! attached probes that go away (`probe_watch`), and the livepatches of a
//! traced function (`livepatch`).

pub mod attach;
pub mod batch_flush;
pub mod clock;
pub mod core_facts;
pub mod diag;
pub mod facts;
pub mod kallsyms;
pub mod ksym_lookup;
pub mod least_privilege;
pub mod livepatch;
pub mod loader;
pub mod lost;
pub mod privilege;
pub mod probe_watch;
mod program_pair;
pub mod scan;
pub mod scan_stats;
pub mod session;
pub mod slot_set;
pub mod snapshot;
pub mod sweep;
pub mod symbols;
pub mod target_status;
pub mod trace;
pub mod verified_walk;
