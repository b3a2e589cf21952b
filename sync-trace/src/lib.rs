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
//!
//! Everything but [`record`] (which holds `probe --json`'s report too) is the
//! `daemon` feature (default): a reader of the daemon's output builds the
//! library without it, and so without clang (xtask's checks do).

#[cfg(feature = "daemon")]
pub mod cli;
#[cfg(feature = "daemon")]
pub mod cmd;
#[cfg(feature = "daemon")]
pub mod kernel;
#[cfg(feature = "daemon")]
pub mod model;
#[cfg(feature = "daemon")]
pub mod output;
pub mod record;
#[cfg(feature = "daemon")]
pub mod startup_phases;
