//! `host/report-browser`: the stress report's HTML page opened in a real browser. A report
//! saved by a guest's `sync-trace stress --json` (sync-trace/tests/fixtures/stress-*.json)
//! is drawn again by today's code (`sync-trace stress --from-json … --report`), loaded by
//! Debian's headless Chromium with every network name unresolvable, and checked in the DOM
//! Chromium built: no console message at all (the page has no script, so any message is a
//! defect: a script error, a blocked fetch), and every plot with data marks (bars of
//! non-zero height, points). Two controls show the check can fail: the same report with its
//! plot data emptied, and the page with a failing script added.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{cmd, deps, guest_binary::workspace_root};

/// Debian's Chromium (its `chromium` binary runs headless without a display).
pub const BROWSER_PACKAGES: &[&str] = &["chromium"];

/// The recorded report the check draws (a 6.12 guest's `cargo xtask stress` run).
pub const FIXTURE: &str = "sync-trace/tests/fixtures/stress-6.12.json";

/// Plots the page draws (their `aria-label`s, in page order).
const PLOTS: [&str; 3] = [
    "populate to sync latency distribution",
    "populations and syncs per cycle",
    "sync duration over time",
];

/// What the browser made of a page.
#[derive(Debug)]
pub struct Loaded {
    /// `(aria-label, data marks)` of every `svg.plot`.
    pub plots: Vec<(String, usize)>,
    /// Chromium's `CONSOLE` log lines (`[…:INFO:CONSOLE(1)] "text", source: URL (1)`).
    pub console: Vec<String>,
}

