//! What a stress run reported (`stress.json`, or the records of `sync-trace run`), and
//! how it compares with the plan.

use super::guest::StressOutcome;
use super::plan::{expected, Layout};
use super::StressArgs;
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::collections::BTreeSet;
use sync_trace::record::{CallRecord, LayoutRecord, Record};
use sync_trace_common::Target;

/// The guest's report: verdict line, populated slots (region, slot, verdict).
pub struct Summary {
    pub verdict: String,
    pub populations: u64,
    pub slots: Vec<(String, u64, String)>,
    /// Kernel records lost (ring buffer full).
    pub lost: u64,
}

/// Reads `stress.json`, or for a run without the NVDIMM (`sync-trace run` traced)
/// `run.ndjson`.
pub fn summarize(files: &[(String, Vec<u8>)]) -> Result<Summary> {
    let get = |n: &str| files.iter().find(|(f, _)| f == n).map(|(_, b)| b);
    if let Some(b) = get("stress.json") {
        let r: Value = serde_json::from_slice(b).context("stress.json")?;
        let slots = r["slots"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["source"].as_str() != Some("-"))
            .map(|s| {
                (
                    s["region"].as_str().unwrap_or("?").to_string(),
                    s["slot"].as_u64().unwrap_or(0),
                    s["verdict"].as_str().unwrap_or("?").to_string(),
                )
            })
            .collect();
        return Ok(Summary {
            verdict: r["verdict"].as_str().unwrap_or("?").to_string(),
            populations: r["totals"]["populations"].as_u64().unwrap_or(0),
            slots,
            lost: r["totals"]["lost"].as_u64().unwrap_or(0),
        });
    }
    let b = get("run.ndjson").context("the guest sent no report")?;
    let recs = records(&String::from_utf8_lossy(b));
    let slots = population_verdicts(&recs);
    let bad = slots.iter().filter(|s| s.2 != "paired").count();
    let mism = recs
        .iter()
        .filter(|r| matches!(r, Record::Mismatch(_)))
        .count();
    Ok(Summary {
        verdict: if bad + mism == 0 {
            format!(
                "clean: {} populations, all paired (sync-trace run)",
                slots.len()
            )
        } else {
            format!("FOUND: {bad} populations not paired, {mism} mismatches (sync-trace run)")
        },
        populations: slots.len() as u64,
        slots,
        lost: lost_events(&recs),
    })
}

/// Ring-buffer records lost, from the `lost` records.
fn lost_events(recs: &[Record]) -> u64 {
    recs.iter()
        .filter_map(|r| match r {
            Record::Lost(l) if l.what == "events" => Some(l.count),
            _ => None,
        })
        .sum()
}

