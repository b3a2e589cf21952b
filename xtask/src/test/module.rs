//! Checks of the test-module scenario: synthetic populations that are
//! synced, synced late, never synced, or below the top level.

use std::collections::HashMap;

use anyhow::{bail, ensure, Context as _, Result};
use serde_json::Value;

use super::output::Output;

const MS: u64 = 1_000_000;
/// The module's `late` delay (its `delay_ms` default).
const LATE_MS: u64 = 300;
/// `unsynced` must come at most this long after the population.
const UNSYNCED_WITHIN_MS: u64 = 200;

/// The module's `last` line of a step (`mode=…` then `key=value` words), as printed by `cat last`.
pub struct Last {
    line: String,
    kv: HashMap<String, String>,
}

impl Last {
    pub fn of(o: &Output, step: &str) -> Result<Last> {
        let line = format!("mode={}", o.value(step, "mode")?);
        let kv = line
            .split_whitespace()
            .filter_map(|w| w.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Ok(Last { line, kv })
    }

    pub fn line(&self) -> &str {
        &self.line
    }

    pub fn get(&self, k: &str) -> Result<&str> {
        self.kv
            .get(k)
            .map(String::as_str)
            .with_context(|| format!("module line lacks {k}: {}", self.line))
    }

    /// A decimal or `0x` hexadecimal field.
    pub fn num(&self, k: &str) -> Result<u64> {
        let v = self.get(k)?;
        match v.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => v.parse(),
        }
        .with_context(|| format!("bad {k}: {}", self.line))
    }
}

/// The module's `last` line of a top-level action: `mode=… level=… slot=… addr=… ts_ns=… sync_ts_ns=…`.
struct Action {
    level: String,
    slot: u64,
    ts_ns: u64,
}

fn action(o: &Output, step: &str) -> Result<Action> {
    let last = Last::of(o, step).with_context(|| format!("step {step}"))?;
    Ok(Action {
        level: last.get("level").unwrap_or("").to_string(),
        slot: last.num("slot").with_context(|| format!("step {step}"))?,
        ts_ns: last.num("ts_ns").with_context(|| format!("step {step}"))?,
    })
}

fn for_slot(recs: &[Value], event: &str, slot: u64) -> Vec<Value> {
    recs.iter()
        .filter(|r| r["event"] == event && r["slot"] == slot)
        .cloned()
        .collect()
}

/// A synced population: `populate` and `paired` (exact), never `unsynced`.
fn check_synced(recs: &[Value], a: &Action) -> Result<()> {
    let pops = for_slot(recs, "populate", a.slot);
    ensure!(
        pops.len() == 1,
        "synced slot {}: {} populate records",
        a.slot,
        pops.len()
    );
    let paired = for_slot(recs, "paired", a.slot);
    let p = paired
        .first()
        .with_context(|| format!("synced slot {} never paired", a.slot))?;
    ensure!(
        p["latency_ns"].as_u64().is_some(),
        "paired without latency: {p}"
    );
    if let Some(u) = for_slot(recs, "unsynced", a.slot).first() {
        bail!("synced slot {} reported unsynced: {u}", a.slot);
    }
    Ok(())
}

/// At least one `unsynced` with PGDs missing in a step (the never-synced module action).
pub fn never_unsynced_in(o: &Output, step: &str) -> Result<()> {
    let u = o.events(step, "unsynced")?;
    ensure!(
        u.iter()
            .any(|u| u["pgds_missing"].as_u64().unwrap_or(0) > 0),
        "no unsynced with missing PGDs in step {step}: {u:?}"
    );
    Ok(())
}