fn chromium(args: &[&str], page: &Path) -> Result<std::process::Output> {
    // A page that never finishes loading would keep Chromium up: 120 s is far beyond a load.
    let mut c = Command::new("timeout");
    c.args([
        "120",
        "chromium",
        "--headless",
        "--disable-gpu",
        // Console messages go to stderr as `CONSOLE(LINE)] "text", source: URL (LINE)`.
        "--enable-logging=stderr",
        "--v=0",
        // Any fetch the page tried would fail and log a console error.
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--no-first-run",
    ]);
    let profile = std::env::temp_dir().join(format!("sync-trace-chromium-{}", std::process::id()));
    c.arg(format!("--user-data-dir={}", profile.display()));
    // As root, Chromium will not start with its sandbox ("Running as root without
    // --no-sandbox is not supported", crbug.com/638180: its setuid/namespace sandbox cannot
    // drop root's privileges). The page is our own file, drawn by sync-trace, and every
    // network name is unresolvable, so it runs unsandboxed there; as any other user the
    // sandbox stays on.
    if is_root() {
        c.arg("--no-sandbox");
    }
    c.args(args);
    c.arg(format!("file://{}", page.display()));
    let out = cmd::output_any(&mut c, None);
    let _ = std::fs::remove_dir_all(&profile);
    out
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// Loads `page` in headless Chromium and reads its DOM and console.
pub fn load(page: &Path) -> Result<Loaded> {
    let out = chromium(&["--dump-dom"], page)?;
    let dom = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || !dom.contains("</html>") {
        bail!(
            "chromium --headless --dump-dom {} failed ({}): {}",
            page.display(),
            out.status,
            log.lines().rev().take(5).collect::<Vec<_>>().join(" | ")
        );
    }
    Ok(Loaded {
        plots: plots_of(&dom),
        console: log
            .lines()
            .filter(|l| l.contains(":CONSOLE"))
            .map(String::from)
            .collect(),
    })
}

/// Every `<svg class="plot" …>`'s label and data marks: `<rect>`s with a non-zero
/// `height`, and `<circle>`s.
pub fn plots_of(dom: &str) -> Vec<(String, usize)> {
    let mut plots = Vec::new();
    for part in dom.split("<svg class=\"plot\"").skip(1) {
        let body = part.split("</svg>").next().unwrap_or_default();
        let label = attr(body, "aria-label").unwrap_or_default();
        let rects = body
            .split("<rect")
            .skip(1)
            .filter(|r| {
                attr(r, "height")
                    .and_then(|h| h.parse::<f64>().ok())
                    .is_some_and(|h| h > 0.0)
            })
            .count();
        let circles = body.matches("<circle").count();
        plots.push((label, rects + circles));
    }
    plots
}

/// The value of the first `NAME="…"` in `tag_text` (up to its first `>`).
fn attr(tag_text: &str, name: &str) -> Option<String> {
    let head = tag_text.split('>').next()?;
    let pat = format!(" {name}=\"");
    let start = head.find(&pat)? + pat.len();
    let len = head[start..].find('"')?;
    Some(head[start..start + len].to_string())
}

/// The page is good: no console message, and each of the three plots has data.
pub fn judge(l: &Loaded) -> Result<()> {
    if !l.console.is_empty() {
        bail!("the page logged to the console: {}", l.console.join(" | "));
    }
    let labels: Vec<&str> = l.plots.iter().map(|(t, _)| t.as_str()).collect();
    if labels != PLOTS {
        bail!("the page's plots are {labels:?}, expected {PLOTS:?}");
    }
    let empty: Vec<&str> = l
        .plots
        .iter()
        .filter(|(_, n)| *n == 0)
        .map(|(t, _)| t.as_str())
        .collect();
    if !empty.is_empty() {
        bail!("plots drawn without data: {}", empty.join(", "));
    }
    Ok(())
}

fn render(bin: &Path, json: &Path, html: &Path) -> Result<()> {
    let out = cmd::output_any(
        Command::new(bin)
            .args(["stress", "--json", "--from-json"])
            .arg(json)
            .arg("--report")
            .arg(html),
        None,
    )?;
    // The saved report's own exit status (0 clean, 3 found) comes back; 1 is an error.
    if out.status.code() == Some(1) || !html.is_file() {
        bail!(
            "sync-trace stress --from-json {} failed: {}",
            json.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The host check.
pub fn report_in_browser(bin: &Path) -> Result<()> {
    deps::ensure_host_packages(BROWSER_PACKAGES)?;
    let dir = scratch()?;
    let fixture = workspace_root().join(FIXTURE);
    let page = dir.join("report.html");
    render(bin, &fixture, &page)?;
    let l = load(&page)?;
    judge(&l).context(format!("{} drawn from {FIXTURE}", page.display()))?;
    println!(
        "xtask test: report-browser: {} marks in {:?}, no console message",
        l.plots
            .iter()
            .map(|p| p.1.to_string())
            .collect::<Vec<_>>()
            .join("/"),
        PLOTS
    );

    // Control 1: no plot data → the check names the empty plots.
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&fixture)?)
        .with_context(|| format!("{FIXTURE} is not JSON"))?;
    v["sync_points"] = serde_json::json!([]);
    v["latencies"] = serde_json::json!([]);
    let emptied = dir.join("emptied.json");
    std::fs::write(&emptied, v.to_string())?;
    let page2 = dir.join("emptied.html");
    render(bin, &emptied, &page2)?;
    match judge(&load(&page2)?) {
        Err(e) if e.to_string().contains(PLOTS[0]) && e.to_string().contains(PLOTS[2]) => {}
        r => bail!("the check did not flag a report without plot data: {r:?}"),
    }
    // Control 2: a script error → the check reports the console line.
    let html = std::fs::read_to_string(&page)?;
    let page3 = dir.join("script-error.html");
    std::fs::write(
        &page3,
        html.replace("</body>", "<script>undefinedFunction()</script></body>"),
    )?;
    match judge(&load(&page3)?) {
        Err(e) if e.to_string().contains("undefinedFunction") => {}
        r => bail!("the check did not flag a script error: {r:?}"),
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn scratch() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("sync-trace-browser-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_marks_per_plot() {
        let dom = r#"<body><svg class="plot" role="img" aria-label="a" viewBox="0 0 1 1"><title>a</title><line x1="1"></line><rect x="1" y="2" width="3" height="0.0"></rect><rect x="1" y="2" width="3" height="4.5"><title>t</title></rect></svg><p>x</p><svg class="plot" aria-label="b"><circle cx="1"></circle><circle cx="2"></circle></svg><svg class="plot" aria-label="c"><text>no sync recorded</text></svg></body>"#;
        assert_eq!(
            plots_of(dom),
            [("a".into(), 1), ("b".into(), 2), ("c".into(), 0)]
        );
    }

    #[test]
    fn judges_console_lines_and_empty_plots() {
        let good = |n| Loaded {
            plots: PLOTS.iter().map(|p| (p.to_string(), n)).collect(),
            console: vec![],
        };
        assert!(judge(&good(3)).is_ok());
        let e = judge(&good(0)).unwrap_err().to_string();
        assert!(e.contains("without data"), "{e}");
        let mut l = good(3);
        l.console.push("[1:2:INFO:CONSOLE(1)] \"Uncaught\"".into());
        assert!(judge(&l).is_err());
        let mut l = good(3);
        l.plots.pop();
        assert!(judge(&l).is_err());
    }
}
