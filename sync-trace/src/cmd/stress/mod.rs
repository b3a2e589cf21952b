//! `sync-trace stress`: cycles memory blocks offline/online and device-dax
//! devices between devdax and system-ram while `run`'s tracing is active in
//! the same process, restores everything as found, and reports per cycle.
//! docs/stress.md.
//!
//! - `sysfs`: the injectable sysfs root (`SysfsRoot`).
//! - `blocks`, `dax`: selection and the sysfs sequences.
//! - `restore`: the guard that puts everything back on every exit path.
//! - `cycle`: the plan and the cycler (a blocking thread).
//! - `observer`: what the report consumes (records and cycle events).
//! - `report`, `html`: the report as text, JSON and an HTML page.
//! - `progress`: the progress bar or plain lines.
//! - `glue`: the one place that drives `run` (through `RunHooks`).

mod blocks;
mod cycle;
mod dax;
mod early;
mod glue;
mod html;
pub mod journal;
mod observer;
mod progress;
mod report;
mod restore;
mod sysfs;
mod watchdog;

#[cfg(test)]
mod tests;

use std::{
    io::{self, Write as _},
    path::PathBuf,
    time::Duration,
};

use anyhow::{anyhow, Context as _};

use self::{
    blocks::BlockSpec,
    cycle::{run_cycles, Plan},
    progress::Progress,
    report::ReportBuilder,
    sysfs::SysfsRoot,
};
use crate::cli::{RunArgs, DEFAULT_MAX_PGDS};

/// Arguments of `sync-trace stress` (a user contract: docs/stress.md).
#[derive(Debug, clap::Args)]
pub struct StressArgs {
    /// Number of cycles (default 5, or unlimited with --duration).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub cycles: Option<u64>,
    /// Stop cycling after this long (e.g. 30s, 5m); with --cycles, whichever comes first.
    #[arg(long, value_parser = crate::cli::parse_duration)]
    pub duration: Option<Duration>,
    /// Memory blocks to cycle: numbers and ranges (32,40-47), all-offlinable,
    /// or none. Default: the online blocks in ZONE_MOVABLE.
    #[arg(long, value_parser = blocks::parse_blocks)]
    pub blocks: Option<BlockSpec>,
    /// Device-dax devices to cycle between devdax and system-ram (dax0.0,dax1.0),
    /// all, or none. Default: all that are present.
    #[arg(long, value_parser = dax::parse_dax)]
    pub dax: Option<dax::DaxSpec>,
    /// The report as one JSON document on stdout instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also write the report as one self-contained HTML page.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Give up on a sysfs write that has not returned after this long (e.g. 60s, 2m):
    /// memory hotplug is then taken as wedged (a lock held by a task that oopsed, pages an
    /// offline can never migrate): cycling stops, the report says which write hung, and
    /// the exit status is 3 when something was found, else 1.
    #[arg(long, value_parser = crate::cli::parse_duration, default_value = "60s")]
    pub write_timeout: Duration,
    /// Cycle nothing: read a report saved with --json (on another machine, or
    /// before a crash) and print it again, as text or --json, and as --report.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["cycles", "duration", "blocks", "dax", "test_fail_at_step"])]
    pub from_json: Option<PathBuf>,
    /// Testing only: the Nth sysfs write of the cycles (counted from 1) fails
    /// as if the kernel had refused it, to check that everything is restored.
    #[arg(long, hide = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub test_fail_at_step: Option<u64>,
}

/// Capability number of CAP_SYS_ADMIN (include/uapi/linux/capability.h).
const CAP_SYS_ADMIN: u32 = 21;

fn has_cap_sys_admin() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << CAP_SYS_ADMIN) != 0)
}

/// The tracing `stress` runs: `run --json` with its defaults (its records
/// go to the report, in the order made, and never to stdout).
fn run_args() -> RunArgs {
    RunArgs {
        json: true,
        duration: None,
        metrics_addr: None,
        grace: Duration::from_millis(100),
        sweep: Duration::from_millis(75),
        walk_every: Duration::from_secs(30),
        fail_on_unsynced: false,
        max_pgds: DEFAULT_MAX_PGDS,
        attach: Default::default(),
        no_stacks: false,
        test_kernel_log: false,
        test_ring_size: None,
        test_sync_stand_in: None,
        test_populate_calls: false,
        test_user_sweep: false,
        // stress keeps root: it onlines and offlines memory until it ends.
        user: None,
    }
}

