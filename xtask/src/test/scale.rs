//! Checks of the scale scenario: the idle cost of `sync-trace run` with few
//! and with many processes (one PGD each), the longest single test run of
//! the scan program, and a never-synced population among many PGDs.

use anyhow::{ensure, Context as _, Result};

use super::output::Output;

/// Extra idle CPU allowed with many processes, in % of one CPU.
const MAX_EXTRA_CPU_PCT: f64 = 1.0;
/// The median walk test run must stay under this (the program's budget per
/// run is 500 µs). Interrupts served during a run, and under TCG the host
/// descheduling the emulated CPU (a busy host), count in a run's time, so the
/// longest run and the share over 1 ms are printed, not bounded: they
/// measure the host as much as the walk.
const MAX_MEDIAN_RUN_US: u64 = 1_000;
/// Share of the PGDs that must lack the never-synced entry.
const MIN_MISSING_SHARE: f64 = 0.9;

/// One measuring window: CPU of the run, in % of one CPU.
struct Window {
    procs: u64,
    cpu_pct: f64,
    /// From the run's `scans:` line.
    walks: u64,
    longest_run_us: u64,
    kernel_us: u64,
    walk_runs: u64,
    over_1ms: u64,
    median_run_us: u64,
}

fn num_after(line: &str, key: &str) -> Result<u64> {
    let rest = line
        .split(key)
        .nth(1)
        .with_context(|| format!("no `{key}` in {line:?}"))?;
    let n: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    n.parse()
        .with_context(|| format!("bad number after `{key}` in {line:?}"))
}

fn window(o: &Output, step: &str) -> Result<Window> {
    let ticks: f64 = o.value(step, "ticks")?.parse()?;
    let hz: f64 = o.value(step, "clk_tck")?.trim().parse()?;
    let w = o.value(step, "window")?;
    let (a, b) = w.split_once(' ').context("window=START END")?;
    let secs = b.trim().parse::<f64>()? - a.trim().parse::<f64>()?;
    ensure!(secs > 1.0, "step {step}: window of {secs} s");
    let scans = o
        .lines_of(step)?
        .iter()
        .rev()
        .find(|l| l.starts_with("scans:"))
        .with_context(|| format!("step {step}: no `scans:` line from the run"))?
        .clone();
    Ok(Window {
        procs: o.value(step, "procs")?.trim().parse()?,
        cpu_pct: 100.0 * ticks / hz / secs,
        walks: num_after(&scans, "table,")?,
        longest_run_us: num_after(&scans, "longest run")?,
        kernel_us: num_after(&scans, "test runs,")?,
        over_1ms: num_after(&scans, "us),")?,
        walk_runs: num_after(&scans, " of ")?,
        median_run_us: num_after(&scans, "median walk run")?,
    })
}

pub fn check_scale(o: &Output, many: u64) -> Result<()> {
    let few = window(o, "few")?;
    let lots = window(o, "many")?;
    ensure!(
        lots.procs >= many * 9 / 10,
        "only {} processes in the guest, expected about {many}",
        lots.procs
    );
    println!(
        "xtask test: scale: idle CPU {:.2} % with {} processes, {:.2} % with {} ({} walks, {} us in test runs); longest test run {} us (few), {} us (many); {} of {} walk runs over 1 ms, median {} us",
        few.cpu_pct, few.procs, lots.cpu_pct, lots.procs, lots.walks, lots.kernel_us, few.longest_run_us, lots.longest_run_us, lots.over_1ms, lots.walk_runs, lots.median_run_us
    );
    ensure!(
        lots.cpu_pct <= few.cpu_pct + MAX_EXTRA_CPU_PCT,
        "idle CPU grew from {:.2} % to {:.2} % of one CPU with {} processes (at most +{MAX_EXTRA_CPU_PCT} %)",
        few.cpu_pct,
        lots.cpu_pct,
        lots.procs
    );
    ensure!(
        lots.walk_runs > 0 && lots.median_run_us <= MAX_MEDIAN_RUN_US,
        "the median walk test run took {} us with {} PGDs (at most {MAX_MEDIAN_RUN_US} us; {} of {} over 1 ms, longest {} us)",
        lots.median_run_us,
        lots.procs,
        lots.over_1ms,
        lots.walk_runs,
        lots.longest_run_us
    );

    // The never-synced population: unsynced soon, with (nearly) every PGD missing it.
    let line = o.value("many", "mode")?;
    let field = |k: &str| -> Result<u64> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{k}=")))
            .with_context(|| format!("module line lacks {k}: {line}"))?
            .parse()
            .with_context(|| format!("bad {k}: {line}"))
    };
    let (slot, ts) = (field("slot")?, field("ts_ns")?);
    let u = o
        .unsynced("many")?
        .into_iter()
        .find(|u| u.pop.slot as u64 == slot)
        .with_context(|| format!("never-synced slot {slot} not reported unsynced"))?;
    // Judged by the first walk after its window: a bound from the run's own
    // records (the delay from the write is printed against the 200 ms target).
    let recs = o.records("many")?;
    super::module::judged_by_first_walk_after_window(&recs, &u, ts)?;
    let missing = u64::from(u.pgds_missing);
    let total = u64::from(u.pgds_total);
    ensure!(
        total >= many * 9 / 10 && missing as f64 >= MIN_MISSING_SHARE * total as f64,
        "unsynced with {missing} of {total} PGDs missing the entry; expected nearly all of about {many}: {u:?}"
    );
    println!("xtask test: scale: {missing} of {total} PGDs missing the never-synced entry");
    o.expect_exit("audit", 3)
}
