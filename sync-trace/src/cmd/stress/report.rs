//! The stress report, built only from what a `StressObserver` sees: the
//! daemon's records and the cycle events. Records are attributed to the
//! cycle during which they happened (by their own timestamps: a population
//! by when it happened, a verdict with its population), not by when they
//! arrived, since `populate`, `paired` and `unsynced` are written late.

use std::{collections::BTreeMap, fmt::Write as _};

use serde::Serialize;

use super::{
    blocks::{Block, Skipped},
    cycle::{Action, CycleEvent, Op, Outcome, Plan},
    dax::DaxDevice,
    observer::StressObserver,
};
use crate::record::{Hex, Record};

/// Exit status when a population went unsynced or a PGD mismatched.
pub const EXIT_FOUND: i32 = 3;
pub const EXIT_ERROR: i32 = 1;

/// Up to this many cycles the text report has a row for each.
const TEXT_ALL_CYCLES: usize = 50;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Percentiles {
    pub count: usize,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
}

/// Nearest-rank percentiles (p50 of 1..=100 is 50, p99 is 99).
pub fn percentiles(values: &[u64]) -> Percentiles {
    if values.is_empty() {
        return Percentiles::default();
    }
    let mut v = values.to_vec();
    v.sort_unstable();
    let rank = |p: usize| v[(p * v.len()).div_ceil(100).clamp(1, v.len()) - 1];
    Percentiles {
        count: v.len(),
        p50_ns: rank(50),
        p99_ns: rank(99),
        max_ns: v[v.len() - 1],
    }
}

/// One cycle (index 0: before the first cycle began).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CycleReport {
    pub index: u64,
    pub start_ns: u64,
    pub end_ns: u64,
    pub offlined: Vec<String>,
    pub onlined: Vec<String>,
    /// Offlines the kernel refused with EBUSY (normal; the block stayed online).
    pub busy: Vec<String>,
    /// Memory blocks kmem added (device-dax → system-ram) and removed.
    pub added: Vec<u64>,
    pub removed: Vec<u64>,
    pub failed: Vec<String>,
    pub actions: Vec<Action>,
    /// Populations by region.
    pub populations: BTreeMap<String, u64>,
    pub syncs: u64,
    pub paired: u64,
    pub latency: Percentiles,
    /// Confirmed: PGDs lacked the entry after the grace window.
    pub unsynced: u64,
    pub unsynced_unconfirmed: u64,
    pub mismatches: u64,
    pub lost: u64,
    #[serde(skip)]
    latencies: Vec<u64>,
}

impl CycleReport {
    pub fn population_count(&self) -> u64 {
        self.populations.values().sum()
    }

    /// Anything traced or gone wrong in it.
    pub fn eventful(&self) -> bool {
        self.population_count() > 0
            || self.syncs > 0
            || self.unsynced + self.unsynced_unconfirmed + self.mismatches + self.lost > 0
            || !self.failed.is_empty()
    }
}

/// One top-level slot that was populated or mismatched during the run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SlotRow {
    pub slot: usize,
    pub addr: Hex,
    pub region: String,
    /// `helper`, `call`, `effect`; `-` when present at start.
    pub source: String,
    /// PGDs that carried the entry in the last walk that compared the slot,
    /// out of `pgds_total`.
    pub pgds_verified: u32,
    pub pgds_total: u32,
    pub verdict: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Totals {
    pub cycles: u64,
    pub populations: u64,
    pub syncs: u64,
    pub paired: u64,
    pub unsynced: u64,
    pub unsynced_unconfirmed: u64,
    pub mismatches: u64,
    pub lost: u64,
    pub busy: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub kernel: Option<String>,
    pub blocks: Vec<Block>,
    pub dax: Vec<DaxDevice>,
    pub skipped: Vec<Skipped>,
    pub cycles_planned: Option<u64>,
    pub before: CycleReport,
    pub cycles: Vec<CycleReport>,
    pub slots: Vec<SlotRow>,
    pub latency: Percentiles,
    pub totals: Totals,
    pub restore_failures: Vec<String>,
    pub interrupted: bool,
    pub error: Option<String>,
    pub verdict: String,
    pub exit_code: i32,
    /// `(ts_ns, duration_ns)` of every sync, for the plot.
    #[serde(skip)]
    pub sync_points: Vec<(u64, u64)>,
    /// Every populate→sync latency, for the plot.
    #[serde(skip)]
    pub latencies: Vec<u64>,
    #[serde(skip)]
    pub start_ns: u64,
}

