//! Checks of the faults scenario (scripts/faults.sh): each needed capability dropped alone,
//! losses counted exactly, nothing left in
//! the kernel after `kill -9` or SIGTERM, stdout and `stress --report` going away, and a fork/exit storm while a DIMM
//! is hot-added and every PGD is walked.

use anyhow::{bail, ensure, Context as _, Result};
use sync_trace::record::{LostRecord, MismatchRecord, Summary};

use super::output::Output;

mod capabilities;
mod disarmed;
use capabilities::check_capabilities;
use disarmed::check_disarmed;

/// The `state` lines of faults.sh: what a tracer can leave behind, and the memory layout.
const STATE_KEYS: [&str; 11] = [
    "bpf_progs",
    "bpf_links",
    "bpf_maps",
    "bpf_perf",
    "kprobes",
    "kprobe_events",
    "enabled_functions",
    "pinned",
    "perf_fds",
    "blocks_online",
    "dax",
];
/// Of those, the ones a running tracer holds (one of them must grow while it runs, or the
/// comparison after it cannot tell anything).
const HELD_KEYS: [&str; 5] = [
    "bpf_progs",
    "bpf_links",
    "bpf_maps",
    "enabled_functions",
    "kprobes",
];
/// The storm step must fork at least this many processes.
const MIN_FORKS: u64 = 1_000;
/// The top-level slots a DIMM at 32 TiB opens (docs/vm.md): vmemmap and direct map.
const SLOTS_32T: [usize; 2] = [469, 337];

fn num(o: &Output, step: &str, key: &str) -> Result<u64> {
    let v = o.value(step, key)?;
    v.parse()
        .with_context(|| format!("step {step}: {key}={v} is not a number"))
}

/// A `metric: NAME VALUE` line of a step (an unlabelled metric).
fn metric(o: &Output, step: &str, name: &str) -> Result<u64> {
    let prefix = format!("metric: {name} ");
    o.lines_of(step)?
        .iter()
        .find_map(|l| l.strip_prefix(&prefix))
        .with_context(|| format!("step {step}: no {name} scraped"))?
        .trim()
        .parse()
        .with_context(|| format!("step {step}: {name} is not a number"))
}

/// The sum of a labelled counter's series in a step's scrape.
fn metric_sum(o: &Output, step: &str, name: &str) -> Result<u64> {
    let prefix = format!("metric: {name}{{");
    let mut found = false;
    let mut sum = 0;
    for l in o.lines_of(step)? {
        if let Some(rest) = l.strip_prefix(&prefix) {
            found = true;
            let v = rest.rsplit(' ').next().unwrap_or("");
            sum += v
                .parse::<u64>()
                .with_context(|| format!("step {step}: bad sample {l}"))?;
        }
    }
    ensure!(found, "step {step}: no {name} scraped");
    Ok(sum)
}

fn summary(o: &Output, step: &str) -> Result<Summary> {
    o.events::<Summary>(step)?
        .pop()
        .with_context(|| format!("step {step}: no summary"))
}

/// Every ring-buffer record the kernel programs tried to write in the lossy step is either
/// received or counted lost: one entry and one exit per attached sync function per sync the
/// module issued (arch_sync_kernel_mappings tail-calls sync_global_pgds: both fire). The
/// `lost` records, the summary and `sync_trace_events_lost_total` agree.
fn check_lossy(o: &Output) -> Result<()> {
    let step = "lossy-exact";
    o.expect_exit(step, 0)?;
    let probe = o.probe("probe")?;
    let sync_targets = probe
        .targets
        .iter()
        .filter(|t| t.attached && t.target.is_sync())
        .count() as u64;
    ensure!(sync_targets > 0, "probe: no sync function attached");
    let issued = num(o, step, "issued")?;
    ensure!(issued > 0, "step {step}: the module issued no sync");
    let s = summary(o, step)?;
    let lost = s.lost.get("events").copied().unwrap_or(0);
    let got = |k: &str| s.received.get(k).copied().unwrap_or(0);
    let (entries, exits) = (got("entry"), got("exit"));
    let written = 2 * issued * sync_targets;
    println!(
        "faults: {issued} syncs issued × {sync_targets} functions × 2 = {written} records: {entries} entries + {exits} exits received, {lost} lost"
    );
    ensure!(lost > 0, "step {step}: a one-page ring lost nothing");
    ensure!(
        entries + exits + lost == written,
        "step {step}: received {entries} + {exits} and lost {lost} make {}, the module's {issued} syncs made {written}",
        entries + exits + lost
    );
    let syncs = o.syncs(step)?.len() as u64;
    ensure!(
        syncs == exits,
        "step {step}: {syncs} sync records for {exits} exits received"
    );
    let in_records: u64 = o
        .events::<LostRecord>(step)?
        .iter()
        .filter(|l| l.what == "events")
        .map(|l| l.count)
        .sum();
    let scraped = metric(o, step, "sync_trace_events_lost_total")?;
    ensure!(
        in_records == lost && scraped == lost,
        "step {step}: lost events: {in_records} in `lost` records, {lost} in the summary, {scraped} in sync_trace_events_lost_total"
    );
    Ok(())
}

