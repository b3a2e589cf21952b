//! Command-line interface. Flags, exit codes and output formats are a
//! contract: see README.md and docs/.

use std::time::Duration;

use clap::{Parser, Subcommand};

/// Watches kernel top-level page-table populations and the syncs that copy
/// them into every process page table (x86_64).
#[derive(Debug, Parser)]
#[command(name = "sync-trace", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// For each target: present in kallsyms? in BTF? traceable? method
    /// chosen, and whether attaching really succeeded (attaches, then
    /// detaches). Exit 0 when a sync point attaches, 1 otherwise.
    Probe {
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Trace until Ctrl-C, SIGTERM or --duration, then print a summary.
    /// Prints `ready` on stderr once every probe is attached.
    Run(RunArgs),
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// NDJSON on stdout: one object per line with an "event" field.
    #[arg(long)]
    pub json: bool,
    /// Stop after this long (e.g. 10s, 500ms, 2m).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Do not capture kernel stacks (cheaper; callers become "other").
    #[arg(long)]
    pub no_stacks: bool,
    /// Make every probe entry write a kernel-side aya-log message (a test of
    /// the diagnostics path; noisy).
    #[arg(long, hide = true)]
    pub test_kernel_log: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{e}: write a duration such as 10s, 500ms or 2m"))
}
