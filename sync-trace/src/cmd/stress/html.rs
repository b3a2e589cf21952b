//! `--report FILE`: one self-contained HTML page. Plots are inline SVG drawn
//! here; no script, no stylesheet or font from elsewhere, no URL at all
//! (inline SVG in HTML needs no `xmlns`).

use std::fmt::Write as _;

use super::report::{fmt_lat, fmt_ns, Report};

const W: f64 = 640.0;
const H: f64 = 220.0;
/// Margins: left (labels), right, top, bottom (labels).
const ML: f64 = 56.0;
const MR: f64 = 12.0;
const MT: f64 = 12.0;
const MB: f64 = 36.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn svg_open(s: &mut String, title: &str) {
    let _ = write!(
        s,
        r#"<svg class="plot" role="img" aria-label="{}" viewBox="0 0 {W} {H}" width="{W}" height="{H}"><title>{}</title>"#,
        esc(title),
        esc(title)
    );
    // Axes.
    let _ = write!(
        s,
        r##"<line x1="{ML}" y1="{y}" x2="{x}" y2="{y}" stroke="#444"/><line x1="{ML}" y1="{MT}" x2="{ML}" y2="{y}" stroke="#444"/>"##,
        y = H - MB,
        x = W - MR
    );
}

/// The y axis's top value, at its top left, and the x axis's title, centred
/// under the plot.
fn axes(s: &mut String, y_max: &str, x_title: &str) {
    text(s, ML - 4.0, MT + 10.0, "end", y_max);
    text(s, (ML + W - MR) / 2.0, H - 4.0, "middle", x_title);
}

fn text(s: &mut String, x: f64, y: f64, anchor: &str, t: &str) {
    let _ = write!(
        s,
        r#"<text x="{x:.1}" y="{y:.1}" font-size="11" text-anchor="{anchor}">{}</text>"#,
        esc(t)
    );
}

fn no_data(s: &mut String, what: &str) {
    text(
        s,
        (ML + W - MR) / 2.0,
        (MT + H - MB) / 2.0,
        "middle",
        &format!("no {what} recorded"),
    );
}

/// Populate→sync latency: a histogram over log2 buckets.
pub fn latency_histogram(latencies: &[u64]) -> String {
    let mut s = String::new();
    svg_open(&mut s, "populate to sync latency distribution");
    if latencies.is_empty() {
        no_data(&mut s, "paired population");
    } else {
        let bucket = |ns: u64| 64 - ns.max(1).leading_zeros() as usize; // 1..=64
        let lo = latencies.iter().map(|&l| bucket(l)).min().unwrap_or(1);
        let hi = latencies.iter().map(|&l| bucket(l)).max().unwrap_or(1);
        let mut counts = vec![0u64; hi - lo + 1];
        for &l in latencies {
            counts[bucket(l) - lo] += 1;
        }
        let max = *counts.iter().max().unwrap_or(&1) as f64;
        let bw = (W - ML - MR) / counts.len() as f64;
        for (i, &n) in counts.iter().enumerate() {
            let h = (H - MT - MB) * n as f64 / max;
            let x = ML + i as f64 * bw;
            let _ = write!(
                s,
                r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="#3b6fb6"><title>&lt; {}: {n}</title></rect>"##,
                x + 1.0,
                H - MB - h,
                (bw - 2.0).max(1.0),
                esc(&fmt_ns(1u64 << (lo + i - 1).min(63)))
            );
            if counts.len() <= 16 || i % 2 == 0 {
                text(
                    &mut s,
                    x + bw / 2.0,
                    H - MB + 14.0,
                    "middle",
                    &format!("<{}", fmt_ns(1u64 << (lo + i).min(63))),
                );
            }
        }
        axes(&mut s, &format!("{max}"), "latency (log2 buckets)");
    }
    s.push_str("</svg>");
    s
}

