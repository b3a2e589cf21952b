//! The report as text for the terminal.

use std::{collections::BTreeMap, fmt::Write as _};

use super::model::{Percentiles, Report};

/// Up to this many cycles the text report has a row for each.
const TEXT_ALL_CYCLES: usize = 50;

/// p50, p99 and max, `-` when nothing was paired.
pub fn fmt_lat(p: &Percentiles) -> [String; 3] {
    if p.count == 0 {
        ["-".into(), "-".into(), "-".into()]
    } else {
        [fmt_ns(p.p50_ns), fmt_ns(p.p99_ns), fmt_ns(p.max_ns)]
    }
}

pub fn fmt_ns(ns: u64) -> String {
    match ns {
        0..=9_999 => format!("{ns} ns"),
        10_000..=9_999_999 => format!("{:.1} µs", ns as f64 / 1e3),
        10_000_000..=9_999_999_999 => format!("{:.1} ms", ns as f64 / 1e6),
        _ => format!("{:.2} s", ns as f64 / 1e9),
    }
}

fn list<T: ToString>(v: &[T]) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        v.iter().map(T::to_string).collect::<Vec<_>>().join(",")
    }
}

fn regions(m: &BTreeMap<String, u64>) -> String {
    if m.is_empty() {
        "-".into()
    } else {
        m.iter()
            .map(|(r, n)| format!("{r}={n}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl Report {
    /// The terminal report.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "sync-trace stress on {}: {} block(s) [{}], {} device-dax device(s) [{}]",
            self.kernel.as_deref().unwrap_or("unknown kernel"),
            self.blocks.len(),
            list(&self.blocks.iter().map(|b| b.id).collect::<Vec<_>>()),
            self.dax.len(),
            list(
                &self
                    .dax
                    .iter()
                    .map(|d| format!("{}({})", d.name, d.mode.name()))
                    .collect::<Vec<_>>()
            ),
        );
        for sk in &self.skipped {
            let _ = writeln!(s, "skipped {}: {}", sk.target, sk.reason);
        }
        let _ = writeln!(
            s,
            "{:>5} {:<24} {:<24} {:>4} {:>6} {:>6} {:>10} {:>10} {:>10} {:>4} {:>4} {:>4}  populations",
            "cycle", "offlined/removed", "onlined/added", "busy", "syncs", "paired", "p50", "p99", "max", "uns", "mis", "lost"
        );
        // Long runs: the eventful cycles only (JSON and HTML have all).
        let n = self.cycles.len();
        let mut omitted = 0;
        for c in std::iter::once(&self.before).chain(&self.cycles) {
            if n > TEXT_ALL_CYCLES && c.index > 1 && c.index != n as u64 && !c.eventful() {
                omitted += 1;
                continue;
            }
            let idx = if c.index == 0 {
                "start".to_string()
            } else {
                c.index.to_string()
            };
            let off = format!(
                "{} {}",
                list(&c.offlined),
                if c.removed.is_empty() {
                    String::new()
                } else {
                    format!("-[{}]", list(&c.removed))
                }
            );
            let on = format!(
                "{} {}",
                list(&c.onlined),
                if c.added.is_empty() {
                    String::new()
                } else {
                    format!("+[{}]", list(&c.added))
                }
            );
            let lat = fmt_lat(&c.latency);
            let _ = writeln!(
                s,
                "{:>5} {:<24} {:<24} {:>4} {:>6} {:>6} {:>10} {:>10} {:>10} {:>4} {:>4} {:>4}  {}",
                idx,
                off.trim_end(),
                on.trim_end(),
                c.busy.len(),
                c.syncs,
                c.paired,
                lat[0],
                lat[1],
                lat[2],
                c.unsynced,
                c.mismatches,
                c.lost,
                regions(&c.populations)
            );
            if !c.busy.is_empty() {
                let _ = writeln!(
                    s,
                    "      busy (EBUSY) or refused (EINVAL), left as found: {}",
                    c.busy.join(" ")
                );
            }
            for f in &c.failed {
                let _ = writeln!(s, "      failed: {f}");
            }
        }
        if omitted > 0 {
            let _ = writeln!(
                s,
                "      ({omitted} cycle(s) without populations, syncs, verdicts, losses or failures not shown; --json and --report list every cycle)"
            );
        }
        if !self.slots.is_empty() {
            let _ = writeln!(
                s,
                "{:>5} {:<20} {:<15} {:<7} {:>13}  verdict",
                "slot", "addr", "region", "source", "PGDs verified"
            );
            for r in &self.slots {
                let _ = writeln!(
                    s,
                    "{:>5} {:<20} {:<15} {:<7} {:>13}  {}",
                    r.slot,
                    r.addr.to_string(),
                    r.region,
                    r.source,
                    format!("{}/{}", r.pgds_verified, r.pgds_total),
                    r.verdict
                );
            }
        }
        if self.interrupted {
            let _ = writeln!(s, "interrupted: stopped early, state restored");
        }
        if let Some(h) = &self.hung_write {
            let _ = writeln!(s, "WEDGED: {}; cycling stopped", h.explain());
        }
        for f in &self.restore_failures {
            let _ = writeln!(s, "NOT RESTORED: {f}");
        }
        let _ = writeln!(s, "verdict: {}", self.verdict);
        s
    }
}
