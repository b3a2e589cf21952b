//! One human-readable line per record (`run`, `replay` and `audit` without
//! `--json`). Every line begins with the time its record carries (seconds of
//! CLOCK_MONOTONIC), the summary ends the run with bpftrace-style histograms.

use std::fmt::Write as _;

use crate::record::{
    stack::{function_of, is_traced_function, is_tracing_frame},
    Histogram, Population, Record, SlotCount, Summary,
};

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

/// ` <- a <- b <- c`: the callers, skipping tracing machinery, the traced
/// sync functions and repeats of one function (an fentry trampoline returns
/// into the function it traces, so that function shows twice).
fn callers(stack: &[String]) -> String {
    let mut frames: Vec<&str> = Vec::new();
    for f in stack.iter().map(String::as_str) {
        let func = function_of(f);
        let machinery = is_tracing_frame(f) || is_traced_function(func);
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

/// The line of one record (several lines for the summary).
pub fn line(r: &Record) -> String {
    let body = match r {
        Record::Layout(l) => format!(
            "layout: kernel {} {}-level, page_offset_base {} vmalloc_base {} vmemmap_base {}, kernel slots from {}, {} present",
            l.kernel,
            l.paging.levels(),
            l.page_offset_base,
            l.vmalloc_base,
            l.vmemmap_base,
            l.kernel_boundary,
            l.present.len()
        ),
        Record::Sync(s) => format!(
            "cpu{} {}[{}] sync {} {}..{} slots {}-{}{} {:.1}us caller={} via {}{}",
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
            "cpu{} {}[{}] call {} {} {:.1}us via {}{}",
            c.task.cpu,
            c.task.comm,
            c.task.pid,
            c.function.symbol(),
            match (c.end, c.calls, c.addr_last) {
                (Some(end), ..) if c.function == sync_trace_common::Target::InitMemoryMapping => {
                    format!("phys {}..{}", c.addr, end)
                }
                (Some(end), ..) => format!("memmap {}..{}", c.addr, end),
                (None, Some(n), Some(last)) => format!("x{n} addr={}..{}", c.addr, last),
                _ => format!("addr={}", c.addr),
            },
            c.duration_ns as f64 / 1e3,
            c.method.name(),
            callers(&c.stack),
        ),
        Record::Populate(p) => format!("populate {}{}", pop(&p.pop), callers(&p.stack)),
        Record::Depopulate(d) => format!(
            "DEPOPULATE {} slot {} {} ({}): init_mm's entry is gone",
            d.level.name(),
            d.slot,
            d.addr,
            d.region.name()
        ),
        Record::Paired(p) => format!(
            "paired {} with {} {}..{}: {:.1}us ({}){}{}",
            pop(&p.pop),
            p.sync_function.symbol(),
            p.sync_start,
            p.sync_end,
            p.latency_ns as f64 / 1e3,
            p.latency_kind.name(),
            if p.late { ", after it was reported unsynced" } else { "" },
            if p.uncertain { "; UNCERTAIN: kernel records were lost meanwhile" } else { "" }
        ),
        Record::Unsynced(u) => format!(
            "UNSYNCED {}: no sync within {} ms; {} of {}{} PGDs lack it{}{}{}",
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
            let list = |v: &[SlotCount]| {
                v.iter()
                    .map(|m| format!("slot {}: {}", m.slot, m.pgds))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!(
                "verify ({}): {} PGDs x {} slots{}{}{}",
                v.trigger.name(),
                v.pgds_total,
                v.slots_checked,
                if v.ok { ", all agree" } else { "" },
                if v.missing.is_empty() { String::new() } else { format!("; missing {}", list(&v.missing)) },
                if v.mismatched.is_empty() { String::new() } else { format!("; mismatched {}", list(&v.mismatched)) },
            )
        }
        Record::Mismatch(m) => format!(
            "MISMATCH {} slot {} {} ({}): {} of {} PGDs point to another table",
            m.level.name(),
            m.slot,
            m.addr,
            m.region.name(),
            m.pgds,
            m.pgds_total
        ),
        Record::Lost(l) => format!("lost: {} more {} ({} in all)", l.count, l.what, l.total),
        Record::Detached(d) => format!(
            "DETACHED {} ({} via {}): {}",
            d.target.symbol(),
            d.symbol,
            d.method.name(),
            d.reason
        ),
        Record::Summary(s) => return summary(s),
    };
    match r.ts_ns() {
        Some(ts) => format!("{:>14.6} {body}", secs(ts)),
        None => body,
    }
}

/// `2^e` with a binary suffix, as bpftrace labels its buckets: `1K`, `512`, `16E`.
fn pow2(e: u32) -> String {
    const SUFFIX: [&str; 7] = ["", "K", "M", "G", "T", "P", "E"];
    format!("{}{}", 1u64 << (e % 10), SUFFIX[(e / 10) as usize])
}

/// Width of a histogram bar at its highest count.
const BAR: usize = 52;

/// A log2 histogram the way bpftrace prints one: a line per power-of-two
/// range from the lowest to the highest non-empty one, `[1K, 2K)`, with its
/// count and a bar scaled to the highest count.
fn histogram(h: &Histogram, indent: &str) -> String {
    // Bucket e holds [2^(e-1), 2^e); bucket 0 holds 0; le_ns is 2^e
    // (u64::MAX for e = 64).
    let exp = |le_ns: u64| {
        if le_ns == u64::MAX {
            64
        } else {
            le_ns.trailing_zeros()
        }
    };
    let (Some(first), Some(last)) = (h.buckets.first(), h.buckets.last()) else {
        return String::new();
    };
    let max = h.buckets.iter().map(|b| b.count).max().unwrap_or(1);
    let mut s = String::new();
    for e in exp(first.le_ns)..=exp(last.le_ns) {
        let count = h
            .buckets
            .iter()
            .find(|b| exp(b.le_ns) == e)
            .map_or(0, |b| b.count);
        let range = match e {
            0 => "[0]".to_string(),
            1 => "[1]".to_string(),
            _ => format!("[{}, {})", pow2(e - 1), pow2(e)),
        };
        let bar = "@".repeat((count as usize * BAR).div_ceil(max as usize));
        let _ = writeln!(s, "{indent}{range:<16}{count:>8} |{bar:<BAR$}|");
    }
    s
}

/// The summary: counts, then histograms of sync durations and of
/// populate-to-sync latencies (in ns), then losses.
pub fn summary(sum: &Summary) -> String {
    let mut s = String::from("summary:\n");
    if sum.counts.is_empty() {
        s.push_str("  no calls seen\n");
    }
    for (f, by_caller) in &sum.counts {
        for (c, n) in by_caller {
            let _ = writeln!(s, "  {f:<28} {c:<16} {n}");
        }
    }
    for (f, h) in &sum.sync_duration {
        let _ = writeln!(s, "  {f} duration (ns):");
        s.push_str(&histogram(h, "    "));
    }
    for (region, by_source) in &sum.populations {
        for (source, n) in by_source {
            let _ = writeln!(s, "  populations {region:<14} {source:<8} {n}");
        }
    }
    let _ = writeln!(
        s,
        "  paired {} unsynced {} (unconfirmed {}) uncertain {} pending {} depopulations {} mismatches {} verifications {}",
        sum.paired,
        sum.unsynced,
        sum.unsynced_unconfirmed,
        sum.uncertain,
        sum.pending,
        sum.depopulations,
        sum.mismatches,
        sum.verifications
    );
    for (k, h) in &sum.latency {
        let _ = writeln!(s, "  populate-to-sync latency ({k}, ns):");
        s.push_str(&histogram(h, "    "));
    }
    let lost: Vec<String> = sum.lost.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let _ = write!(
        s,
        "  lost: {}",
        if lost.is_empty() {
            "0".into()
        } else {
            lost.join(" ")
        }
    );
    if sum.undecodable > 0 {
        let _ = write!(s, " undecodable={}", sum.undecodable);
    }
    for (what, n) in &sum.dropped {
        let _ = write!(s, " dropped {what}={n}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_read_like_bpftrace() {
        let mut h = Histogram::default();
        for ns in [1500, 1600, 1700, 1800, 5000, 0] {
            h.record(ns);
        }
        h.finish();
        let text = histogram(&h, "");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 14, "{text}");
        assert_eq!(lines[0], format!("[0]{:>21} |{:<52}|", 1, "@".repeat(13)));
        assert_eq!(lines[1], format!("[1]{:>21} |{:52}|", 0, ""));
        assert_eq!(lines[11], format!("[1K, 2K){:>16} |{}|", 4, "@".repeat(52)));
        assert_eq!(lines[12], format!("[2K, 4K){:>16} |{:52}|", 0, ""));
        assert!(lines[13].starts_with("[4K, 8K)"), "{text}");
        assert_eq!(pow2(64), "16E");
        assert_eq!(pow2(9), "512");
    }

    #[test]
    fn every_line_but_the_summary_begins_with_its_time() {
        let r = Record::Lost(crate::record::LostRecord {
            what: "events".into(),
            count: 2,
            total: 5,
            ts_ns: 1_500_000_000,
            since_ns: 1_000_000_000,
        });
        assert_eq!(line(&r), "      1.500000 lost: 2 more events (5 in all)");
    }
}
