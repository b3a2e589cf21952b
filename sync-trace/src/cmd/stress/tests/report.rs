//! The report: counts, verdicts, and its text, JSON and HTML forms.

use super::records::*;
use crate::cmd::stress::{
    cycle::{CycleEvent, Op, Outcome},
    html,
    observer::StressObserver,
    report::{percentiles, ReportBuilder, EXIT_ERROR, EXIT_FOUND},
};

#[test]
fn percentiles_are_nearest_rank() {
    let v: Vec<u64> = (1..=100).rev().collect();
    let p = percentiles(&v);
    assert_eq!((p.count, p.p50_ns, p.p99_ns, p.max_ns), (100, 50, 99, 100));
    let p = percentiles(&[7]);
    assert_eq!((p.p50_ns, p.p99_ns, p.max_ns), (7, 7, 7));
    assert_eq!(percentiles(&[]).count, 0);
    let p = percentiles(&[1, 2, 3, 1000]);
    assert_eq!((p.p50_ns, p.p99_ns), (2, 1000));
}

#[test]
fn report_counts_per_cycle() {
    let r = two_cycles(false).finish(&empty_plan(), false, None);
    assert_eq!(r.kernel.as_deref(), Some("6.12.0-test"));
    assert_eq!(r.cycles.len(), 2);
    assert_eq!(r.before.syncs, 1);
    let c1 = &r.cycles[0];
    assert_eq!(c1.offlined, ["memory32", "dax0.0"]);
    assert_eq!(c1.onlined, ["memory32", "dax0.0"]);
    assert_eq!(c1.busy, ["memory33"]);
    assert_eq!(
        (c1.added.clone(), c1.removed.clone()),
        (vec![16, 17], vec![16, 17])
    );
    assert_eq!(c1.populations.get("vmemmap"), Some(&100));
    assert_eq!((c1.syncs, c1.paired), (100, 100));
    assert_eq!(
        (c1.latency.p50_ns, c1.latency.p99_ns, c1.latency.max_ns),
        (50_000, 99_000, 100_000)
    );
    let c2 = &r.cycles[1];
    assert_eq!(c2.populations.get("direct_map"), Some(&1));
    assert_eq!((c2.syncs, c2.paired, c2.lost, c2.unsynced), (1, 1, 3, 0));
    assert_eq!(c2.latency.max_ns, 7_000);
    assert_eq!(r.totals.populations, 101);
    assert_eq!(r.totals.syncs, 102);
    assert_eq!(r.latency.count, 101);
    assert_eq!(r.exit_code, 0);
    assert!(r.verdict.starts_with("clean: 2 cycle(s)"), "{}", r.verdict);
    assert!(
        r.verdict.contains("3 kernel record(s) lost"),
        "{}",
        r.verdict
    );
    let slots: Vec<(usize, &str, &str)> = r
        .slots
        .iter()
        .map(|s| (s.slot, s.region.as_str(), s.verdict.as_str()))
        .collect();
    assert_eq!(
        slots,
        [(337, "direct_map", "paired"), (468, "vmemmap", "paired")]
    );
    assert_eq!((r.slots[1].pgds_verified, r.slots[1].pgds_total), (5, 5));
    let text = r.text();
    assert!(text.contains("memory33"), "{text}");
    assert!(
        text.lines().last().unwrap().starts_with("verdict: clean"),
        "{text}"
    );
}

#[test]
fn unsynced_and_mismatch_exit_3_errors_exit_1() {
    let r = two_cycles(true).finish(&empty_plan(), false, None);
    assert_eq!(r.cycles[1].unsynced, 1);
    assert_eq!(r.exit_code, EXIT_FOUND);
    assert!(r.verdict.starts_with("FOUND: 1 unsynced"), "{}", r.verdict);
    let row = r.slots.iter().find(|s| s.slot == 506).unwrap();
    assert_eq!((row.pgds_verified, row.pgds_total), (1, 5));
    assert!(
        row.verdict.starts_with("unsynced: 4 of 5"),
        "{}",
        row.verdict
    );

    let mut b = two_cycles(false);
    b.record(&rec(
        r#"{"event":"mismatch","ts_ns":3000000500,"level":"p4d","slot":400,"addr":"0xffffc80000000000","region":"vmalloc","pgds":2,"pgds_total":5}"#,
    ));
    let r = b.finish(&empty_plan(), false, None);
    assert_eq!((r.cycles[1].mismatches, r.exit_code), (1, EXIT_FOUND));
    assert!(r
        .slots
        .iter()
        .any(|s| s.slot == 400 && s.verdict.starts_with("mismatch")));

    // An unconfirmed unsynced is reported, not a finding.
    let mut b = two_cycles(false);
    b.record(&unsynced(3_000_000_040, 507, false));
    let r = b.finish(&empty_plan(), false, None);
    assert_eq!((r.totals.unsynced_unconfirmed, r.exit_code), (1, 0));

    // A block not restored, or an error, is exit 1 and named.
    let mut b = two_cycles(true);
    b.cycle_event(&CycleEvent::Restored {
        failures: vec!["memory32: left offline (was online): busy (EBUSY)".into()],
    });
    let r = b.finish(&empty_plan(), false, None);
    assert_eq!(r.exit_code, EXIT_ERROR);
    assert!(
        r.verdict.contains("memory32: left offline"),
        "{}",
        r.verdict
    );
    assert!(r.text().contains("NOT RESTORED: memory32"));
    let r = two_cycles(false).finish(&empty_plan(), true, Some("tracing: ring gone".into()));
    assert_eq!(r.exit_code, EXIT_ERROR);
    assert!(r.text().contains("interrupted"));
}