/// The daemon's records among the lines of `text` (`sync-trace run --json`); other lines
/// skipped.
fn records(text: &str) -> Vec<Record> {
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The first `layout` record in `text`.
fn first_layout(text: &str) -> Option<LayoutRecord> {
    records(text).into_iter().find_map(|r| match r {
        Record::Layout(l) => Some(l),
        _ => None,
    })
}

/// (region, slot, `paired` / `unsynced` / `pending`) of every `populate` record.
fn population_verdicts(recs: &[Record]) -> Vec<(String, u64, String)> {
    recs.iter()
        .filter_map(|r| match r {
            Record::Populate(p) => Some(&p.pop),
            _ => None,
        })
        .map(|p| {
            let verdict = recs
                .iter()
                .find_map(|r| match r {
                    Record::Paired(v) if v.pop.slot == p.slot => Some("paired"),
                    Record::Unsynced(v) if v.pop.slot == p.slot => Some("unsynced"),
                    _ => None,
                })
                .unwrap_or("pending");
            (
                p.region.name().to_string(),
                p.slot as u64,
                verdict.to_string(),
            )
        })
        .collect()
}

/// The populations of the traced NVDIMM setup (`sync-trace run --json` lines of the
/// `nvdimm-setup` step).
pub fn setup_populations(output: &str) -> Vec<(String, u64, String)> {
    population_verdicts(&records(&setup_section(output)))
}

/// What the traced NVDIMM setup cost in the ring: (populate calls, their `call` records,
/// records lost).
pub fn setup_records(output: &str) -> (u64, u64, u64) {
    let recs = records(&setup_section(output));
    let calls: Vec<&CallRecord> = recs
        .iter()
        .filter_map(|r| match r {
            Record::Call(c) if c.function != Target::InitMemoryMapping => Some(c),
            _ => None,
        })
        .collect();
    (
        calls.iter().map(|c| c.calls()).sum(),
        calls.len() as u64,
        lost_events(&recs),
    )
}

fn setup_section(output: &str) -> String {
    let mut sect = String::new();
    let mut inside = false;
    for l in output.lines() {
        if l.starts_with("=== step ") {
            inside = l == "=== step nvdimm-setup";
        } else if inside {
            sect.push_str(l);
            sect.push('\n');
        }
    }
    sect
}

/// Compares a run with its plan: clean, one population per new entry, each paired.
pub fn check(args: &StressArgs, o: &StressOutcome) -> Result<()> {
    if !o.host_errors.is_empty() {
        bail!("host actions failed: {}", o.host_errors.join("; "));
    }
    let s = summarize(&o.files)?;
    if o.exit_status != 0 || !s.verdict.starts_with("clean") {
        bail!("exit {}: verdict: {}", o.exit_status, s.verdict);
    }
    // Populate calls over present entries are batched in the kernel: the ring keeps up.
    let (_, _, setup_lost) = setup_records(&o.output);
    if s.lost + setup_lost > 0 {
        bail!(
            "{} kernel records lost ({setup_lost} in the NVDIMM setup): the EVENTS ring overflowed",
            s.lost + setup_lost
        );
    }
    matches_plan(args, o, &s)
}

/// The populations (NVDIMM setup, and the report's) are the plan's new entries, each
/// paired (nokaslr: the plan assumes the fixed region bases).
pub fn matches_plan(args: &StressArgs, o: &StressOutcome, s: &Summary) -> Result<()> {
    let (want_setup, want) = expected(&layout_of(args, o), &args.paths);
    let got_setup = setup_populations(&o.output);
    let fmt = |v: &[(String, u64, String)]| {
        v.iter()
            .map(|(r, n, v)| format!("{r} {n} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let slots = |v: &[(String, u64, String)]| v.iter().map(|x| x.1).collect::<BTreeSet<_>>();
    let want_slots = |w: &BTreeSet<(&str, u64)>| w.iter().map(|x| x.1).collect::<BTreeSet<_>>();
    if slots(&got_setup) != want_slots(&want_setup) || got_setup.len() != want_setup.len() {
        bail!(
            "NVDIMM setup populated [{}], the plan says {want_setup:?}",
            fmt(&got_setup)
        );
    }
    if s.populations != want.len() as u64 || slots(&s.slots) != want_slots(&want) {
        bail!(
            "{} populations in the report ([{}]), the plan creates {want:?}",
            s.populations,
            fmt(&s.slots)
        );
    }
    if let Some(x) = got_setup.iter().chain(&s.slots).find(|x| x.2 != "paired") {
        bail!("slot {} ({}) is {}, not paired", x.1, x.0, x.2);
    }
    Ok(())
}

/// The guest's layout as its first `sync-trace run` saw it (NVDIMM setup section, or
/// `run.ndjson`); else the nokaslr bases.
pub fn layout_of(args: &StressArgs, o: &StressOutcome) -> Layout {
    let run = o
        .files
        .iter()
        .find(|(n, _)| n == "run.ndjson")
        .map(|(_, b)| String::from_utf8_lossy(b).to_string());
    first_layout(&o.output)
        .or_else(|| run.as_deref().and_then(first_layout))
        .map(|l| Layout::of(&l))
        .unwrap_or_else(|| Layout::nokaslr(args.paging))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 6.1 guest's records of a hot-add at 32 TiB: two populations, each
    /// paired.
    const RUN: &str = include_str!("../../../sync-trace/tests/fixtures/6.1-hotadd-32T.ndjson");

    #[test]
    fn reads_run_ndjson() {
        let s = summarize(&[("run.ndjson".into(), RUN.as_bytes().to_vec())]).unwrap();
        assert_eq!(s.populations, 2);
        assert!(s.verdict.starts_with("clean"), "{}", s.verdict);
        let want = [("direct_map", 337), ("vmemmap", 469)];
        let got: Vec<_> = s.slots.iter().map(|x| (x.0.as_str(), x.1)).collect();
        assert_eq!(got, want);
        assert!(s.slots.iter().all(|x| x.2 == "paired"));
        assert!(first_layout(RUN).is_some());
    }

    #[test]
    fn a_population_without_a_verdict_is_pending() {
        let out = format!(
            "=== step boot\n{}\n=== step nvdimm-setup\nnoise\n{}\n=== step stress\n",
            RUN.lines().next().unwrap(),
            RUN.lines()
                .filter(|l| !l.contains(r#""event":"paired""#))
                .collect::<Vec<_>>()
                .join("\n")
        );
        let got = setup_populations(&out);
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|x| x.2 == "pending"), "{got:?}");
    }
}
