//! Command-line interface. Flags, exit codes and output formats are a
//! contract: see README.md and docs/.

use std::{ffi::OsString, net::SocketAddr, path::PathBuf, time::Duration};

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
    /// Compare every PGD on pgd_list with init_mm now. Exit 0 when all
    /// agree, 3 when any lacks an entry or disagrees, 1 on error.
    Audit {
        /// NDJSON (`verify` and `mismatch` records) instead of text.
        #[arg(long)]
        json: bool,
        /// Stop the walk after this many PGDs.
        #[arg(long, default_value_t = DEFAULT_MAX_PGDS, value_parser = clap::value_parser!(u32).range(1..))]
        max_pgds: u32,
    },
    /// Rebuild pairing, latencies, unsynced flags and the summary from a
    /// recorded `run --json` stream (no kernel or privilege needed).
    Replay {
        /// The recording (`-` for standard input).
        file: PathBuf,
        /// NDJSON output.
        #[arg(long)]
        json: bool,
        /// Grace window for a sync after a population.
        #[arg(long, value_parser = parse_duration, default_value = "100ms")]
        grace: Duration,
        /// Serve the recording's metrics at http://ADDR/metrics until Ctrl-C
        /// or SIGTERM (a bare port means 127.0.0.1).
        #[arg(long, value_parser = crate::output::exporter::parse_addr)]
        metrics_addr: Option<SocketAddr>,
    },
    /// Cycle memory blocks offline/online and device-dax devices between
    /// devdax and system-ram while tracing; restore everything; report per
    /// cycle. Exit 0 when clean, 3 when a population went unsynced or a PGD
    /// mismatched, 1 on error (docs/stress.md).
    Stress(crate::cmd::stress::StressArgs),
    /// The capabilities `run` needs to attach, to switch to `--user`, and
    /// keeps once attached: what a deployment grants (docs/security.md).
    Capabilities {
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Started by `stress`: once its stdin closes (the `stress` that started it ended, also by
    /// SIGKILL), restores the memory blocks and dax devices its journal lists, if the journal
    /// is still there (docs/stress.md).
    #[command(hide = true)]
    StressRestoreWatch {
        #[arg(long)]
        journal: PathBuf,
        /// As `stress --write-timeout`.
        #[arg(long, value_parser = parse_duration, default_value = "60s")]
        write_timeout: Duration,
    },
}

/// Bound of one pgd_list walk (one PGD per process, plus lazily held mms).
pub const DEFAULT_MAX_PGDS: u32 = 1 << 20;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// NDJSON on stdout: one object per line with an "event" field.
    #[arg(long)]
    pub json: bool,
    /// Stop after this long (e.g. 10s, 500ms, 2m).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Serve Prometheus metrics at http://ADDR/metrics (a bare port means 127.0.0.1).
    #[arg(long, value_parser = crate::output::exporter::parse_addr)]
    pub metrics_addr: Option<SocketAddr>,
    /// A population with no covering sync within this window is `unsynced`.
    #[arg(long, value_parser = parse_duration, default_value = "100ms")]
    pub grace: Duration,
    /// Period of the sweep: a read of init_mm's top-level table that finds
    /// populations no traced call announced. It runs in the kernel (a
    /// bpf_timer that wakes the daemon only on a change) where the kernel
    /// allows, else from the daemon. 75 ms: such a population is judged
    /// within one period, the grace and a walk (under 200 ms), and the
    /// timer costs under 0.1 % of a CPU even under emulation.
    #[arg(long, value_parser = parse_duration, default_value = "75ms")]
    pub sweep: Duration,
    /// Period of the full pgd_list verification when nothing else walks it
    /// (syncs and grace deadlines walk it at once, and a population is
    /// judged by the deadline walk): it finds a PGD that went wrong with no
    /// sync or population. One walk of every kernel slot costs about 5 µs
    /// per PGD under emulation, so 30 s keeps the idle cost at 10,000
    /// processes near 0.2 % of a CPU.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub walk_every: Duration,
    /// Exit 3 after the first confirmed `unsynced` event (PGDs lack the entry).
    #[arg(long)]
    pub fail_on_unsynced: bool,
    /// Stop each pgd_list walk after this many PGDs.
    #[arg(long, default_value_t = DEFAULT_MAX_PGDS, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_pgds: u32,
    /// Attach method of the probes: `auto` (fentry/fexit where the kernel
    /// allows, kprobe/kretprobe otherwise), or one method only (`fentry`,
    /// `kprobe`) with no fallback: a target the method cannot attach to
    /// stays unattached (see the log's attach lines).
    #[arg(long, value_enum, default_value = "auto")]
    pub attach: crate::kernel::attach::AttachChoice,
    /// Do not capture kernel stacks (cheaper; callers become "other").
    #[arg(long)]
    pub no_stacks: bool,
    /// Make every probe entry write a kernel-side diagnostic (a test of
    /// the diagnostics path; noisy).
    #[arg(long, hide = true)]
    pub test_kernel_log: bool,
    /// Size of the kernel's event ring buffer in bytes: a power of two of at
    /// least 4096. Small sizes force losses (a test of loss accounting).
    #[arg(long, hide = true, value_parser = parse_ring_size)]
    pub test_ring_size: Option<u32>,
    /// Attach arch_sync_kernel_mappings' programs (kprobe/kretprobe) to this
    /// function instead: a module function with the same `(start, end)`
    /// arguments that calls it, such as the test module's `st_sync`. Its
    /// calls are reported as arch_sync_kernel_mappings syncs; unloading the
    /// module takes the probe away (a test of `detached`, docs/security.md).
    #[arg(long, hide = true, value_name = "FUNCTION")]
    pub test_sync_stand_in: Option<String>,
    /// Attach vmemmap_pgd_populate/vmemmap_p4d_populate even where
    /// __populate_section_memmap covers them (the kernel's batches of
    /// per-page calls keep a test).
    #[arg(long, hide = true)]
    pub test_populate_calls: bool,
    /// Sweep from the daemon's own timer even where the kernel's sweep can
    /// run (the bench's baseline for the idle CPU).
    #[arg(long, hide = true)]
    pub test_user_sweep: bool,
    /// After attaching, switch to this user (name or uid) keeping only
    /// CAP_BPF (docs/security.md); the uid this process already runs as
    /// keeps it.
    #[arg(long, default_value = crate::kernel::least_privilege::DEFAULT_USER)]
    pub user: Option<String>,
}

