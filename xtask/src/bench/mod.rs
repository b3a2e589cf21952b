//! `cargo xtask bench`: sync-trace's cost measured beside what a user would run instead, in
//! the same guest (QEMU TCG) or the same host process; one table of figure, sync-trace,
//! baseline, ratio, target, met?; saved as JSON under target/bench/ with a plot of the
//! ratios over the saved runs. docs/performance.md describes the method.
//!
//! Exit status: 0 when the bench ran (a missed target is reported, not failed); 1 when a
//! guest could not run its script; 2 on an error before or around it.

mod bpftrace;
mod figures;
mod guest;
mod history;
mod host;
pub mod table;

use crate::guest_binary::{build_guest_sync_trace, target_dir, workspace_root};
use crate::vm::KernelId;
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::Command;
use table::{BenchRun, Figure, Row};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Runs of each alternating measurement (at least 5 for the published table).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=50))]
    pub runs: u32,
    /// Guest kernels, comma-separated (default: 6.1 and 6.12; with --quick: 6.12).
    #[arg(long, value_delimiter = ',')]
    pub kernel: Vec<KernelId>,
    /// One run of each, one kernel, short idle windows and 1,000 processes instead of 10,000.
    #[arg(long)]
    pub quick: bool,
    /// Guest figures only (no `pipeline_bench` example on the host).
    #[arg(long)]
    pub no_host: bool,
    /// Host figures only (no guest boots).
    #[arg(long, conflicts_with = "no_host")]
    pub no_guest: bool,
    /// Echo every line the guest prints.
    #[arg(long, short)]
    pub verbose: bool,
    /// Use this static binary as /bin/sync-trace instead of building it.
    #[arg(long, value_name = "PATH")]
    pub guest_bin: Option<PathBuf>,
    /// Guest steps to run, comma-separated (default: all): their figures only.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub steps: Vec<Step>,
}

/// A step of the guest script (bench.sh) and the figures it gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Step {
    /// exec → ready and peak RSS, against bpftrace.
    Startup,
    /// Probe cost per sync call, fentry and kprobe.
    Percall,
    /// Detection delay of a never-synced population.
    Detect,
    /// The DIMM hot-add cycle.
    Hotadd,
    /// The compound devmap cycle.
    Devmap,
    /// Idle CPU, wake-ups and the sweep's cost per period.
    Idle,
}

impl Step {
    pub const ALL: [Step; 6] = [
        Step::Startup,
        Step::Percall,
        Step::Detect,
        Step::Hotadd,
        Step::Devmap,
        Step::Idle,
    ];

    /// The name bench.sh's `want` takes.
    pub fn name(self) -> &'static str {
        match self {
            Step::Startup => "startup",
            Step::Percall => "percall",
            Step::Detect => "detect",
            Step::Hotadd => "hotadd",
            Step::Devmap => "devmap",
            Step::Idle => "idle",
        }
    }

    /// The step whose figure this is (by the start of the figure's name).
    pub fn of_figure(figure: &str) -> Option<Step> {
        const PREFIXES: [(&str, Step); 8] = [
            ("exec → ready", Step::Startup),
            ("peak RSS", Step::Startup),
            ("probe cost", Step::Percall),
            ("detection delay", Step::Detect),
            ("hot-add cycle", Step::Hotadd),
            ("devmap cycle", Step::Devmap),
            ("idle", Step::Idle),
            ("sweep CPU", Step::Idle),
        ];
        PREFIXES
            .iter()
            .find(|(p, _)| figure.starts_with(p))
            .map(|&(_, s)| s)
    }
}

impl BenchArgs {
    /// The steps asked for, all when none was named.
    pub fn steps(&self) -> Vec<Step> {
        if self.steps.is_empty() {
            Step::ALL.to_vec()
        } else {
            Step::ALL
                .into_iter()
                .filter(|s| self.steps.contains(s))
                .collect()
        }
    }
}

