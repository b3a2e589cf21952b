//! sync-trace: watches kernel top-level page-table populations and the syncs
//! that copy them into every process page table, on x86_64.
//!
//! The modules follow the data path (docs/design.md):
//! - [`kernel`]: everything that talks to the running kernel: privileges,
//!   kallsyms, loading and attaching the BPF programs, the page-table scan,
//!   and turning ring-buffer records into [`record`]s.
//! - [`record`]: the records the daemon writes, one per NDJSON line; a
//!   contract (docs/events.md), `Serialize` and `Deserialize`.
//! - [`model`]: detection, attribution, pairing and verdicts, from records
//!   and scans alone (shared by `run` and `replay`).
//! - [`output`]: where records go: text or NDJSON on stdout, Prometheus metrics.
//! - [`cmd`]: the subcommands, which wire the stages together.

pub mod cli;
pub mod cmd;
pub mod kernel;
pub mod model;
pub mod output;
pub mod record;