pub fn check_module(o: &Output, paging: u8) -> Result<()> {
    let top = if paging == 5 { "pgd" } else { "p4d" };
    let recs = o.json("run")?;
    o.expect_exit("run", 0)?;

    let synced = action(o, "synced")?;
    ensure!(
        synced.level == top,
        "module populated {} under {paging}-level paging",
        synced.level
    );
    check_synced(&recs, &synced)?;
    o.expect_exit("synced", 0)?;

    // A lower-level entry needs no sync: nothing about it, audit clean.
    let lower = action(o, "lower")?;
    ensure!(lower.level != top, "lower action wrote the top level");
    o.expect_exit("lower", 0)?;

    // Late: unsynced after the grace window, then paired with the delay visible.
    let late = action(o, "late")?;
    ensure!(
        !for_slot(&recs, "unsynced", late.slot).is_empty(),
        "late sync of slot {} never reported unsynced",
        late.slot
    );
    let paired = for_slot(&recs, "paired", late.slot);
    let p = paired
        .first()
        .with_context(|| format!("late slot {} never paired after its sync", late.slot))?;
    ensure!(p["late"] == true, "late pairing not marked late: {p}");
    let lat = p["latency_ns"].as_u64().unwrap_or(0);
    ensure!(
        lat >= LATE_MS * MS,
        "late pairing latency {lat} ns is below the {LATE_MS} ms delay: {p}"
    );
    o.expect_exit("late", 0)?;

    // Never: unsynced soon enough, with PGDs missing the entry; audit fails.
    let never = action(o, "never")?;
    let u = for_slot(&recs, "unsynced", never.slot);
    let u = u
        .first()
        .with_context(|| format!("never-synced slot {} not reported", never.slot))?;
    let at = u["ts_ns"].as_u64().unwrap_or(0);
    ensure!(
        at >= never.ts_ns && at - never.ts_ns <= UNSYNCED_WITHIN_MS * MS,
        "unsynced {} ms after the population (module ts {}), more than {UNSYNCED_WITHIN_MS} ms: {u}",
        at.saturating_sub(never.ts_ns) / MS,
        never.ts_ns
    );
    ensure!(
        u["pgds_missing"].as_u64().unwrap_or(0) > 0,
        "unsynced without missing PGDs: {u}"
    );
    if let Some(p) = for_slot(&recs, "paired", never.slot).first() {
        bail!("never-synced slot paired: {p}");
    }
    o.expect_exit("never", 3)?;

    // Mismatch: synced, then the writer's own PGD points elsewhere: a
    // `mismatch` record, and audit names the slot and exits 3.
    let mm = action(o, "mismatch")?;
    check_synced(&recs, &mm)?;
    let m = for_slot(&recs, "mismatch", mm.slot);
    let m = m
        .first()
        .with_context(|| format!("no mismatch record for slot {}", mm.slot))?;
    ensure!(
        m["pgds"].as_u64() == Some(1),
        "mismatch should be in the writer's PGD only: {m}"
    );
    o.expect_exit("mismatch", 3)?;
    let audited = o.events("mismatch", "verify")?;
    ensure!(
        audited.iter().any(|v| v["mismatched"]
            .as_array()
            .is_some_and(|l| l.iter().any(|e| e["slot"] == mm.slot))),
        "audit does not name the mismatched slot {}: {audited:?}",
        mm.slot
    );

    // Only the four top-level actions are populations, and only late and never are unsynced.
    let populated: Vec<u64> = recs
        .iter()
        .filter(|r| r["event"] == "populate")
        .filter_map(|r| r["slot"].as_u64())
        .collect();
    ensure!(
        populated.len() == 4,
        "populations {populated:?}, expected the slots of sync, late, never and mismatch"
    );
    let unsynced = recs.iter().filter(|r| r["event"] == "unsynced").count();
    ensure!(
        unsynced == 2,
        "{unsynced} unsynced records, expected 2 (late, never)"
    );

    // The check of the synced case must be able to fail: applied to the
    // never-synced population (the synced case with its sync removed) it must.
    ensure!(
        check_synced(&recs, &never).is_err(),
        "the synced check passed on a population that was never synced"
    );

    o.expect_exit("fail-on-unsynced", 3)
}
