//! One human-readable line per record (`run` without `--json`).

use crate::record::{Population, Record};

fn secs(ns: u64) -> f64 {
    ns as f64 / 1e9
}

fn pop(p: &Population) -> String {
    format!(
        "{} slot {} {} ({}, {})",
        p.level.name(),
        p.slot,
        p.addr,
        p.region.name(),
        p.source.name()
    )
}

fn function_of(frame: &str) -> &str {
    frame.split('+').next().unwrap_or(frame)
}

/// ` <- a <- b <- c`: the callers, skipping tracing machinery, the traced
/// sync functions and repeats of one function (an fentry trampoline returns
/// into the function it traces, so that function shows twice).
fn callers(stack: &[String]) -> String {
    let mut frames: Vec<&str> = Vec::new();
    for f in stack.iter().map(String::as_str) {
        let func = function_of(f);
        let machinery = f.starts_with("0x")
            || func.starts_with("bpf_trampoline")
            || func == "ftrace_trampoline"
            || func == "arch_sync_kernel_mappings"
            || func == "sync_global_pgds";
        if machinery || frames.last().is_some_and(|l| function_of(l) == func) {
            continue;
        }
        frames.push(f);
        if frames.len() == 3 {
            break;
        }
    }
    if frames.is_empty() {
        String::new()
    } else {
        format!(" <- {}", frames.join(" <- "))
    }
}

impl Record {
    pub fn text(&self) -> String {
        match self {
            Record::Layout(l) => format!(
                "layout: kernel {} {}-level, page_offset_base {} vmalloc_base {} vmemmap_base {}, kernel slots from {}, {} present",
                l.kernel,
                if l.paging == sync_trace_common::Paging::Five { 5 } else { 4 },
                l.page_offset_base,
                l.vmalloc_base,
                l.vmemmap_base,
                l.kernel_boundary,
                l.present.len()
            ),
            Record::Sync(s) => format!(
                "{:>14.6} cpu{} {}[{}] sync {} {}..{} slots {}-{}{} {:.1}us caller={} via {}{}",
                secs(s.ts_ns),
                s.task.cpu,
                s.task.comm,
                s.task.pid,
                s.function.symbol(),
                s.start,
                s.end,
                s.slot_first,
                s.slot_last,
                if s.helper { " (start == end: populate helper)" } else { "" },
                s.duration_ns as f64 / 1e3,
                s.caller.name(),
                s.method.name(),
                callers(&s.stack),
            ),
            Record::Call(c) => format!(
                "{:>14.6} cpu{} {}[{}] call {} {} {:.1}us via {}{}",
                secs(c.ts_ns),
                c.task.cpu,
                c.task.comm,
                c.task.pid,
                c.function.symbol(),
                match c.end {
                    Some(end) => format!("phys {}..{}", c.addr, end),
                    None => format!("addr={}", c.addr),
                },
                c.duration_ns as f64 / 1e3,
                c.method.name(),
                callers(&c.stack),
            ),
            Record::Populate(p) => format!(
                "{:>14.6} populate {}{}",
                secs(p.ts_ns),
                pop(&p.pop),
                callers(&p.stack)
            ),
            Record::Depopulate(d) => format!(
                "{:>14.6} DEPOPULATE {} slot {} {} ({}): init_mm's entry is gone",
                secs(d.ts_ns),
                d.level.name(),
                d.slot,
                d.addr,
                d.region.name()
            ),
            Record::Paired(p) => format!(
                "{:>14.6} paired {} with {} {}..{}: {:.1}us ({}){}{}",
                secs(p.ts_ns),
                pop(&p.pop),
                p.sync_function.symbol(),
                p.sync_start,
                p.sync_end,
                p.latency_ns as f64 / 1e3,
                if p.latency_kind == crate::record::LatencyKind::Exact { "exact" } else { "upper bound" },
                if p.late { ", after it was reported unsynced" } else { "" },
                if p.uncertain { "; UNCERTAIN: kernel records were lost meanwhile" } else { "" }
            ),
            Record::Unsynced(u) => format!(
                "{:>14.6} UNSYNCED {}: no sync within {} ms; {} of {}{} PGDs lack it{}{}{}",
                secs(u.ts_ns),
                pop(&u.pop),
                u.grace_ns / 1_000_000,
                u.pgds_missing,
                u.pgds_total,
                if u.walk_complete { "" } else { " walked (list cut at --max-pgds)" },
                if u.confirmed { "" } else { " (unconfirmed: every PGD walked carries it)" },
                if u.uncertain { "; UNCERTAIN: kernel records were lost meanwhile" } else { "" },
                callers(&u.stack)
            ),
            Record::Verify(v) => {
                let list = |v: &[crate::record::SlotCount]| {
                    v.iter().map(|m| format!("slot {}: {}", m.slot, m.pgds)).collect::<Vec<_>>().join(", ")
                };
                format!(
                    "{:>14.6} verify ({:?}): {} PGDs x {} slots{}{}{}",
                    secs(v.ts_ns),
                    v.trigger,
                    v.pgds_total,
                    v.slots_checked,
                    if v.ok { ", all agree" } else { "" },
                    if v.missing.is_empty() { String::new() } else { format!("; missing {}", list(&v.missing)) },
                    if v.mismatched.is_empty() { String::new() } else { format!("; mismatched {}", list(&v.mismatched)) },
                )
            }
            Record::Mismatch(m) => format!(
                "{:>14.6} MISMATCH {} slot {} {} ({}): {} of {} PGDs point to another table",
                secs(m.ts_ns),
                m.level.name(),
                m.slot,
                m.addr,
                m.region.name(),
                m.pgds,
                m.pgds_total
            ),
            Record::Lost(l) => format!("lost: {} more {} ({} in all)", l.count, l.what, l.total),
            Record::Summary(s) => s.text(),
        }
    }
}
