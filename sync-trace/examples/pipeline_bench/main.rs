//! Host benchmark of sync-trace's userspace path; no kernel needed.
//!
//! Run:
//!     cargo run --release -p sync-trace --example pipeline_bench -- [--quick] [--only pipeline|replay|verify]
//!
//! (`--only` measures one group of figures, e.g. under a profiler.)
//!
//! Prints one JSON object per line on stdout, one per figure, and nothing
//! else there (progress goes to stderr):
//!     {"figure": NAME, "value": NUMBER, "unit": UNIT, "target": NUMBER|null, "baseline": NUMBER|null}
//! Rates are per CPU second of the measuring thread (one core),
//! so that other load on the machine does not change them much.
//! `target` is the bound to meet: a minimum for a unit ending in `/s`, a
//! maximum otherwise. `baseline` is the figure of the same run that this
//! one is compared with (RSS and ns/PGD at the smallest count), or null.
//!
//! Figures (counts in the names; `--quick` uses the smaller ones, for a
//! smoke test of a few seconds):
//! - `pipeline_events_per_s`: raw ring-buffer records (an entry or an exit)
//!   through decode → tracer → model → metrics → NDJSON (discarded) on one
//!   core; target 10,000,000.
//! - `pipeline_rss_kib_at_<N>_events`: RSS after N events (1 M, 10 M,
//!   100 M; quick: 100 k, 1 M, 2 M); target 1.1× the first.
//! - `replay_records_per_s_<N>` and `replay_peak_rss_kib_<N>`: `replay`
//!   (reader → model → NDJSON, discarded) of a recording of N records the
//!   pipeline wrote to a temporary directory (1 M and 10 M; quick: 20 k
//!   and 200 k); the process's peak RSS during the replay (reset before
//!   it), target 1.1× the first + 1 MiB.
//! - `verify_ns_per_pgd_<N>`: one verification pass over N simulated PGDs
//!   (1 k, 10 k, 100 k; the same in quick), per PGD; linear when flat:
//!   target 1.5× the first.
//!
//! Exits 1 with a one-line error when a check of what the path computed
//! fails (the benchmark then measured a broken path).

mod clock;
#[cfg(test)]
mod golden;
mod pipeline;
mod replay;
mod rss;
mod stream;
mod walk;

use std::{fmt::Write as _, io, process::ExitCode};

/// How much of each figure to measure.
struct Counts {
    pipeline: [u64; 3],
    replay: [u64; 2],
    pgds: [usize; 3],
    walk_reps: usize,
}

const FULL: Counts = Counts {
    pipeline: [1_000_000, 10_000_000, 100_000_000],
    replay: [1_000_000, 10_000_000],
    pgds: [1_000, 10_000, 100_000],
    walk_reps: 5,
};

const QUICK: Counts = Counts {
    pipeline: [100_000, 1_000_000, 2_000_000],
    replay: [20_000, 200_000],
    pgds: [1_000, 10_000, 100_000],
    walk_reps: 2,
};

/// One output line.
fn figure(
    name: &str,
    value: f64,
    unit: &str,
    target: Option<f64>,
    baseline: Option<f64>,
) -> String {
    let num = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("{v:.3}"));
    let mut s = String::new();
    let _ = write!(
        s,
        "{{\"figure\": \"{name}\", \"value\": {value:.3}, \"unit\": \"{unit}\", \"target\": {}, \"baseline\": {}}}",
        num(target),
        num(baseline)
    );
    s
}

fn human(n: u64) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

/// Groups of figures.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Group {
    Pipeline,
    Replay,
    Verify,
}

fn bench(c: &Counts, only: Option<Group>, emit: &mut dyn FnMut(String)) -> anyhow::Result<()> {
    let wants = |g: Group| only.is_none_or(|o| o == g);
    if wants(Group::Pipeline) {
        bench_pipeline(c, emit)?;
    }
    if wants(Group::Replay) {
        bench_replay(c, emit)?;
    }
    if wants(Group::Verify) {
        bench_verify(c, emit)?;
    }
    Ok(())
}

fn bench_pipeline(c: &Counts, emit: &mut dyn FnMut(String)) -> anyhow::Result<()> {
    eprintln!("pipeline: {} events", human(c.pipeline[2]));
    let m = pipeline::run(&c.pipeline, Box::new(io::sink()))?;
    emit(figure(
        "pipeline_events_per_s",
        m.events as f64 / m.secs,
        "events/s",
        Some(10_000_000.0),
        None,
    ));
    let first = m.rss[0].1 as f64;
    for (i, &(_, kib)) in m.rss.iter().enumerate() {
        let name = format!("pipeline_rss_kib_at_{}_events", human(c.pipeline[i]));
        let (target, baseline) = if i == 0 {
            (None, None)
        } else {
            (Some(1.1 * first), Some(first))
        };
        emit(figure(&name, kib as f64, "KiB", target, baseline));
    }
    Ok(())
}

