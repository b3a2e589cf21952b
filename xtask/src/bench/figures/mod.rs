//! The guest figures, from the output of bench.sh: medians over the runs, each with its
//! baseline from the same boot.

mod idle;

use super::table::{median, Figure, Target};
use crate::test::output::Output;
use idle::idle;
use std::collections::HashMap;

/// Targets (docs/performance.md): a fraction of the anchor's start time and memory, a share
/// of one CPU when idle, a slowdown of a hot-add or devmap cycle, a delay of detection.
pub const STARTUP_RATIO: f64 = 0.1;
pub const RSS_RATIO: f64 = 0.1;
pub const IDLE_CPU_PCT: f64 = 0.1;
pub const HOTADD_RATIO: f64 = 1.01;
pub const DETECT_MS: f64 = 200.0;
/// `run --sweep` default: one read of init_mm's top-level table per period.
pub const SWEEP_PERIOD_MS: f64 = 75.0;

/// `key=value` words of the lines of `step` that start with `prefix `.
fn rows(o: &Output, step: &str, prefix: &str) -> Vec<HashMap<String, String>> {
    let Ok(lines) = o.lines_of(step) else {
        return Vec::new();
    };
    lines
        .iter()
        .filter_map(|l| l.strip_prefix(prefix)?.strip_prefix(' '))
        .map(|rest| {
            rest.split_whitespace()
                .filter_map(|w| w.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

fn num(r: &HashMap<String, String>, k: &str) -> Option<f64> {
    r.get(k)?.parse().ok()
}

/// Samples of `key` (scaled) from the rows whose `sel_key` is `sel`.
fn samples(
    rows: &[HashMap<String, String>],
    sel_key: &str,
    sel: &str,
    key: &str,
    scale: f64,
) -> Vec<f64> {
    rows.iter()
        .filter(|r| r.get(sel_key).map(String::as_str) == Some(sel))
        .filter_map(|r| num(r, key).map(|v| v * scale))
        .collect()
}

struct Ctx<'a> {
    kernel: &'a str,
    bpftrace: &'a str,
}

impl Ctx<'_> {
    #[allow(clippy::too_many_arguments)]
    fn fig(
        &self,
        figure: &str,
        unit: &str,
        value: &[f64],
        baseline: Option<&[f64]>,
        baseline_name: &str,
        target: Target,
        missing: &str,
    ) -> Figure {
        let v = median(value);
        Figure {
            figure: figure.into(),
            kernel: self.kernel.into(),
            unit: unit.into(),
            value: v,
            baseline: baseline.and_then(median),
            baseline_name: baseline_name.into(),
            target,
            samples: value.len(),
            note: if v.is_none() {
                missing.into()
            } else {
                String::new()
            },
        }
    }
}

/// Figures with one sample per run (`--runs`) when every run went through; `{few}` is the
/// idle step's number of processes.
const PER_RUN: [&str; 8] = [
    "exec → ready",
    "peak RSS",
    "probe cost per sync call",
    "detection delay",
    "hot-add cycle",
    "devmap cycle",
    "idle CPU, {few} idle",
    "idle wake-ups per second, {few} idle",
];

/// Says so in the note of every per-run figure that has fewer samples than runs (a run
/// that failed, or a script that stopped counting): its median is then of fewer runs
/// than the table's command asked for.
pub fn note_missing_runs(v: &mut [Figure], runs: u32, few: u32) {
    let runs = runs as usize;
    for f in v.iter_mut() {
        let per_run = PER_RUN
            .iter()
            .any(|p| f.figure.starts_with(&p.replace("{few}", &few.to_string())));
        if per_run && f.value.is_some() && f.samples < runs {
            let say = format!("{} of {runs} runs gave a sample", f.samples);
            f.note = if f.note.is_empty() {
                say
            } else {
                format!("{}; {say}", f.note)
            };
        }
    }
}

/// Every guest figure of one boot.
pub fn guest_figures(o: &Output, kernel: &str) -> Vec<Figure> {
    let bpftrace = o
        .lines_of("start")
        .ok()
        .and_then(|l| l.iter().find_map(|l| l.strip_prefix("bpftrace=")))
        .map(|v| {
            v.trim()
                .trim_start_matches("bpftrace")
                .trim()
                .trim_start_matches('v')
        })
        .map(str::to_string)
        .unwrap_or_default();
    let bt = format!("bpftrace {bpftrace}");
    let c = Ctx {
        kernel,
        bpftrace: &bt,
    };
    let mut v = startup(o, &c);
    v.extend(percall(o, &c));
    v.push(detect(o, &c));
    v.extend(hotadd(o, &c));
    v.extend(devmap(o, &c));
    v.extend(idle(o, &c));
    v
}

fn startup(o: &Output, c: &Ctx) -> Vec<Figure> {
    let r = rows(o, "startup", "startup");
    let ms = |tool| samples(&r, "tool", tool, "us", 1e-3);
    let mib = |tool| samples(&r, "tool", tool, "hwm_kb", 1.0 / 1024.0);
    let why = "no run reached ready (see the guest output)";
    vec![
        c.fig(
            "exec → ready",
            "ms",
            &ms("sync-trace"),
            Some(&ms("bpftrace")),
            c.bpftrace,
            Target::RatioAtMost(STARTUP_RATIO),
            why,
        ),
        c.fig(
            "peak RSS (VmHWM)",
            "MiB",
            &mib("sync-trace"),
            Some(&mib("bpftrace")),
            c.bpftrace,
            Target::RatioAtMost(RSS_RATIO),
            why,
        ),
    ]
}

/// The forced method must be the one every target attached with.
fn wrong_method(o: &Output, method: &str) -> Option<String> {
    let lines = o.lines_of("percall").ok()?;
    let prefix = format!("attach: want={method} attached ");
    let got: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix(&prefix))
        .collect();
    if got.is_empty() {
        return Some(format!("no target attached with --attach {method}"));
    }
    got.iter()
        .find(|g| !g.ends_with(&format!("via {method}")))
        .map(|g| format!("--attach {method}, yet {g}"))
}

fn percall(o: &Output, c: &Ctx) -> Vec<Figure> {
    let r = rows(o, "percall", "percall");
    let per_call = |m: &str| -> Vec<f64> {
        r.iter()
            .filter(|x| x.get("method").map(String::as_str) == Some(m))
            .filter_map(|x| Some(num(x, "us")? * 1e3 / num(x, "calls")?))
            .collect()
    };
    let none = per_call("none");
    let base = median(&none);
    let lost: f64 = rows(o, "percall", "lost")
        .iter()
        .filter_map(|x| num(x, "lost"))
        .sum();
    ["fentry", "kprobe"]
        .into_iter()
        .map(|m| {
            // The probe's cost: a traced call's time less the median untraced one.
            let added: Vec<f64> = match base {
                Some(b) => per_call(m).iter().map(|t| t - b).collect(),
                None => Vec::new(),
            };
            let mut f = c.fig(
                &format!("probe cost per sync call, {m}"),
                "ns",
                &added,
                Some(&none),
                "untraced call",
                Target::None,
                "no timed storm (see the guest output)",
            );
            if let Some(why) = wrong_method(o, m) {
                f.value = None;
                f.note = why;
            } else if lost > 0.0 {
                f.note = format!("{lost} lost records in these runs: the ring overflowed");
            }
            f
        })
        .collect()
}

fn detect(o: &Output, c: &Ctx) -> Figure {
    let written: Vec<(u64, u64)> = rows(o, "detect", "mode=never")
        .iter()
        .filter_map(|x| Some((num(x, "slot")? as u64, num(x, "ts_ns")? as u64)))
        .collect();
    let unsynced = o.unsynced("detect").unwrap_or_default();
    let delays: Vec<f64> = written
        .iter()
        .filter_map(|&(slot, ts)| {
            let u = unsynced.iter().find(|u| u.pop.slot as u64 == slot)?;
            Some(u.ts_ns.saturating_sub(ts) as f64 / 1e6)
        })
        .collect();
    let mut f = c.fig(
        "detection delay (write → unsynced)",
        "ms",
        &delays,
        None,
        "",
        Target::AtMost(DETECT_MS),
        "no never-synced population was reported unsynced",
    );
    if f.value.is_some() && delays.len() < written.len() {
        f.note = format!(
            "{} of {} never-synced populations reported",
            delays.len(),
            written.len()
        );
    }
    f
}

/// Compound devmap cycles: memremap_pages() of 128 MiB as the module times it in the kernel
/// (`end_ns - start_ns` of its `last` line), traced against untraced, twice: without the RCU
/// grace period memory hotplug waits for at its start (`gp_ns`, the module's kretprobe on
/// rcu_sync_enter(): the target), and whole (informative). The grace period comes before
/// memremap_pages() has done anything, with the daemon at rest, and its length is RCU's
/// pace in steps of a few jiffies (8-30 ms under emulation, of a 15-25 ms call); with it
/// the ratio of a few cycles is that of two draws of it. A cycle whose module could not
/// time it (`gp_ns=-1`, no kretprobes) counts only whole.
fn devmap(o: &Output, c: &Ctx) -> Vec<Figure> {
    let r: Vec<_> = rows(o, "devmap", "devmap")
        .into_iter()
        .filter_map(|mut x| {
            let ns = num(&x, "end_ns")? - num(&x, "start_ns")?;
            x.insert("ns".into(), ns.to_string());
            if let Some(gp) = num(&x, "gp_ns").filter(|g| *g >= 0.0 && *g <= ns) {
                x.insert("ns_after_gp".into(), (ns - gp).to_string());
            }
            Some(x)
        })
        .collect();
    let ms = |mode, key| samples(&r, "tracing", mode, key, 1e-6);
    vec![
        c.fig(
            "devmap cycle (memremap_pages, compound, 128 MiB; without the RCU grace period at its start)",
            "ms",
            &ms("traced", "ns_after_gp"),
            Some(&ms("untraced", "ns_after_gp")),
            "untraced",
            Target::RatioAtMost(HOTADD_RATIO),
            "no traced devmap cycle completed with its grace period timed (gp_ns)",
        ),
        c.fig(
            "devmap cycle, whole (with the grace period)",
            "ms",
            &ms("traced", "ns"),
            Some(&ms("untraced", "ns")),
            "untraced",
            Target::None,
            "no traced devmap cycle completed",
        ),
    ]
}

/// The hot-add cycle twice: the kernel's own part (`kernel_us`, on the kernel log's clock:
/// the target) and the guest's wall clock around it (`us`: the host's QMP round trip,
/// ACPI's notification and the shell's polling too, so informative only).
fn hotadd(o: &Output, c: &Ctx) -> Vec<Figure> {
    // Only cycles whose block came online count.
    let r: Vec<_> = rows(o, "hotadd", "hotadd")
        .into_iter()
        .filter(|x| x.get("state").is_some_and(|s| s.starts_with("online")))
        .collect();
    let ms = |mode, key| samples(&r, "mode", mode, key, 1e-3);
    vec![
        c.fig(
            "hot-add cycle (DIMM add + online, in the kernel)",
            "ms",
            &ms("traced", "kernel_us"),
            Some(&ms("untraced", "kernel_us")),
            "untraced",
            Target::RatioAtMost(HOTADD_RATIO),
            "no traced hot-add cycle has both kernel log lines (init_memory_mapping, st_populate online)",
        ),
        c.fig(
            "hot-add cycle, end to end (QMP, ACPI, polling)",
            "ms",
            &ms("traced", "us"),
            Some(&ms("untraced", "us")),
            "untraced",
            Target::None,
            "no traced hot-add cycle completed",
        ),
    ]
}

#[cfg(test)]
mod tests;