/// Collects what the observer sees.
#[derive(Default)]
pub struct ReportBuilder {
    records: Vec<Record>,
    /// `(index, start_ns, end_ns, actions)`.
    cycles: Vec<(u64, u64, u64, Vec<Action>)>,
    restore_failures: Vec<String>,
    cycler_error: Option<String>,
    kernel: Option<String>,
}

impl StressObserver for ReportBuilder {
    fn record(&mut self, r: &Record) {
        match r {
            Record::Layout(l) => self.kernel = Some(l.kernel.clone()),
            Record::Populate(_)
            | Record::Paired(_)
            | Record::Unsynced(_)
            | Record::Sync(_)
            | Record::Mismatch(_)
            | Record::Lost(_)
            | Record::Verify(_) => self.records.push(r.clone()),
            _ => {}
        }
    }

    fn cycle_event(&mut self, ev: &CycleEvent) {
        match ev {
            CycleEvent::Start { index, ts_ns, .. } => {
                self.cycles.push((*index, *ts_ns, *ts_ns, Vec::new()))
            }
            CycleEvent::Action(a) => {
                if let Some(c) = self.cycles.last_mut() {
                    c.3.push(a.clone());
                }
            }
            CycleEvent::End { ts_ns, .. } => {
                if let Some(c) = self.cycles.last_mut() {
                    c.2 = *ts_ns;
                }
            }
            CycleEvent::Restored { failures } => self.restore_failures = failures.clone(),
            CycleEvent::Done(r) => self.cycler_error = r.clone().err(),
        }
    }
}

/// When a record happened, for attributing it to a cycle.
fn when(r: &Record) -> u64 {
    match r {
        Record::Populate(p) => p.ts_ns.min(p.seen()),
        Record::Paired(p) => p.populated_ns,
        Record::Unsynced(u) => u.populated_ns,
        Record::Sync(s) => s.ts_ns,
        Record::Mismatch(m) => m.ts_ns,
        Record::Lost(l) => l.ts_ns,
        Record::Verify(v) => v.ts_ns,
        _ => 0,
    }
}

/// Worse verdicts rank higher.
fn rank(verdict: &str) -> u8 {
    match verdict.split(':').next().unwrap_or("") {
        "mismatch" => 5,
        "unsynced" => 4,
        "unsynced, unconfirmed" => 3,
        "paired" => 2,
        _ => 1,
    }
}

