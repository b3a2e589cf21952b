//! The host figures: `cargo run --release -p sync-trace --example pipeline_bench [-- --quick]`
//! prints one JSON object per line, `{"figure","value","unit","target","baseline"}`; each
//! becomes a row of the table (kernel `host`).

use super::table::{Figure, Target};
use crate::guest_binary::{cargo, workspace_root};
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::{path::Path, process::Stdio};

/// The example that measures the userspace path, relative to the workspace.
pub const EXAMPLE: &str = "sync-trace/examples/pipeline_bench/main.rs";

/// A target as the example writes it: a number, or a string such as `">= 10000000"`,
/// `"<= 0.1x"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawTarget {
    Num(f64),
    Text(String),
}

#[derive(Debug, Deserialize)]
struct Line {
    figure: String,
    value: Option<f64>,
    unit: String,
    target: Option<RawTarget>,
    baseline: Option<f64>,
}

/// A bare number is a floor for rates (`…/s`) and a ceiling for anything else.
fn target_of(raw: Option<RawTarget>, unit: &str) -> Result<Target> {
    Ok(match raw {
        None => Target::None,
        Some(RawTarget::Num(n)) if unit.ends_with("/s") => Target::AtLeast(n),
        Some(RawTarget::Num(n)) => Target::AtMost(n),
        Some(RawTarget::Text(t)) => {
            let t = t.trim();
            let (op, rest) = if let Some(r) = t.strip_prefix(">=").or(t.strip_prefix('≥')) {
                (">=", r)
            } else if let Some(r) = t.strip_prefix("<=").or(t.strip_prefix('≤')) {
                ("<=", r)
            } else if t.is_empty() || t == "-" || t == "—" {
                return Ok(Target::None);
            } else {
                ("", t)
            };
            let rest = rest.trim();
            let (ratio, n) = match rest.strip_suffix('x').or(rest.strip_suffix('×')) {
                Some(n) => (true, n.trim()),
                None => (false, rest.split_whitespace().next().unwrap_or("")),
            };
            let n: f64 = n
                .replace(['_', ','], "")
                .parse()
                .with_context(|| format!("target {t:?}: no number"))?;
            match (op, ratio) {
                ("<=", true) => Target::RatioAtMost(n),
                (">=", _) => Target::AtLeast(n),
                ("<=", false) => Target::AtMost(n),
                _ => target_of(Some(RawTarget::Num(n)), unit)?,
            }
        }
    })
}

/// The figures of the example's output lines (other lines are ignored).
pub fn parse(text: &str) -> Result<Vec<Figure>> {
    let mut v = Vec::new();
    for l in text.lines().map(str::trim).filter(|l| l.starts_with('{')) {
        let line: Line = serde_json::from_str(l)
            .with_context(|| format!("pipeline_bench printed a line outside its contract: {l}"))?;
        let target = match target_of(line.target, &line.unit)? {
            // A ratio with no baseline is the value itself (e.g. RSS growth in ×).
            Target::RatioAtMost(n) if line.baseline.is_none() => Target::AtMost(n),
            t => t,
        };
        v.push(Figure {
            target,
            figure: line.figure,
            kernel: "host".into(),
            unit: line.unit,
            value: line.value,
            baseline: line.baseline,
            baseline_name: "pipeline_bench".into(),
            samples: 1,
            note: String::new(),
        });
    }
    Ok(v)
}

/// Fails, naming what to do, when the tree lacks the example.
pub fn check_example(root: &Path) -> Result<()> {
    if !root.join(EXAMPLE).is_file() {
        bail!("the host figures need the example {EXAMPLE} (cargo run --release -p sync-trace --example pipeline_bench), which this tree lacks: pass --no-host to measure the guest figures only");
    }
    Ok(())
}

/// Runs the example and reads its figures.
pub fn figures(quick: bool) -> Result<Vec<Figure>> {
    let root = workspace_root();
    check_example(&root)?;
    let mut c = cargo();
    c.current_dir(&root).args([
        "run",
        "--release",
        "-p",
        "sync-trace",
        "--example",
        "pipeline_bench",
    ]);
    if quick {
        c.args(["--", "--quick"]);
    }
    let out = c
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run cargo")?;
    if !out.status.success() {
        bail!(
            "pipeline_bench failed ({}): see its messages above",
            out.status
        );
    }
    let v = parse(&String::from_utf8_lossy(&out.stdout))?;
    if v.is_empty() {
        bail!("pipeline_bench printed no figure");
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_contract() {
        let text = "warming up\n{\"figure\":\"pipeline events/s\",\"value\":12000000,\"unit\":\"events/s\",\"target\":10000000,\"baseline\":null}\n{\"figure\":\"RSS growth 1M→100M\",\"value\":1.0,\"unit\":\"x\",\"target\":\"<= 1.1x\",\"baseline\":null}\n{\"figure\":\"verify per PGD\",\"value\":20,\"unit\":\"ns\",\"target\":null,\"baseline\":19}\n";
        let v = parse(text).unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].target, Target::AtLeast(1e7));
        assert_eq!(v[0].met(), Some(true));
        assert_eq!(v[1].target, Target::AtMost(1.1));
        assert_eq!(v[1].met(), Some(true));
        assert_eq!(v[2].target, Target::None);
        assert_eq!(v[2].ratio(), Some(20.0 / 19.0));
        assert!(parse("{\"figure\":1}").is_err());
    }

    #[test]
    fn reads_targets() {
        let t = |s: &str, unit| target_of(Some(RawTarget::Text(s.into())), unit).unwrap();
        assert_eq!(
            t(">= 10_000_000 events/s", "events/s"),
            Target::AtLeast(1e7)
        );
        assert_eq!(t("≤ 200 ms", "ms"), Target::AtMost(200.0));
        assert_eq!(t("<= 0.1×", ""), Target::RatioAtMost(0.1));
        assert_eq!(t("-", "ms"), Target::None);
        assert!(target_of(Some(RawTarget::Text("fast".into())), "ms").is_err());
    }
}
