//! One bench run's table: each figure with sync-trace's value, the baseline measured in the
//! same run, their ratio, the target and whether it is met; printed as text and saved as
//! JSON (`target/bench/bench-<date>-<commit>.json`).

use serde::{Deserialize, Serialize};

/// What a figure must reach.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "limit", rename_all = "snake_case")]
pub enum Target {
    /// sync-trace's value / the baseline's at most this.
    RatioAtMost(f64),
    /// sync-trace's value at most this (in the figure's unit).
    AtMost(f64),
    /// sync-trace's value at least this (in the figure's unit).
    AtLeast(f64),
    /// Informative: printed, no target.
    None,
}

impl Target {
    pub fn text(&self, unit: &str) -> String {
        match self {
            Target::RatioAtMost(r) => format!("≤ {}×", num(*r)),
            Target::AtMost(v) => format!("≤ {} {unit}", num(*v)),
            Target::AtLeast(v) => format!("≥ {} {unit}", num(*v)),
            Target::None => "—".into(),
        }
    }
}

/// One row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    pub figure: String,
    /// The guest kernel (`uname -r`), or `host`.
    pub kernel: String,
    pub unit: String,
    /// sync-trace's value (a median over the runs where there are several); `None` when the
    /// measurement failed (see `note`).
    pub value: Option<f64>,
    /// The baseline's value, in the same unit, from the same run.
    pub baseline: Option<f64>,
    /// What the baseline is (e.g. `bpftrace 0.17`, `untraced`).
    pub baseline_name: String,
    pub target: Target,
    /// Samples behind `value` (and `baseline`).
    pub samples: usize,
    /// Why a value is missing, or what to know about it.
    pub note: String,
}

impl Figure {
    pub fn ratio(&self) -> Option<f64> {
        match (self.value, self.baseline) {
            (Some(v), Some(b)) if b != 0.0 => Some(v / b),
            _ => None,
        }
    }

    /// `None`: no target, or nothing measured.
    pub fn met(&self) -> Option<bool> {
        let v = self.value?;
        match self.target {
            Target::RatioAtMost(r) => self.ratio().map(|x| x <= r),
            Target::AtMost(t) => Some(v <= t),
            Target::AtLeast(t) => Some(v >= t),
            Target::None => None,
        }
    }
}

/// A whole run, as saved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchRun {
    /// RFC 3339, UTC.
    pub date: String,
    /// `git describe --always --dirty` of the workspace.
    pub commit: String,
    /// Guest kernels measured (`uname -r`).
    pub kernels: Vec<String>,
    /// The command line that produced it.
    pub command: String,
    pub figures: Vec<Row>,
}

/// A figure as saved: with its ratio and verdict, so readers of the JSON need not recompute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    #[serde(flatten)]
    pub figure: Figure,
    pub ratio: Option<f64>,
    pub met: Option<bool>,
}

impl From<Figure> for Row {
    fn from(figure: Figure) -> Row {
        Row {
            ratio: figure.ratio(),
            met: figure.met(),
            figure,
        }
    }
}