impl ReportBuilder {
    /// The report. `error`: what stopped the command, besides the cycler.
    pub fn finish(self, plan: &Plan, interrupted: bool, error: Option<String>) -> Report {
        let mut cycles: Vec<CycleReport> = self
            .cycles
            .iter()
            .map(|(index, start, end, actions)| {
                let mut c = CycleReport {
                    index: *index,
                    start_ns: *start,
                    end_ns: *end,
                    actions: actions.clone(),
                    ..Default::default()
                };
                for a in actions {
                    let t = a.target.clone();
                    match (&a.op, &a.outcome) {
                        (_, Outcome::Failed(e)) => {
                            c.failed.push(format!("{t} {}: {e}", a.op.name()))
                        }
                        (Op::Offline, Outcome::Busy) | (Op::ToDevdax, Outcome::Busy) => {
                            c.busy.push(t)
                        }
                        (Op::Offline, Outcome::Ok) => c.offlined.push(t),
                        (Op::Online, Outcome::Ok) => c.onlined.push(t),
                        (Op::ToSystemRam, Outcome::Ok) => {
                            c.added.extend(&a.blocks);
                            c.onlined.push(t)
                        }
                        (Op::ToDevdax, Outcome::Ok) => {
                            c.removed.extend(&a.blocks);
                            c.offlined.push(t)
                        }
                        _ => {}
                    }
                }
                c
            })
            .collect();
        let start_ns = cycles.first().map_or(0, |c| c.start_ns);
        let mut before = CycleReport::default();
        let mut sync_points = Vec::new();
        let mut latencies = Vec::new();
        let mut slots: BTreeMap<usize, SlotRow> = BTreeMap::new();
        let mut last_walk: BTreeMap<usize, (u64, u32, u32)> = BTreeMap::new();
        let verdict = |slots: &mut BTreeMap<usize, SlotRow>, slot: usize, v: String| {
            if let Some(row) = slots.get_mut(&slot) {
                if rank(&v) >= rank(&row.verdict) {
                    row.verdict = v;
                }
            }
        };
        for r in &self.records {
            let ts = when(r);
            let idx = cycles.iter().rposition(|c| c.start_ns <= ts);
            let c = match idx {
                Some(i) => &mut cycles[i],
                None => &mut before,
            };
            match r {
                Record::Populate(p) => {
                    *c.populations
                        .entry(p.pop.region.name().to_string())
                        .or_default() += 1;
                    let row = slots.entry(p.pop.slot).or_insert_with(|| SlotRow {
                        slot: p.pop.slot,
                        addr: p.pop.addr,
                        region: p.pop.region.name().to_string(),
                        source: p.pop.source.name().to_string(),
                        pgds_verified: 0,
                        pgds_total: 0,
                        verdict: "pending".into(),
                    });
                    row.source = p.pop.source.name().to_string();
                }
                Record::Paired(p) => {
                    c.paired += 1;
                    c.latencies.push(p.latency_ns);
                    latencies.push(p.latency_ns);
                    verdict(&mut slots, p.pop.slot, "paired".into());
                }
                Record::Unsynced(u) => {
                    let v = if u.confirmed {
                        c.unsynced += 1;
                        format!(
                            "unsynced: {} of {} PGDs lacked the entry",
                            u.pgds_missing, u.pgds_total
                        )
                    } else {
                        c.unsynced_unconfirmed += 1;
                        "unsynced, unconfirmed: no sync traced, every PGD walked has it".into()
                    };
                    verdict(&mut slots, u.pop.slot, v);
                }
                Record::Sync(s) => {
                    c.syncs += 1;
                    sync_points.push((s.ts_ns, s.duration_ns));
                }
                Record::Mismatch(m) => {
                    c.mismatches += 1;
                    slots.entry(m.slot).or_insert_with(|| SlotRow {
                        slot: m.slot,
                        addr: m.addr,
                        region: m.region.name().to_string(),
                        source: "-".into(),
                        pgds_verified: 0,
                        pgds_total: m.pgds_total,
                        verdict: "pending".into(),
                    });
                    verdict(
                        &mut slots,
                        m.slot,
                        format!(
                            "mismatch: {} of {} PGDs point elsewhere",
                            m.pgds, m.pgds_total
                        ),
                    );
                }
                Record::Lost(l) => c.lost += l.count,
                Record::Verify(v) if v.complete => {
                    let slots_seen: Vec<usize> = slots.keys().copied().collect();
                    for s in slots_seen.into_iter().filter(|&s| v.compared(s)) {
                        let have = v.pgds_total.saturating_sub(v.missing_in(s));
                        last_walk.insert(s, (v.ts_ns, have, v.pgds_total));
                    }
                }
                _ => {}
            }
        }
        for (slot, (_, have, total)) in last_walk {
            if let Some(row) = slots.get_mut(&slot) {
                row.pgds_verified = have;
                row.pgds_total = total;
            }
        }
        for c in cycles.iter_mut().chain(std::iter::once(&mut before)) {
            c.latency = percentiles(&c.latencies);
        }
        let mut totals = Totals {
            cycles: cycles.len() as u64,
            ..Default::default()
        };
        for c in cycles.iter().chain(std::iter::once(&before)) {
            totals.populations += c.population_count();
            totals.syncs += c.syncs;
            totals.paired += c.paired;
            totals.unsynced += c.unsynced;
            totals.unsynced_unconfirmed += c.unsynced_unconfirmed;
            totals.mismatches += c.mismatches;
            totals.lost += c.lost;
            totals.busy += c.busy.len() as u64;
        }
        let error = error.or(self.cycler_error);
        let latency = percentiles(&latencies);
        let (verdict, exit_code) =
            verdict_of(&totals, &latency, &self.restore_failures, error.as_deref());
        Report {
            kernel: self.kernel,
            blocks: plan.blocks.clone(),
            dax: plan.dax.clone(),
            skipped: plan.skipped.clone(),
            cycles_planned: plan.cycles,
            before,
            cycles,
            slots: slots.into_values().collect(),
            latency,
            totals,
            restore_failures: self.restore_failures,
            interrupted,
            error,
            verdict,
            exit_code,
            sync_points,
            latencies,
            start_ns,
        }
    }
}