/// The one line a usage error is reported as: clap's message, which names
/// the problem and the flag, without the usage and tips that follow it
/// (what `--help` shows). A value with control characters of its own (line
/// breaks, which could mimic clap's own `tip:` lines) is quoted with them
/// escaped, with the flag it was given to.
/// clap does not say which argument is not UTF-8: `args` (the command
/// line) tells.
pub fn usage_error_line(e: &clap::Error, args: &[OsString]) -> String {
    if e.kind() == clap::error::ErrorKind::InvalidUtf8 {
        if let Some(i) = args.iter().position(|a| a.to_str().is_none()) {
            let after = match args.get(i.wrapping_sub(1)) {
                Some(prev) if i > 1 => format!(" (after `{}`)", prev.to_string_lossy()),
                _ => String::new(),
            };
            return format!(
                "sync-trace: argument {i} `{}`{after} is not valid UTF-8: give flags and values as UTF-8 text (see `sync-trace --help`)",
                args[i].to_string_lossy().replace(['\n', '\r'], " ")
            );
        }
    }
    if let Some(line) = control_value_line(e) {
        return line;
    }
    let text = e.render().to_string();
    let body = text
        .rfind("\n\nUsage:")
        .map_or(text.as_str(), |i| &text[..i]);
    let problem = body
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("tip:"))
        .collect::<Vec<_>>()
        .join(" ");
    let problem = problem.replace('\r', " ");
    let problem = problem.strip_prefix("error: ").unwrap_or(&problem);
    format!("sync-trace: {problem} (see `sync-trace --help`)")
}

/// `invalid value "…" for '--flag <V>': why` when the refused value holds
/// control characters, escaped; `None` for any other error.
fn control_value_line(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue};
    let (Some(ContextValue::String(value)), Some(ContextValue::String(arg))) = (
        e.get(ContextKind::InvalidValue),
        e.get(ContextKind::InvalidArg),
    ) else {
        return None;
    };
    if !value.chars().any(char::is_control) {
        return None;
    }
    let why = std::error::Error::source(e)
        .map(|s| format!(": {}", s.to_string().replace(char::is_control, " ")))
        .unwrap_or_default();
    Some(format!(
        "sync-trace: invalid value {value:?} for '{arg}'{why} (see `sync-trace --help`)"
    ))
}

fn parse_ring_size(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(n) if n >= 4096 && n.is_power_of_two() => Ok(n),
        _ => Err(format!(
            "{s:?} is not a ring size: give a power of two of at least 4096 bytes"
        )),
    }
}

/// A duration such as `10s`, `500ms`, `2m`; zero is refused (a zero period
/// would spin, a zero window or duration means nothing).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if d.is_zero() => Err(format!(
            "{s:?} is zero: give a positive duration such as 10s or 500ms"
        )),
        Ok(d) if d > MAX_DURATION => Err(format!(
            "{s:?} is longer than a year: give a shorter duration"
        )),
        Ok(d) => Ok(d),
        Err(e) => Err(format!("{e}: write a duration such as 10s, 500ms or 2m")),
    }
}

/// Longest duration accepted (anything longer overflows no clock, but is a typo).
const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);