/// A number without needless digits: 3 significant ones, no exponent below 10^9.
pub fn num(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if a >= 1000.0 {
        format!("{v:.0}")
    } else {
        let digits = (2 - a.log10().floor() as i32).max(0) as usize;
        let s = format!("{v:.digits$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    }
}

const HEADER: [&str; 7] = [
    "figure",
    "kernel",
    "sync-trace",
    "baseline",
    "ratio",
    "target",
    "met?",
];

fn cells(f: &Figure) -> [String; 7] {
    let with_unit =
        |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{} {}", num(v), f.unit));
    let baseline = match f.baseline {
        Some(b) => format!("{} {} ({})", num(b), f.unit, f.baseline_name),
        None => "—".into(),
    };
    let value = match f.value {
        Some(_) => with_unit(f.value),
        None => format!("failed: {}", f.note),
    };
    [
        f.figure.clone(),
        f.kernel.clone(),
        value,
        baseline,
        f.ratio().map_or("—".into(), |r| format!("{}×", num(r))),
        f.target.text(&f.unit),
        match f.met() {
            Some(true) => "yes".into(),
            Some(false) => "NO".into(),
            None => "—".into(),
        },
    ]
}

/// The table as Markdown (what the terminal shows and the README quotes).
pub fn markdown(figures: &[Figure]) -> String {
    let rows: Vec<[String; 7]> = figures.iter().map(cells).collect();
    let mut out = format!("| {} |\n", HEADER.join(" | "));
    out += &format!("|{}\n", "---|".repeat(HEADER.len()));
    for r in rows {
        out += &format!("| {} |\n", r.join(" | "));
    }
    out
}

/// The notes of the figures that carry one, one line each.
pub fn notes(figures: &[Figure]) -> String {
    figures
        .iter()
        .filter(|f| !f.note.is_empty() && f.value.is_some())
        .map(|f| format!("- {} ({}): {}\n", f.figure, f.kernel, f.note))
        .collect()
}

/// The median of the samples (mean of the middle two for an even count); `None` if empty.
pub fn median(samples: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fig(value: Option<f64>, baseline: Option<f64>, target: Target) -> Figure {
        Figure {
            figure: "exec → ready".into(),
            kernel: "6.12.48+deb13-amd64".into(),
            unit: "ms".into(),
            value,
            baseline,
            baseline_name: "bpftrace 0.17".into(),
            target,
            samples: 5,
            note: String::new(),
        }
    }

    #[test]
    fn ratio_and_verdict() {
        let f = fig(Some(50.0), Some(1000.0), Target::RatioAtMost(0.1));
        assert_eq!(f.ratio(), Some(0.05));
        assert_eq!(f.met(), Some(true));
        let f = fig(Some(200.0), Some(1000.0), Target::RatioAtMost(0.1));
        assert_eq!(f.met(), Some(false));
        assert_eq!(fig(Some(0.2), None, Target::AtMost(0.1)).met(), Some(false));
        assert_eq!(fig(Some(2e7), None, Target::AtLeast(1e7)).met(), Some(true));
        assert_eq!(fig(None, Some(1.0), Target::AtMost(1.0)).met(), None);
        assert_eq!(fig(Some(1.0), None, Target::None).met(), None);
        // No baseline: a ratio target cannot be judged.
        assert_eq!(fig(Some(1.0), None, Target::RatioAtMost(1.01)).met(), None);
    }

    #[test]
    fn renders_the_table() {
        let mut failed = fig(None, Some(1000.0), Target::RatioAtMost(0.1));
        failed.note = "never printed ready".into();
        let t = markdown(&[
            fig(Some(52.0), Some(1130.0), Target::RatioAtMost(0.1)),
            failed,
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "| figure | kernel | sync-trace | baseline | ratio | target | met? |"
        );
        assert_eq!(
            lines[2],
            "| exec → ready | 6.12.48+deb13-amd64 | 52 ms | 1130 ms (bpftrace 0.17) | 0.046× | ≤ 0.1× | yes |"
        );
        assert!(
            lines[3].contains("| failed: never printed ready |"),
            "{}",
            lines[3]
        );
        assert!(lines[3].ends_with("| — | ≤ 0.1× | — |"), "{}", lines[3]);
    }

    #[test]
    fn numbers_keep_three_digits() {
        assert_eq!(num(0.046017), "0.046");
        assert_eq!(num(1.0049), "1");
        assert_eq!(num(1.013), "1.01");
        assert_eq!(num(52.0), "52");
        assert_eq!(num(123456.7), "123457");
        assert_eq!(num(0.0), "0");
    }

    #[test]
    fn median_of_samples() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn json_round_trip() {
        let run = BenchRun {
            date: "2026-12-02T12:00:00Z".into(),
            commit: "abc1234".into(),
            kernels: vec!["6.1.0-40-amd64".into()],
            command: "cargo xtask bench --quick".into(),
            figures: vec![fig(Some(1.0), Some(20.0), Target::RatioAtMost(0.1)).into()],
        };
        let text = serde_json::to_string_pretty(&run).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["figures"][0]["figure"], "exec → ready");
        assert_eq!(v["figures"][0]["ratio"], 0.05);
        assert_eq!(v["figures"][0]["met"], true);
        assert_eq!(v["figures"][0]["target"]["kind"], "ratio_at_most");
        assert_eq!(v["figures"][0]["target"]["limit"], 0.1);
        assert_eq!(serde_json::from_str::<BenchRun>(&text).unwrap(), run);
    }
}