/// The final line and the exit status: 1 on an error (including a block or
/// device not restored), 3 when a population went unsynced (confirmed: PGDs
/// lacked the entry) or a PGD mismatched, 0 otherwise.
pub fn verdict_of(
    t: &Totals,
    latency: &Percentiles,
    restore_failures: &[String],
    error: Option<&str>,
) -> (String, i32) {
    let found = t.unsynced > 0 || t.mismatches > 0;
    let findings = format!(
        "{} unsynced population(s) (PGDs lacked the entry), {} mismatched slot(s)",
        t.unsynced, t.mismatches
    );
    if !restore_failures.is_empty() {
        return (
            format!("ERROR: could not restore {}", restore_failures.join("; ")),
            EXIT_ERROR,
        );
    }
    if let Some(e) = error {
        let also = if found {
            format!("; also {findings}")
        } else {
            String::new()
        };
        return (format!("ERROR: {e}{also}"), EXIT_ERROR);
    }
    if found {
        return (
            format!("FOUND: {findings} in {} cycle(s)", t.cycles),
            EXIT_FOUND,
        );
    }
    let synced = if latency.count == 0 {
        "none to pair".to_string()
    } else {
        format!("every population synced (p99 {})", fmt_ns(latency.p99_ns))
    };
    let mut s = format!(
        "clean: {} cycle(s), {} population(s), {} sync(s), {synced}, no mismatch",
        t.cycles, t.populations, t.syncs,
    );
    if t.unsynced_unconfirmed > 0 {
        let _ = write!(
            s,
            "; {} population(s) had no traced sync but every PGD carried them",
            t.unsynced_unconfirmed
        );
    }
    if t.lost > 0 {
        let _ = write!(
            s,
            "; {} kernel record(s) lost: verdicts in those windows are uncertain",
            t.lost
        );
    }
    (s, 0)
}

/// p50, p99 and max, `-` when nothing was paired.
pub fn fmt_lat(p: &Percentiles) -> [String; 3] {
    if p.count == 0 {
        ["-".into(), "-".into(), "-".into()]
    } else {
        [fmt_ns(p.p50_ns), fmt_ns(p.p99_ns), fmt_ns(p.max_ns)]
    }
}

pub fn fmt_ns(ns: u64) -> String {
    match ns {
        0..=9_999 => format!("{ns} ns"),
        10_000..=9_999_999 => format!("{:.1} µs", ns as f64 / 1e3),
        10_000_000..=9_999_999_999 => format!("{:.1} ms", ns as f64 / 1e6),
        _ => format!("{:.2} s", ns as f64 / 1e9),
    }
}

fn list<T: ToString>(v: &[T]) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        v.iter().map(T::to_string).collect::<Vec<_>>().join(",")
    }
}