/// Populations and syncs per cycle: two bars per cycle.
pub fn per_cycle(r: &Report) -> String {
    let mut s = String::new();
    svg_open(&mut s, "populations and syncs per cycle");
    if r.cycles.is_empty() {
        no_data(&mut s, "cycle");
    } else {
        let max = r
            .cycles
            .iter()
            .map(|c| c.population_count().max(c.syncs))
            .max()
            .unwrap_or(0)
            .max(1) as f64;
        let bw = (W - ML - MR) / r.cycles.len() as f64;
        for (i, c) in r.cycles.iter().enumerate() {
            let x = ML + i as f64 * bw;
            for (j, (n, color, what)) in [
                (c.population_count(), "#d9822b", "populations"),
                (c.syncs, "#3b6fb6", "syncs"),
            ]
            .into_iter()
            .enumerate()
            {
                let h = (H - MT - MB) * n as f64 / max;
                let _ = write!(
                    s,
                    r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{color}"><title>cycle {}: {n} {what}</title></rect>"#,
                    x + 1.0 + j as f64 * (bw - 2.0) / 2.0,
                    H - MB - h,
                    ((bw - 2.0) / 2.0).max(0.5),
                    c.index
                );
            }
            if r.cycles.len() <= 20 || i % (r.cycles.len() / 20 + 1) == 0 {
                text(
                    &mut s,
                    x + bw / 2.0,
                    H - MB + 14.0,
                    "middle",
                    &c.index.to_string(),
                );
            }
        }
        axes(
            &mut s,
            &format!("{max}"),
            "cycle (orange: populations, blue: syncs)",
        );
    }
    s.push_str("</svg>");
    s
}

/// Sync duration over time: one point per sync.
pub fn sync_durations(r: &Report) -> String {
    let mut s = String::new();
    svg_open(&mut s, "sync duration over time");
    if r.sync_points.is_empty() {
        no_data(&mut s, "sync");
    } else {
        let t0 = r
            .sync_points
            .iter()
            .map(|p| p.0)
            .min()
            .unwrap_or(0)
            .min(if r.start_ns == 0 {
                u64::MAX
            } else {
                r.start_ns
            });
        let t1 = r
            .sync_points
            .iter()
            .map(|p| p.0)
            .max()
            .unwrap_or(t0)
            .max(t0 + 1);
        let dmax = r.sync_points.iter().map(|p| p.1).max().unwrap_or(1).max(1) as f64;
        for c in &r.cycles {
            if c.start_ns >= t0 && c.start_ns <= t1 {
                let x = ML + (W - ML - MR) * (c.start_ns - t0) as f64 / (t1 - t0) as f64;
                let _ = write!(
                    s,
                    r##"<line x1="{x:.1}" y1="{MT}" x2="{x:.1}" y2="{}" stroke="#ccc"/>"##,
                    H - MB
                );
            }
        }
        for &(ts, d) in &r.sync_points {
            let x = ML + (W - ML - MR) * (ts - t0) as f64 / (t1 - t0) as f64;
            let y = H - MB - (H - MT - MB) * d as f64 / dmax;
            let _ = write!(
                s,
                r##"<circle cx="{x:.1}" cy="{y:.1}" r="2" fill="#3b6fb6"/>"##
            );
        }
        text(&mut s, ML, H - MB + 14.0, "start", "0 s");
        text(
            &mut s,
            W - MR,
            H - MB + 14.0,
            "end",
            &format!("{:.1} s", (t1 - t0) as f64 / 1e9),
        );
        axes(
            &mut s,
            &fmt_ns(dmax as u64),
            "time (grey lines: cycle starts)",
        );
    }
    s.push_str("</svg>");
    s
}