fn git_commit() -> String {
    Command::new("git")
        .args(["describe", "--always", "--dirty", "--abbrev=10"])
        .current_dir(workspace_root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn command_line(args: &BenchArgs) -> String {
    let mut c = String::from("cargo xtask bench");
    let mut flag = |cond: bool, f: String| {
        if cond {
            c += " ";
            c += &f;
        }
    };
    flag(args.quick, "--quick".into());
    flag(args.runs != 5, format!("--runs {}", args.runs));
    flag(
        !args.kernel.is_empty(),
        format!(
            "--kernel {}",
            args.kernel
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        ),
    );
    flag(
        !args.steps.is_empty(),
        format!(
            "--steps {}",
            args.steps()
                .iter()
                .map(|s| s.name())
                .collect::<Vec<_>>()
                .join(",")
        ),
    );
    flag(args.no_host, "--no-host".into());
    flag(args.no_guest, "--no-guest".into());
    c
}

pub fn run(args: BenchArgs) -> Result<i32> {
    let root = workspace_root();
    // Fail before any guest boot when the host half cannot run.
    if !args.no_host {
        host::check_example(&root)?;
    }
    let kernels = match (&args.kernel[..], args.quick) {
        ([], true) => vec![KernelId::V6_12],
        ([], false) => vec![KernelId::V6_1, KernelId::V6_12],
        (k, _) => k.to_vec(),
    };
    // The commit of the code that runs, taken before the (long) guest boots.
    let commit = git_commit();
    let mut figures: Vec<Figure> = Vec::new();
    let mut guest_kernels = Vec::new();
    let mut status = 0;
    if !args.no_guest {
        let bin = match &args.guest_bin {
            Some(p) => p.clone(),
            None => build_guest_sync_trace(&root)?,
        };
        let bt = bpftrace::fetch()?;
        eprintln!(
            "xtask bench: bpftrace {} with {} libraries",
            bt.version,
            bt.files.len() - 1
        );
        let plan = guest::Plan::of(&args);
        for k in &kernels {
            eprintln!("xtask bench: guest {k}: {plan:?}");
            let boot = guest::run(*k, &plan, bt.files.clone(), &bin, args.verbose)?;
            let log = std::env::temp_dir().join(format!("sync-trace-bench-{k}.log"));
            let _ = std::fs::write(&log, &boot.text);
            eprintln!("xtask bench: guest output in {}", log.display());
            for e in &boot.host_errors {
                eprintln!("xtask bench: host action failed: {e}");
            }
            if boot.exit_status != 0 {
                eprintln!(
                    "xtask bench: the guest script on {} exited {}: its figures may be incomplete (see {})",
                    boot.kernel_version,
                    boot.exit_status,
                    log.display()
                );
                status = 1;
            }
            let mut these = figures::guest_figures(&boot.output, &boot.kernel_version);
            // Only the figures of the steps that ran.
            let steps = args.steps();
            these.retain(|f| Step::of_figure(&f.figure).is_none_or(|s| steps.contains(&s)));
            figures::note_missing_runs(&mut these, plan.runs, plan.few);
            figures.extend(these);
            guest_kernels.push(boot.kernel_version);
        }
    }
    if !args.no_host {
        figures.extend(host::figures(args.quick)?);
    }
    let run = BenchRun {
        date: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        commit,
        kernels: guest_kernels,
        command: command_line(&args),
        figures: figures.iter().cloned().map(Row::from).collect(),
    };
    println!("\n{}", table::markdown(&figures));
    print!("{}", table::notes(&figures));
    println!(
        "\nproduced by: {} ({}, {})",
        run.command, run.commit, run.date
    );
    let dir = target_dir(&root)?.join("bench");
    std::fs::create_dir_all(&dir)?;
    let name = format!(
        "bench-{}-{}.json",
        run.date.replace(':', ""),
        run.commit.replace('/', "-")
    );
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_string_pretty(&run)? + "\n")
        .with_context(|| format!("cannot write {}", p.display()))?;
    println!("xtask bench: wrote {}", p.display());
    if let Some(svg) = history::plot(&dir)? {
        println!("xtask bench: wrote {}", svg.display());
    }
    let missed = figures.iter().filter(|f| f.met() == Some(false)).count();
    if missed > 0 {
        println!("xtask bench: {missed} figure(s) missed their target (reported, not failed)");
    }
    Ok(status)
}
