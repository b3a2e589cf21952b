//! `sync-trace probe`: the per-target table, as text or JSON.

use std::io::Write;

use crate::kernel::target_status::TargetStatus;

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

pub fn print_json(
    out: &mut impl Write,
    kernel: &str,
    statuses: &[TargetStatus],
) -> std::io::Result<()> {
    let v = serde_json::json!({ "kernel": kernel, "targets": statuses });
    writeln!(out, "{v}")
}