/// Comma-separated, or `none`.
fn listed(items: impl Iterator<Item = String>) -> String {
    let v: Vec<String> = items.collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// The page.
pub fn page(r: &Report) -> String {
    let mut s = String::new();
    let cls = match r.exit_code {
        0 => "ok",
        3 => "found",
        _ => "error",
    };
    let _ = write!(
        s,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>sync-trace stress: {}</title><style>
body{{font-family:sans-serif;margin:1.5em;max-width:70em}} table{{border-collapse:collapse;margin:.5em 0}}
td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right;font-size:13px}} th{{background:#eee}}
td.l,th.l{{text-align:left}} .verdict{{font-weight:bold;padding:.5em;border-radius:4px}}
.ok{{background:#dfd}} .found{{background:#fdd}} .error{{background:#fd9}} svg.plot{{display:block;margin:.5em 0;background:#fafafa}}
</style></head><body><h1>sync-trace stress</h1>"#,
        esc(r.kernel.as_deref().unwrap_or("unknown kernel"))
    );
    let _ = write!(
        s,
        r#"<p class="verdict {cls}">verdict: {}</p>"#,
        esc(&r.verdict)
    );
    let _ = write!(
        s,
        "<p>Kernel {}. Blocks: {}. Device-dax: {}. {} cycle(s); exit status {}.</p>",
        esc(r.kernel.as_deref().unwrap_or("unknown")),
        esc(&listed(r.blocks.iter().map(|b| b.name()))),
        esc(&listed(r.dax.iter().map(|d| format!(
            "{} ({})",
            d.name,
            d.mode.name()
        )))),
        r.totals.cycles,
        r.exit_code
    );
    if r.in_progress {
        s.push_str("<p class=\"verdict error\">Written during the run, at its first finding(s): the run had not ended (if this is the last copy, the machine or the command stopped before the final report).</p>");
    }
    if let Some(h) = &r.hung_write {
        let _ = write!(
            s,
            "<p class=\"verdict error\">WEDGED: {}; cycling stopped</p>",
            esc(&h.explain())
        );
    }
    for f in &r.restore_failures {
        let _ = write!(s, "<p class=\"verdict error\">NOT RESTORED: {}</p>", esc(f));
    }
    s.push_str("<h2>Populate → sync latency</h2>");
    let _ = write!(
        s,
        "<p>{} paired; p50 {}, p99 {}, max {}.</p>",
        r.latency.count,
        fmt_lat(&r.latency)[0],
        fmt_lat(&r.latency)[1],
        fmt_lat(&r.latency)[2]
    );
    s.push_str(&latency_histogram(&r.latencies));
    s.push_str("<h2>Populations and syncs per cycle</h2>");
    s.push_str(&per_cycle(r));
    s.push_str("<h2>Sync duration over time</h2>");
    s.push_str(&sync_durations(r));
    s.push_str("<h2>Cycles</h2><table><tr><th>cycle</th><th class=\"l\">offlined / removed</th><th class=\"l\">onlined / added</th><th class=\"l\">busy (EBUSY)</th><th class=\"l\">populations</th><th>syncs</th><th>p50</th><th>p99</th><th>max</th><th>unsynced</th><th>mismatches</th><th>lost</th></tr>");
    for c in std::iter::once(&r.before).chain(&r.cycles) {
        let lat = fmt_lat(&c.latency);
        let blocks = |v: &[u64]| {
            v.iter()
                .map(|b| format!("memory{b}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let _ = write!(
            s,
            "<tr><td>{}</td><td class=\"l\">{} {}</td><td class=\"l\">{} {}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if c.index == 0 { "start".into() } else { c.index.to_string() },
            esc(&c.offlined.join(" ")),
            esc(&blocks(&c.removed)),
            esc(&c.onlined.join(" ")),
            esc(&blocks(&c.added)),
            esc(&c.busy.join(" ")),
            esc(&c.populations.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")),
            c.syncs,
            lat[0],
            lat[1],
            lat[2],
            c.unsynced,
            c.mismatches,
            c.lost
        );
    }
    s.push_str("</table><h2>Top-level slots</h2><table><tr><th>slot</th><th class=\"l\">address</th><th class=\"l\">region</th><th class=\"l\">source</th><th>PGDs verified</th><th class=\"l\">verdict</th></tr>");
    if r.slots.is_empty() {
        s.push_str(
            "<tr><td colspan=\"6\" class=\"l\">no slot was populated or mismatched</td></tr>",
        );
    }
    for row in &r.slots {
        let _ = write!(
            s,
            "<tr><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}/{}</td><td class=\"l\">{}</td></tr>",
            row.slot,
            row.addr,
            esc(&row.region),
            esc(&row.source),
            row.pgds_verified,
            row.pgds_total,
            esc(&row.verdict)
        );
    }
    s.push_str("</table>");
    if !r.skipped.is_empty() {
        s.push_str("<h2>Skipped</h2><ul>");
        for sk in &r.skipped {
            let _ = write!(s, "<li>{}: {}</li>", esc(&sk.target), esc(&sk.reason));
        }
        s.push_str("</ul>");
    }
    s.push_str("</body></html>\n");
    s
}