/// How long tracing continues after the last cycle: verdicts come a grace
/// window (and a walk) after a population.
const SETTLE: Duration = Duration::from_secs(1);

pub async fn stress(args: StressArgs) -> anyhow::Result<i32> {
    if let Some(path) = &args.from_json {
        let report = read_saved(path)?;
        return write_report(&report, &args);
    }
    if !has_cap_sys_admin() {
        return Err(anyhow!(
            "missing privilege: onlining and offlining memory through sysfs needs root (CAP_SYS_ADMIN); run with sudo"
        ));
    }
    // What its tracing needs, named before any memory is touched.
    crate::kernel::privilege::preflight().map_err(anyhow::Error::msg)?;
    if args.write_timeout.is_zero() {
        return Err(anyhow!(
            "--write-timeout 0 would give up on every write: give a duration such as 60s"
        ));
    }
    let root = SysfsRoot::default().with_write_timeout(args.write_timeout);
    // A stress killed before it restored (and its watcher with it) left its journal: put
    // that state back before this one is taken as found.
    for line in journal::recover(&root, &root.journal())? {
        eprintln!("sync-trace stress: {line} (left by a stress that ended before restoring)");
    }
    let spec = args.blocks.clone().unwrap_or(BlockSpec::Movable);
    let dax_wanted = match args.dax.clone() {
        None | Some(dax::DaxSpec::All) => None,
        Some(dax::DaxSpec::List(v)) => Some(v),
    };
    let plan = Plan::build(
        &root,
        &spec,
        dax_wanted.as_deref(),
        args.cycles,
        args.duration,
    )
    .map_err(anyhow::Error::msg)?;
    plan.check_writable(&root).map_err(anyhow::Error::msg)?;
    let mut plan = plan;
    plan.fail_at_step = args.test_fail_at_step;

    // Restores from the journal if this process dies before it restores by itself.
    let mut watcher = journal::Watcher::spawn(&root.journal(), args.write_timeout)?;
    let mut builder = ReportBuilder::default();
    let mut progress = Progress::new(plan.cycles);
    let cycler_plan = plan.clone();
    let cycler_root = root.clone();
    let mut observer = early::EarlyReport::new(&mut builder, &plan, args.report.clone());
    let traced = glue::traced(
        |hooks| crate::cmd::run::run_with(run_args(), hooks),
        move |stop, emit| {
            let _ = run_cycles(&cycler_root, &cycler_plan, &stop, emit);
        },
        &mut observer,
        &mut progress,
        SETTLE,
    )
    .await?;
    drop(observer);
    if traced.cycled.is_some() {
        // The cycler restored (or tried to: what it could not is in the report and its
        // journal stays for the next `stress`); the watcher need not try again.
        watcher.restore_attempted();
    }
    drop(watcher);
    drop(progress);

    let error = match (&traced.run, &traced.cycled) {
        (Err(e), _) => Some(format!("tracing: {}", one_line(e))),
        (Ok(_), None) if traced.interrupted => {
            Some("interrupted before the first cycle: nothing was changed".into())
        }
        (Ok(_), None) => Some("tracing ended before it was armed: nothing was cycled".into()),
        _ => None,
    };
    let report = builder.finish(&plan, traced.interrupted, error);
    write_report(&report, &args)
}

/// A report saved with `--json`; one line naming the problem otherwise.
fn read_saved(path: &std::path::Path) -> anyhow::Result<report::Report> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the saved report {}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| {
        anyhow!(
            "{} is not a report saved by `sync-trace stress --json`: {e}",
            path.display()
        )
    })
}

fn one_line(e: &anyhow::Error) -> String {
    e.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

/// The report on stdout, and as a page with `--report`; the exit status. A page that cannot be
/// written (a full disk) is one line on stderr and exit 1, or 3 when the report found
/// something: the report on stdout is whole.
fn write_report(report: &report::Report, args: &StressArgs) -> anyhow::Result<i32> {
    let mut out = io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, report)?;
        out.write_all(b"\n")?;
    } else {
        out.write_all(report.text().as_bytes())?;
    }
    out.flush()?;
    if let Some(path) = &args.report {
        if let Err(e) = std::fs::write(path, html::page(report)) {
            eprintln!(
                "sync-trace stress: cannot write the report to {}: {e} (the report on stdout is complete)",
                path.display()
            );
            // A truncated page is not worth keeping.
            let _ = std::fs::remove_file(path);
            return Ok(report.exit_code.max(1));
        }
    }
    Ok(report.exit_code)
}
