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
pub const SWEEP_PERIOD_MS: f64 = 50.0;

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
    v.push(hotadd(o, &c));
    v.push(devmap(o, &c));
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
/// (`end_ns - start_ns` of its `last` line), traced against untraced.
fn devmap(o: &Output, c: &Ctx) -> Figure {
    let r: Vec<_> = rows(o, "devmap", "devmap")
        .into_iter()
        .filter_map(|mut x| {
            let ns = num(&x, "end_ns")? - num(&x, "start_ns")?;
            x.insert("ns".into(), ns.to_string());
            Some(x)
        })
        .collect();
    let ms = |mode| samples(&r, "tracing", mode, "ns", 1e-6);
    c.fig(
        "devmap cycle (memremap_pages, compound, 128 MiB)",
        "ms",
        &ms("traced"),
        Some(&ms("untraced")),
        "untraced",
        Target::RatioAtMost(HOTADD_RATIO),
        "no traced devmap cycle completed",
    )
}

fn hotadd(o: &Output, c: &Ctx) -> Figure {
    // Only cycles whose block came online count.
    let r: Vec<_> = rows(o, "hotadd", "hotadd")
        .into_iter()
        .filter(|x| x.get("state").is_some_and(|s| s.starts_with("online")))
        .collect();
    let ms = |mode| samples(&r, "mode", mode, "us", 1e-3);
    c.fig(
        "hot-add cycle (DIMM add + online)",
        "ms",
        &ms("traced"),
        Some(&ms("untraced")),
        "untraced",
        Target::RatioAtMost(HOTADD_RATIO),
        "no traced hot-add cycle completed",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines as bench.sh prints them (a 6.12 guest's, shortened).
    const OUT: &str = r#"=== step start
bpftrace=bpftrace v0.17.0
=== step startup
startup tool=sync-trace run=1 us=100000 hwm_kb=10240
startup tool=bpftrace run=1 us=1000000 hwm_kb=102400
startup tool=sync-trace run=2 us=300000 hwm_kb=10240
startup tool=bpftrace run=2 us=1200000 hwm_kb=102400
startup tool=sync-trace run=3 failed
=== step percall
percall method=none calls=4000 us=40000
attach: want=fentry attached arch_sync_kernel_mappings via fentry
percall method=fentry calls=4000 us=48000
lost=0 syncs=8002
attach: want=kprobe attached arch_sync_kernel_mappings via fentry
percall method=kprobe calls=4000 us=80000
lost=0 syncs=8002
=== step detect
mode=never level=p4d slot=504 addr=0xfffffc0000000000 ts_ns=166024425277 sync_ts_ns=0
{"event":"unsynced","ts_ns":166169845290,"cpu":null,"pid":null,"comm":null,"level":"p4d","slot":504,"addr":"0xfffffc0000000000","region":"other","source":"effect","populated_ns":166013016957,"grace_ns":100000000,"pgds_missing":4,"pgds_total":5,"walk_complete":true,"confirmed":true,"uncertain":false,"stack":[]}
=== step hotadd
hotadd cycle=0 mode=untraced addr=35184372088832 us=1000000 blocks=1 state=online_movable
hotadd cycle=1 mode=traced addr=35734127902720 us=1010000 blocks=1 state=online_movable
hotadd cycle=2 mode=traced addr=36283883716608 us=9000000 blocks=0 state=cat: no such file
=== step devmap
devmap cycle=0 tracing=untraced mode=devmap phys=0x280000000000 start_ns=1000000 end_ns=41000000
devmap cycle=1 tracing=traced mode=devmap phys=0x288000000000 start_ns=50000000 end_ns=92000000
devmap cycle=2 tracing=traced memremap failed
=== step idle-few
idle spawned=10 procs=77 ticks=6 us=60000000 clk_tck=100
"#;

    fn get<'a>(v: &'a [Figure], name: &str) -> &'a Figure {
        v.iter().find(|f| f.figure.starts_with(name)).unwrap()
    }

    #[test]
    fn reads_every_figure_of_a_boot() {
        let v = guest_figures(&Output::parse(OUT), "6.12");
        let f = get(&v, "exec → ready");
        assert_eq!(
            (f.value, f.baseline, f.samples),
            (Some(200.0), Some(1100.0), 2)
        );
        assert_eq!(f.baseline_name, "bpftrace 0.17.0");
        assert_eq!(f.met(), Some(false));
        assert_eq!(get(&v, "peak RSS").ratio(), Some(0.1));
        // fentry: 12 µs per call traced, 10 untraced.
        let f = get(&v, "probe cost per sync call, fentry");
        assert_eq!((f.value, f.baseline), (Some(2000.0), Some(10000.0)));
        // kprobe was asked for, fentry attached: no figure.
        let f = get(&v, "probe cost per sync call, kprobe");
        assert_eq!(f.value, None);
        assert!(f.note.contains("via fentry"), "{}", f.note);
        let f = get(&v, "detection delay");
        assert!((f.value.unwrap() - 145.42).abs() < 0.01, "{f:?}");
        assert_eq!(f.met(), Some(true));
        // The cycle whose block never came online is left out.
        let f = get(&v, "hot-add cycle");
        assert_eq!(
            (f.value, f.baseline, f.samples),
            (Some(1010.0), Some(1000.0), 1)
        );
        assert_eq!(f.met(), Some(true));
        // The module's own times: 42 ms traced, 40 untraced; a cycle without them is left out.
        let f = get(&v, "devmap cycle");
        assert_eq!(
            (f.value, f.baseline, f.samples),
            (Some(42.0), Some(40.0), 1)
        );
        assert_eq!(f.met(), Some(false));
        let f = get(&v, "idle CPU, 10 idle");
        assert_eq!(f.value, Some(0.1));
        assert_eq!(f.met(), Some(true));
        assert_eq!(get(&v, "sweep CPU per period").value, Some(50.0));
        // The step that never ran: a row that says so.
        let f = get(&v, "idle CPU, 0 idle");
        assert_eq!(f.value, None);
        assert_eq!(f.note, "the idle window did not complete");
    }

    #[test]
    fn a_per_run_figure_short_of_runs_says_so() {
        let mut v = guest_figures(&Output::parse(OUT), "6.12");
        note_missing_runs(&mut v, 2, 10);
        // Two startup runs of each: nothing to say; one hot-add cycle of two asked for.
        assert_eq!(get(&v, "exec → ready").note, "");
        assert_eq!(get(&v, "hot-add cycle").note, "1 of 2 runs gave a sample");
        assert_eq!(get(&v, "devmap cycle").note, "1 of 2 runs gave a sample");
        // No value: the note says why already, nothing added.
        assert_eq!(
            get(&v, "idle CPU, 0 idle").note,
            "the idle window did not complete"
        );
    }

    #[test]
    fn idle_cpu_is_the_process_time_and_the_kernel_timer_time() {
        let out = "=== step idle-few\n\
            idle sweep=kernel spawned=10 procs=77 ticks=9 ns=30000000 wakeups=120 us=60000000 clk_tck=100 timer_readings=1250 timer_changes=0 timer_us=25000\n\
            idle sweep=user spawned=10 procs=77 ticks=300 ns=3000000000 wakeups=1260 us=60000000 clk_tck=100 timer_readings=0\n";
        let v = guest_figures(&Output::parse(out), "6.12");
        // schedstat's ns before ticks (30 ms, not 90), the timer's 25 ms added.
        let f = get(&v, "idle CPU, 10 idle");
        assert!((f.value.unwrap() - 0.0916).abs() < 1e-3, "{f:?}");
        assert_eq!(f.met(), Some(true));
        assert_eq!(f.baseline, Some(5.0));
        assert_eq!(f.baseline_name, "sweep from userspace");
        let f = get(&v, "idle wake-ups per second, 10");
        assert_eq!((f.value, f.baseline), (Some(2.0), Some(21.0)));
        let f = get(&v, "sweep CPU per period");
        assert_eq!(f.value, Some(20.0));
        assert_eq!(f.note, "the kernel timer's callback, per reading");
    }
}
