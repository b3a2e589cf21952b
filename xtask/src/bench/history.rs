//! The saved runs (`target/bench/bench-*.json`) and the plot of each figure's ratio over
//! them (`target/bench/ratios.svg`): a self-contained SVG drawn here, no font or script
//! from elsewhere.

use super::table::BenchRun;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

const W: f64 = 760.0;
const H: f64 = 360.0;
/// Margins: left (axis labels), right (legend), top, bottom (run labels).
const ML: f64 = 56.0;
const MR: f64 = 300.0;
const MT: f64 = 16.0;
const MB: f64 = 40.0;
/// Line colours, one per series (cycled).
const COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// Every saved run in `dir`, oldest first (by date, then file name).
pub fn load(dir: &Path) -> Result<Vec<(PathBuf, BenchRun)>> {
    let mut v = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else {
        return Ok(v);
    };
    for e in rd.flatten() {
        let p = e.path();
        let name = p.file_name().unwrap_or_default().to_string_lossy();
        if !(name.starts_with("bench-") && name.ends_with(".json")) {
            continue;
        }
        let text = fs::read_to_string(&p)?;
        match serde_json::from_str::<BenchRun>(&text) {
            Ok(r) => v.push((p, r)),
            Err(e) => eprintln!(
                "xtask bench: {} skipped (not a bench run: {e})",
                p.display()
            ),
        }
    }
    v.sort_by(|a, b| (&a.1.date, &a.0).cmp(&(&b.1.date, &b.0)));
    Ok(v)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The ratio series: "figure (kernel)" → (run index, ratio).
fn series(runs: &[BenchRun]) -> BTreeMap<String, Vec<(usize, f64)>> {
    let mut m: BTreeMap<String, Vec<(usize, f64)>> = BTreeMap::new();
    for (i, r) in runs.iter().enumerate() {
        for row in &r.figures {
            if let Some(ratio) = row.ratio.filter(|x| x.is_finite() && *x > 0.0) {
                let f = &row.figure;
                m.entry(format!("{} ({})", f.figure, f.kernel))
                    .or_default()
                    .push((i, ratio));
            }
        }
    }
    m
}

/// The plot: one line per figure with a ratio, the runs along x, the ratio on a log scale
/// (the ratios span 0.01× to 100×).
pub fn svg(runs: &[BenchRun]) -> String {
    let s = series(runs);
    let all: Vec<f64> = s.values().flatten().map(|p| p.1).collect();
    let lo = all.iter().copied().fold(f64::INFINITY, f64::min).min(1.0);
    let hi = all.iter().copied().fold(0.0, f64::max).max(1.0);
    let (l0, l1) = (
        lo.log10().floor(),
        hi.log10().ceil().max(lo.log10().floor() + 1.0),
    );
    let n = runs.len().max(2) - 1;
    let x = |i: usize| ML + (W - ML - MR) * i as f64 / n as f64;
    let y = |r: f64| MT + (H - MT - MB) * (l1 - r.log10()) / (l1 - l0);
    let mut o = String::new();
    let _ = write!(
        o,
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" font-family="sans-serif" font-size="11"><title>sync-trace / baseline per figure over bench runs</title><rect width="{W}" height="{H}" fill="#fff"/>"##
    );
    // Decades, with 1× drawn darker.
    let mut d = l0;
    while d <= l1 {
        let yy = y(10f64.powf(d));
        let stroke = if d == 0.0 { "#888" } else { "#ddd" };
        let _ = write!(
            o,
            r#"<line x1="{ML}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="{stroke}"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}×</text>"#,
            W - MR,
            ML - 4.0,
            yy + 4.0,
            10f64.powf(d)
        );
        d += 1.0;
    }
    for (i, r) in runs.iter().enumerate() {
        let label = format!("{} {}", &r.date[..r.date.len().min(10)], r.commit);
        let _ = write!(
            o,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            x(i),
            H - MB + 16.0 + 12.0 * (i % 2) as f64,
            esc(&label)
        );
    }
    for (k, (name, pts)) in s.iter().enumerate() {
        let c = COLOURS[k % COLOURS.len()];
        let path: Vec<String> = pts
            .iter()
            .map(|&(i, r)| format!("{:.1},{:.1}", x(i), y(r)))
            .collect();
        let _ = write!(
            o,
            r#"<polyline fill="none" stroke="{c}" stroke-width="1.5" points="{}"/>"#,
            path.join(" ")
        );
        for &(i, r) in pts {
            let _ = write!(
                o,
                r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{c}"/>"#,
                x(i),
                y(r)
            );
        }
        let ly = MT + 14.0 * k as f64;
        let _ = write!(
            o,
            r#"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{c}" stroke-width="2"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            W - MR + 10.0,
            W - MR + 26.0,
            W - MR + 30.0,
            ly + 4.0,
            esc(name)
        );
    }
    o.push_str("</svg>\n");
    o
}

/// Writes `ratios.svg` in `dir` when it holds at least two runs; returns its path then.
pub fn plot(dir: &Path) -> Result<Option<PathBuf>> {
    let runs: Vec<BenchRun> = load(dir)?.into_iter().map(|(_, r)| r).collect();
    if runs.len() < 2 {
        return Ok(None);
    }
    let p = dir.join("ratios.svg");
    fs::write(&p, svg(&runs)).with_context(|| format!("cannot write {}", p.display()))?;
    Ok(Some(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::table::{Figure, Target};

    fn run(date: &str, ratio_value: f64) -> BenchRun {
        BenchRun {
            date: date.into(),
            commit: "abc".into(),
            kernels: vec!["6.12".into()],
            command: "cargo xtask bench".into(),
            figures: vec![Figure {
                figure: "exec → ready".into(),
                kernel: "6.12".into(),
                unit: "ms".into(),
                value: Some(ratio_value),
                baseline: Some(1.0),
                baseline_name: "bpftrace".into(),
                target: Target::RatioAtMost(0.1),
                samples: 5,
                note: String::new(),
            }
            .into()],
        }
    }

    #[test]
    fn plots_one_line_per_figure_over_the_saved_runs() {
        let dir = std::env::temp_dir().join(format!("xtask-bench-hist-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let save = |name: &str, r: &BenchRun| {
            fs::write(dir.join(name), serde_json::to_string(r).unwrap()).unwrap()
        };
        save("bench-b.json", &run("2026-12-02T10:00:00Z", 0.05));
        assert!(plot(&dir).unwrap().is_none(), "one run: nothing to plot");
        save("bench-a.json", &run("2026-12-02T11:00:00Z", 0.5));
        fs::write(dir.join("bench-c.json"), "not json").unwrap();
        let loaded = load(&dir).unwrap();
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded[0].1.date, "2026-12-02T10:00:00Z");
        let p = plot(&dir).unwrap().unwrap();
        let svg = fs::read_to_string(p).unwrap();
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(svg.contains("exec → ready (6.12)"));
        // Nothing fetched: no link, image or stylesheet.
        assert!(!svg.contains("href") && !svg.contains("<style"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