fn regions(m: &BTreeMap<String, u64>) -> String {
    if m.is_empty() {
        "-".into()
    } else {
        m.iter()
            .map(|(r, n)| format!("{r}={n}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl Report {
    /// The terminal report.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "sync-trace stress on {}: {} block(s) [{}], {} device-dax device(s) [{}]",
            self.kernel.as_deref().unwrap_or("unknown kernel"),
            self.blocks.len(),
            list(&self.blocks.iter().map(|b| b.id).collect::<Vec<_>>()),
            self.dax.len(),
            list(
                &self
                    .dax
                    .iter()
                    .map(|d| format!("{}({})", d.name, d.mode.name()))
                    .collect::<Vec<_>>()
            ),
        );
        for sk in &self.skipped {
            let _ = writeln!(s, "skipped {}: {}", sk.target, sk.reason);
        }
        let _ = writeln!(
            s,
            "{:>5} {:<24} {:<24} {:>4} {:>6} {:>6} {:>10} {:>10} {:>10} {:>4} {:>4} {:>4}  populations",
            "cycle", "offlined/removed", "onlined/added", "busy", "syncs", "paired", "p50", "p99", "max", "uns", "mis", "lost"
        );
        // Long runs: the eventful cycles only (JSON and HTML have all).
        let n = self.cycles.len();
        let mut omitted = 0;
        for c in std::iter::once(&self.before).chain(&self.cycles) {
            if n > TEXT_ALL_CYCLES && c.index > 1 && c.index != n as u64 && !c.eventful() {
                omitted += 1;
                continue;
            }
            let idx = if c.index == 0 {
                "start".to_string()
            } else {
                c.index.to_string()
            };
            let off = format!(
                "{} {}",
                list(&c.offlined),
                if c.removed.is_empty() {
                    String::new()
                } else {
                    format!("-[{}]", list(&c.removed))
                }
            );
            let on = format!(
                "{} {}",
                list(&c.onlined),
                if c.added.is_empty() {
                    String::new()
                } else {
                    format!("+[{}]", list(&c.added))
                }
            );
            let lat = fmt_lat(&c.latency);
            let _ = writeln!(
                s,
                "{:>5} {:<24} {:<24} {:>4} {:>6} {:>6} {:>10} {:>10} {:>10} {:>4} {:>4} {:>4}  {}",
                idx,
                off.trim_end(),
                on.trim_end(),
                c.busy.len(),
                c.syncs,
                c.paired,
                lat[0],
                lat[1],
                lat[2],
                c.unsynced,
                c.mismatches,
                c.lost,
                regions(&c.populations)
            );
            if !c.busy.is_empty() {
                let _ = writeln!(s, "      busy (EBUSY, left as found): {}", c.busy.join(" "));
            }
            for f in &c.failed {
                let _ = writeln!(s, "      failed: {f}");
            }
        }
        if omitted > 0 {
            let _ = writeln!(
                s,
                "      ({omitted} cycle(s) without populations, syncs, verdicts, losses or failures not shown; --json and --report list every cycle)"
            );
        }
        if !self.slots.is_empty() {
            let _ = writeln!(
                s,
                "{:>5} {:<20} {:<15} {:<7} {:>13}  verdict",
                "slot", "addr", "region", "source", "PGDs verified"
            );
            for r in &self.slots {
                let _ = writeln!(
                    s,
                    "{:>5} {:<20} {:<15} {:<7} {:>13}  {}",
                    r.slot,
                    r.addr.to_string(),
                    r.region,
                    r.source,
                    format!("{}/{}", r.pgds_verified, r.pgds_total),
                    r.verdict
                );
            }
        }
        if self.interrupted {
            let _ = writeln!(s, "interrupted: stopped early, state restored");
        }
        for f in &self.restore_failures {
            let _ = writeln!(s, "NOT RESTORED: {f}");
        }
        let _ = writeln!(s, "verdict: {}", self.verdict);
        s
    }
}