#[test]
fn json_report_is_one_document() {
    let r = two_cycles(true).finish(&empty_plan(), false, None);
    let s = serde_json::to_string(&r).unwrap();
    assert!(!s.contains('\n'));
    let v: serde_json::Value = serde_json::from_str(&s).unwrap();
    assert_eq!(v["exit_code"], 3);
    assert_eq!(v["cycles"].as_array().unwrap().len(), 2);
    assert_eq!(v["cycles"][0]["latency"]["p99_ns"], 99_000);
    assert_eq!(v["cycles"][0]["busy"][0], "memory33");
    assert_eq!(v["cycles"][0]["actions"][3]["op"], "to_system_ram");
    assert!(v["verdict"].as_str().unwrap().starts_with("FOUND"));
}

fn svgs(page: &str) -> Vec<&str> {
    page.split("<svg")
        .skip(1)
        .map(|s| &s[..s.find("</svg>").expect("closed svg")])
        .collect()
}

#[test]
fn html_is_self_contained_with_every_plot() {
    let r = two_cycles(true).finish(&empty_plan(), false, None);
    let page = html::page(&r);
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(!page.contains("http://") && !page.contains("https://"));
    assert!(!page.contains("<script") && !page.contains("<link") && !page.contains("src="));
    let plots = svgs(&page);
    assert_eq!(plots.len(), 3);
    for (p, what) in plots.iter().zip(["latency", "per cycle", "sync duration"]) {
        assert!(
            p.contains("<rect") || p.contains("<circle"),
            "{what} plot is empty"
        );
    }
    assert!(plots[2].matches("<circle").count() >= 100);
    for needle in [
        "populate to sync latency distribution",
        "populations and syncs per cycle",
        "sync duration over time",
        "<td>506</td>",
        "unsynced: 4 of 5",
        "verdict: FOUND",
        "memory33",
    ] {
        assert!(page.contains(needle), "no {needle:?}");
    }
    // Without data every plot still renders, saying so.
    let r = ReportBuilder::default().finish(&empty_plan(), false, None);
    let page = html::page(&r);
    assert_eq!(svgs(&page).len(), 3);
    assert_eq!(page.matches("recorded</text>").count(), 3);
}

#[test]
fn long_text_reports_show_the_eventful_cycles() {
    let mut b = ReportBuilder::default();
    let s = 1_000_000_000u64;
    for i in 1..=60u64 {
        b.cycle_event(&CycleEvent::Start {
            index: i,
            of: None,
            ts_ns: i * s,
        });
        b.cycle_event(&action(
            i * s + 1,
            "memory32",
            Op::Offline,
            Outcome::Ok,
            vec![],
        ));
        if i == 30 {
            b.record(&populate(i * s + 5, 274, "direct_map"));
        }
        b.cycle_event(&CycleEvent::End {
            index: i,
            ts_ns: i * s + 10,
        });
    }
    let r = b.finish(&empty_plan(), false, None);
    let text = r.text();
    let rows: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<u64>().is_ok() || *w == "start")
        .collect();
    assert_eq!(rows, ["start", "1", "30", "60", "274"], "{text}");
    assert!(text.contains("57 cycle(s) without"), "{text}");
    assert_eq!(r.cycles.len(), 60);
}

#[test]
fn a_report_saved_as_json_draws_the_same_page() {
    let r = two_cycles(true).finish(&empty_plan(), false, None);
    let json = serde_json::to_string(&r).unwrap();
    let back: crate::cmd::stress::report::Report = serde_json::from_str(&json).unwrap();
    assert!(!back.sync_points.is_empty() && !back.latencies.is_empty());
    assert_eq!(html::page(&back), html::page(&r));
    assert_eq!(back.text(), r.text());
    assert_eq!(back.exit_code, EXIT_FOUND);
}