fn state(o: &Output, step: &str) -> Result<Vec<(&'static str, u64)>> {
    STATE_KEYS
        .iter()
        .map(|&k| Ok((k, num(o, step, k)?)))
        .collect()
}

/// Nothing a run held is left after `kill -9` or SIGTERM, and a new run after the kill traces.
fn check_left_behind(o: &Output) -> Result<()> {
    let base = state(o, "baseline")?;
    let during = state(o, "kill9-during")?;
    let grew: Vec<&str> = HELD_KEYS
        .iter()
        .copied()
        .filter(|k| {
            let v = |s: &[(&str, u64)]| s.iter().find(|(n, _)| n == k).map(|p| p.1);
            v(&during) > v(&base)
        })
        .collect();
    ensure!(
        !grew.is_empty(),
        "kill9-during: a running tracer shows in none of {HELD_KEYS:?}: the check could not see a leftover"
    );
    println!("faults: a running tracer holds more {grew:?}");
    o.expect_exit("kill9-during", 137)?;
    for step in ["kill9-after", "term-after"] {
        let diff = state_diff(o, "baseline", step)?;
        ensure!(diff.is_empty(), "{step}: left behind: {}", diff.join(", "));
    }
    let rerun = "kill9-rerun";
    o.expect_exit(rerun, 0)?;
    ensure!(
        !o.paired(rerun)?.is_empty(),
        "{rerun}: the run after kill -9 paired nothing"
    );
    ensure!(o.unsynced(rerun)?.is_empty(), "{rerun}: unsynced");
    summary(o, rerun).context("the SIGTERM-ed run printed no summary")?;
    Ok(())
}

/// The daemon's stderr lines of a step (`stderr: ` lines, INFO filtered by the script).
fn stderr(o: &Output, step: &str) -> Result<Vec<String>> {
    Ok(o.lines_of(step)?
        .iter()
        .filter_map(|l| l.strip_prefix("stderr: "))
        // What every run says when it starts.
        .filter(|l| *l != "ready" && !l.starts_with("serving metrics on "))
        .map(str::to_string)
        .collect())
}

/// Stdout a closed pipe or a full disk: the run goes on and counts what it traces, and says so
/// in one line.
fn check_output_gone(o: &Output) -> Result<()> {
    ensure!(
        num(o, "pipe", "head_lines")? == 1,
        "pipe: head read no line"
    );
    ensure!(num(o, "full-disk", "free_kib")? == 0, "full-disk: not full");
    o.expect_exit("full-disk", 0)?;
    for step in ["pipe", "full-disk"] {
        ensure!(num(o, step, "alive")? == 1, "{step}: the run died");
        let syncs = metric_sum(o, step, "sync_trace_syncs_total")?;
        let pops = metric_sum(o, step, "sync_trace_populations_total")?;
        ensure!(
            syncs >= 2 && pops >= 2,
            "{step}: the metrics stopped counting ({syncs} syncs, {pops} populations)"
        );
        let err = stderr(o, step)?;
        ensure!(
            err.len() == 1 && err[0].contains("cannot write records to stdout"),
            "{step}: expected one line about stdout on stderr, got {err:#?}"
        );
    }
    Ok(())
}

