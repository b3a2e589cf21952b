//! `sync-trace probe`: the per-target table, as text or JSON. The JSON is
//! a [`ProbeReport`], written and read (by the guest checks) with its serde
//! derives.

#[cfg(feature = "daemon")]
use std::io::Write;

use serde::{Deserialize, Serialize};
use sync_trace_common::{Method, Target};

#[cfg(feature = "daemon")]
use crate::kernel::target_status::TargetStatus;

/// What `probe --json` prints: one object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    /// The running kernel's release.
    pub kernel: String,
    pub targets: Vec<TargetReport>,
}

/// One target of [`ProbeReport`]: a [`TargetStatus`] as JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetReport {
    pub target: Target,
    pub symbol: String,
    /// Present as a function in /proc/kallsyms.
    pub kallsyms: bool,
    /// Has a BTF FUNC record (fentry/fexit possible).
    pub btf: bool,
    /// Listed in available_filter_functions; `None` when tracefs could not be read.
    pub traceable: Option<bool>,
    /// The method that attached, if any.
    pub method: Option<Method>,
    pub attached: bool,
    /// Why it did not attach, or why the preferred method was not used.
    pub reason: Option<String>,
}

#[cfg(feature = "daemon")]
impl ProbeReport {
    pub fn new(kernel: &str, statuses: &[TargetStatus]) -> Self {
        Self {
            kernel: kernel.to_string(),
            targets: statuses
                .iter()
                .map(|s| TargetReport {
                    target: s.target,
                    symbol: s.symbol.to_string(),
                    kallsyms: s.kallsyms,
                    btf: s.btf,
                    traceable: s.traceable,
                    method: s.method,
                    attached: s.attached,
                    reason: s.reason.clone(),
                })
                .collect(),
        }
    }
}

impl ProbeReport {
    /// The target named `symbol`.
    pub fn target(&self, symbol: &str) -> Option<&TargetReport> {
        self.targets.iter().find(|t| t.symbol == symbol)
    }
}

#[cfg(feature = "daemon")]
fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

#[cfg(feature = "daemon")]
pub fn print_text(
    out: &mut impl Write,
    kernel: &str,
    statuses: &[TargetStatus],
) -> std::io::Result<()> {
    writeln!(out, "kernel {kernel}")?;
    writeln!(
        out,
        "{:<28} {:<8} {:<4} {:<9} {:<7} {:<8} reason",
        "target", "kallsyms", "btf", "traceable", "method", "attached"
    )?;
    for s in statuses {
        let traceable = match s.traceable {
            Some(t) => yes_no(t),
            None => "unknown",
        };
        writeln!(
            out,
            "{:<28} {:<8} {:<4} {:<9} {:<7} {:<8} {}",
            s.symbol,
            yes_no(s.kallsyms),
            yes_no(s.btf),
            traceable,
            s.method.map_or("-", |m| m.name()),
            yes_no(s.attached),
            s.reason.as_deref().unwrap_or("")
        )?;
    }
    Ok(())
}

#[cfg(feature = "daemon")]
pub fn print_json(
    out: &mut impl Write,
    kernel: &str,
    statuses: &[TargetStatus],
) -> std::io::Result<()> {
    let v = serde_json::to_string(&ProbeReport::new(kernel, statuses))?;
    writeln!(out, "{v}")
}

#[cfg(all(test, feature = "daemon"))]
mod tests {
    use super::*;

    /// `probe --json` is one line that reads back as the report it was made from.
    #[test]
    fn json_reads_back() {
        let statuses = [
            TargetStatus {
                target: Target::SyncGlobalPgds,
                symbol: Target::SyncGlobalPgds.symbol(),
                kallsyms: true,
                btf: true,
                traceable: Some(true),
                method: Some(Method::Fentry),
                attached: true,
                reason: None,
            },
            TargetStatus {
                target: Target::VmemmapP4dPopulate,
                symbol: Target::VmemmapP4dPopulate.symbol(),
                kallsyms: true,
                btf: true,
                traceable: Some(false),
                method: None,
                attached: false,
                reason: Some("notrace".into()),
            },
        ];
        let mut out = Vec::new();
        print_json(&mut out, "6.1.0", &statuses).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 1);
        let back: ProbeReport = serde_json::from_str(&text).unwrap();
        assert_eq!(back, ProbeReport::new("6.1.0", &statuses));
        let t = back.target("vmemmap_p4d_populate").unwrap();
        assert!(!t.attached && t.reason.as_deref() == Some("notrace"));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["targets"][0]["symbol"], "sync_global_pgds");
        assert_eq!(v["targets"][0]["method"], "fentry");
        assert_eq!(v["targets"][1]["method"], serde_json::Value::Null);
    }
}