fn bench_replay(c: &Counts, emit: &mut dyn FnMut(String)) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("sync-trace-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = (|| -> anyhow::Result<()> {
        let mut first_peak = None;
        for n in c.replay {
            let path = dir.join(format!("replay-{n}.ndjson"));
            eprintln!("replay: recording {} records", human(n));
            let (records, calls) = replay::record(&path, n)?;
            eprintln!("replay: replaying {}", path.display());
            let r = replay::replay(&path, calls)?;
            std::fs::remove_file(&path).ok();
            let label = human(n);
            emit(figure(
                &format!("replay_records_per_s_{label}"),
                records as f64 / r.secs,
                "records/s",
                None,
                None,
            ));
            let peak = r.peak_kib as f64;
            let base: Option<f64> = first_peak;
            emit(figure(
                &format!("replay_peak_rss_kib_{label}"),
                peak,
                "KiB",
                base.map(|b| 1.1 * b + 1024.0),
                base,
            ));
            first_peak.get_or_insert(peak);
        }
        Ok(())
    })();
    std::fs::remove_dir_all(&dir).ok();
    result
}

fn bench_verify(c: &Counts, emit: &mut dyn FnMut(String)) -> anyhow::Result<()> {
    let mut first = None;
    for n in c.pgds {
        eprintln!("verification pass: {} PGDs", human(n as u64));
        // Short passes are repeated more: the best of about 100 k PGDs.
        let ns = walk::ns_per_pgd(n, c.walk_reps.max(100_000 / n))?;
        let base: Option<f64> = first;
        emit(figure(
            &format!("verify_ns_per_pgd_{}", human(n as u64)),
            ns,
            "ns/PGD",
            base.map(|b| 1.5 * b),
            base,
        ));
        first.get_or_insert(ns);
    }
    Ok(())
}

fn main() -> ExitCode {
    let mut counts = &FULL;
    let mut only = None;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter().map(String::as_str);
    while let Some(a) = it.next() {
        only = match (a, a.eq("--only").then(|| it.next()).flatten()) {
            ("--quick", _) => {
                counts = &QUICK;
                only
            }
            (_, Some("pipeline")) => Some(Group::Pipeline),
            (_, Some("replay")) => Some(Group::Replay),
            (_, Some("verify")) => Some(Group::Verify),
            _ => {
                eprintln!(
                    "pipeline_bench: unknown argument `{a}`; the flags are --quick and --only pipeline|replay|verify"
                );
                return ExitCode::from(2);
            }
        };
    }
    match bench(counts, only, &mut |line| println!("{line}")) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pipeline_bench: {e:#}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small run prints every figure as a JSON object with the fields
    /// the bench reader expects.
    #[test]
    fn a_small_run_prints_every_figure() {
        let tiny = Counts {
            pipeline: [4_000, 8_000, 12_000],
            replay: [1_000, 2_000],
            pgds: [100, 200, 400],
            walk_reps: 1,
        };
        let mut lines = Vec::new();
        bench(&tiny, None, &mut |l| lines.push(l)).unwrap();
        let mut names = Vec::new();
        for l in &lines {
            let v: serde_json::Value = serde_json::from_str(l).expect(l);
            assert!(
                v["value"]
                    .as_f64()
                    .is_some_and(|x| x > 0.0 || v["unit"] == "KiB"),
                "{l}"
            );
            assert!(
                v["unit"].is_string() && v.get("target").is_some() && v.get("baseline").is_some(),
                "{l}"
            );
            names.push(v["figure"].as_str().unwrap().to_string());
        }
        assert_eq!(
            names,
            [
                "pipeline_events_per_s",
                "pipeline_rss_kib_at_4k_events",
                "pipeline_rss_kib_at_8k_events",
                "pipeline_rss_kib_at_12k_events",
                "replay_records_per_s_1k",
                "replay_peak_rss_kib_1k",
                "replay_records_per_s_2k",
                "replay_peak_rss_kib_2k",
                "verify_ns_per_pgd_100",
                "verify_ns_per_pgd_200",
                "verify_ns_per_pgd_400",
            ]
        );
    }
}
