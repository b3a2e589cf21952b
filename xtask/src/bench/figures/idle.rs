//! The idle figures: the daemon's CPU share and wake-ups with few and many processes, and
//! the sweep's cost per period.

use super::{num, rows, Ctx, IDLE_CPU_PCT, SWEEP_PERIOD_MS};
use crate::bench::table::{Figure, Target};
use crate::test::output::Output;
use std::collections::HashMap;

fn cpu_pct(x: &HashMap<String, String>) -> Option<f64> {
    let secs = num(x, "us")? / 1e6;
    let own = match num(x, "ns").filter(|&n| n > 0.0) {
        Some(ns) => ns / 1e9,
        None => num(x, "ticks")? / num(x, "clk_tck")?,
    };
    let timer = num(x, "timer_us").unwrap_or(0.0) / 1e6;
    Some(100.0 * (own + timer) / secs)
}

pub(super) fn idle(o: &Output, c: &Ctx) -> Vec<Figure> {
    let mut v = Vec::new();
    for (step, target) in [
        ("idle-few", Target::AtMost(IDLE_CPU_PCT)),
        ("idle-many", Target::None),
    ] {
        let all = rows(o, step, "idle");
        let spawned = all.first().and_then(|x| num(x, "spawned")).unwrap_or(0.0);
        // Lines without `sweep=` are the kernel's (older bench output).
        let (r, user): (Vec<_>, Vec<_>) = all
            .into_iter()
            .partition(|x| x.get("sweep").is_none_or(|s| s != "user"));
        let pct: Vec<f64> = r.iter().filter_map(cpu_pct).collect();
        let base: Vec<f64> = user.iter().filter_map(cpu_pct).collect();
        v.push(c.fig(
            &format!("idle CPU, {spawned} idle processes"),
            "% CPU",
            &pct,
            (!base.is_empty()).then_some(&base[..]),
            "sweep from userspace",
            target,
            "the idle window did not complete",
        ));
        let per_s = |rows: &[HashMap<String, String>]| -> Vec<f64> {
            rows.iter()
                .filter_map(|x| Some(num(x, "wakeups")? / (num(x, "us")? / 1e6)))
                .collect()
        };
        let (wakeups, base) = (per_s(&r), per_s(&user));
        v.push(c.fig(
            &format!("idle wake-ups per second, {spawned} idle processes"),
            "/s",
            &wakeups,
            (!base.is_empty()).then_some(&base[..]),
            "sweep from userspace",
            Target::None,
            "the idle window did not complete",
        ));
        if step == "idle-few" {
            v.push(sweep_per_period(&r, &pct, c));
        }
    }
    v
}

/// The sweep's CPU per period: the kernel timer's callback time per reading when the
/// sweep ran in the kernel; else all the idle CPU of the run charged to its sweeps (an
/// upper bound).
fn sweep_per_period(r: &[HashMap<String, String>], pct: &[f64], c: &Ctx) -> Figure {
    let timer: Vec<f64> = r
        .iter()
        .filter_map(|x| {
            let n = num(x, "timer_readings").filter(|&n| n > 0.0)?;
            Some(num(x, "timer_us")? / n)
        })
        .collect();
    let (per, note) = if timer.is_empty() {
        let per: Vec<f64> = pct
            .iter()
            .map(|p| p / 100.0 * SWEEP_PERIOD_MS * 1e3)
            .collect();
        (
            per,
            "upper bound: all idle CPU of the run charged to its sweeps",
        )
    } else {
        (timer, "the kernel timer's callback, per reading")
    };
    let mut f = c.fig(
        "sweep CPU per period (75 ms)",
        "µs",
        &per,
        None,
        "",
        Target::None,
        "the idle window did not complete",
    );
    if f.value.is_some() {
        f.note = note.into();
    }
    f
}
