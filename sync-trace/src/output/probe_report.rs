//! `sync-trace probe`: the per-target table, as text or JSON. The JSON is
//! a [`ProbeReport`] (`record::probe`), written and read (by the guest
//! checks) with its serde derives.

use std::io::Write;

use crate::{kernel::target_status::TargetStatus, record::probe::ProbeReport};

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

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
        let mut reason = s.reason.clone().unwrap_or_default();
        if !s.livepatched_by.is_empty() {
            if !reason.is_empty() {
                reason.push_str("; ");
            }
            reason.push_str(&format!("livepatched by {}", s.livepatched_by.join(", ")));
        }
        writeln!(
            out,
            "{:<28} {:<8} {:<4} {:<9} {:<7} {:<8} {}",
            s.symbol,
            yes_no(s.kallsyms),
            yes_no(s.btf),
            traceable,
            s.method.map_or("-", |m| m.name()),
            yes_no(s.attached),
            reason
        )?;
    }
    Ok(())
}

pub fn print_json(
    out: &mut impl Write,
    kernel: &str,
    statuses: &[TargetStatus],
) -> std::io::Result<()> {
    let v = serde_json::to_string(&ProbeReport::new(kernel, statuses))?;
    writeln!(out, "{v}")
}

#[cfg(test)]
mod tests {
    use sync_trace_common::{Method, Target};

    use super::*;

    /// `probe --json` is one line that reads back as the report it was made from.
    #[test]
    fn json_reads_back() {
        let statuses = [
            TargetStatus {
                target: Target::SyncGlobalPgds,
                symbol: Target::SyncGlobalPgds.symbol().to_string(),
                kallsyms: true,
                btf: true,
                traceable: Some(true),
                method: Some(Method::Fentry),
                attached: true,
                reason: None,
                livepatched_by: vec!["klp_a".into()],
            },
            TargetStatus {
                target: Target::VmemmapP4dPopulate,
                symbol: Target::VmemmapP4dPopulate.symbol().to_string(),
                kallsyms: true,
                btf: true,
                traceable: Some(false),
                method: None,
                attached: false,
                reason: Some("notrace".into()),
                livepatched_by: Vec::new(),
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
        // Only a livepatched target has the field.
        assert_eq!(v["targets"][0]["livepatched_by"][0], "klp_a");
        assert!(v["targets"][1].get("livepatched_by").is_none());

        let mut out = Vec::new();
        print_text(&mut out, "6.1.0", &statuses).unwrap();
        let text = String::from_utf8(out).unwrap();
        let line = |sym| {
            text.lines()
                .find(|l| l.starts_with(sym))
                .unwrap()
                .to_string()
        };
        assert!(line("sync_global_pgds").ends_with(" livepatched by klp_a"));
        assert!(line("vmemmap_p4d_populate").ends_with(" notrace"));
    }
}