/// A fork/exit storm while a DIMM is hot-added at 32 TiB and every PGD is walked: the new
/// slots paired, nothing unsynced or mismatched, no kernel warning.
fn check_storm(o: &Output) -> Result<()> {
    let step = "storm";
    o.expect_exit(step, 0)?;
    let forks = num(o, step, "forks")?;
    ensure!(
        forks >= MIN_FORKS,
        "{step}: only {forks} processes forked (at least {MIN_FORKS})"
    );
    println!("faults: {forks} processes forked and exited during the hot-add");
    let warnings = num(o, step, "kernel_warnings")?;
    if warnings > 0 {
        bail!(
            "{step}: {warnings} kernel warnings:\n{}",
            o.lines_of(step)?
                .iter()
                .filter(|l| l.starts_with("dmesg: "))
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let paired = o.paired(step)?;
    for slot in SLOTS_32T {
        ensure!(
            paired.iter().any(|p| p.pop.slot == slot),
            "{step}: slot {slot} of the DIMM not paired"
        );
    }
    ensure!(o.unsynced(step)?.is_empty(), "{step}: unsynced reported");
    ensure!(
        o.events::<MismatchRecord>(step)?.is_empty(),
        "{step}: mismatch reported"
    );
    let s = summary(o, step)?;
    ensure!(
        s.unsynced == 0 && s.mismatches == 0 && s.verifications > 0,
        "{step}: summary: {} unsynced, {} mismatches, {} verifications",
        s.unsynced,
        s.mismatches,
        s.verifications
    );
    o.expect_exit("storm-audit", 0)?;
    Ok(())
}

/// The differences between two steps' `state` lines.
fn state_diff(o: &Output, from: &str, to: &str) -> Result<Vec<String>> {
    let a = state(o, from)?;
    let b = state(o, to)?;
    Ok(a.iter()
        .zip(&b)
        .filter(|(x, y)| x.1 != y.1)
        .map(|(x, y)| format!("{} {} → {}", x.0, x.1, y.1))
        .collect())
}

/// `stress` killed with a block offline: its watcher restores it from the journal; SIGTERM:
/// it restores by itself and reports. Nothing of its tracing is left either.
fn check_stress(o: &Output) -> Result<()> {
    let online = |step: &str| num(o, step, "blocks_online");
    ensure!(
        online("stress-kill9-during")? < online("stress-before")?,
        "stress-kill9-during: no block offline when stress was killed"
    );
    o.expect_exit("stress-kill9-during", 137)?;
    for step in ["stress-kill9-after", "stress-term"] {
        let diff = state_diff(o, "stress-before", step)?;
        ensure!(diff.is_empty(), "{step}: left behind: {}", diff.join(", "));
    }
    let err = stderr(o, "stress-kill9-after")?;
    ensure!(
        err.iter().any(|l| l.contains("restored memory")),
        "stress-kill9-after: the watcher said nothing about restoring: {err:#?}"
    );
    ensure!(
        num(o, "stress-kill9-after", "journal")? == 0,
        "stress-kill9-after: the journal is still there"
    );
    // Its --report page went to a full disk: one line, the report on stdout, exit 1.
    ensure!(
        num(o, "stress-term", "free_kib")? == 0,
        "stress-term: not full"
    );
    o.expect_exit("stress-term", 1)?;
    ensure!(
        num(o, "stress-term", "report_lines")? > 0,
        "stress-term: no report after SIGTERM"
    );
    ensure!(
        num(o, "stress-term", "report_files")? == 0,
        "stress-term: a truncated report page was left on the full disk"
    );
    let err = stderr(o, "stress-term")?;
    let about: Vec<&String> = err
        .iter()
        .filter(|l| l.contains("/tmp/full/report.html"))
        .collect();
    ensure!(
        about.len() == 1 && about[0].contains("cannot write the report to"),
        "stress-term: expected one line about the report page on stderr, got {err:#?}"
    );
    Ok(())
}

/// Every target, attached or not, is reported the same by `probe`, the run's log and
/// `sync_trace_probe_attached`; one that cannot attach (absent, notrace) stops nothing.
fn check_probes(o: &Output) -> Result<()> {
    let step = "lossy-exact";
    let probe = o.probe("probe")?;
    let log = o.lines_of(step)?;
    for t in &probe.targets {
        let sym = &t.symbol;
        let method = t.method.map_or("none", |m| m.name());
        let series = format!(
            "metric: sync_trace_probe_attached{{target=\"{sym}\",method=\"{method}\"}} {}",
            u8::from(t.attached)
        );
        ensure!(
            log.contains(&series),
            "{step}: no `{series}` for probe's {sym} (attached: {})",
            t.attached
        );
        let said = if t.attached {
            format!("attached {sym} via {method}")
        } else {
            format!("not attached {sym}: ")
        };
        ensure!(
            log.iter()
                .any(|l| l.starts_with("log: ") && l.contains(&said)),
            "{step}: the run's log lacks `{said}`"
        );
    }
    let missing: Vec<&str> = probe
        .targets
        .iter()
        .filter(|t| !t.attached)
        .map(|t| t.symbol.as_str())
        .collect();
    println!("faults: not attached on this kernel (the run went on without them): {missing:?}");
    Ok(())
}

pub fn check_faults(o: &Output) -> Result<()> {
    check_probes(o)?;
    check_capabilities(o)?;
    check_lossy(o)?;
    check_left_behind(o)?;
    check_disarmed(o)?;
    check_output_gone(o)?;
    check_storm(o)?;
    check_stress(o)
}
