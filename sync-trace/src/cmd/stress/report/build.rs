//! `ReportBuilder`: collects what the observer sees and, at the end,
//! attributes every record to its cycle and slot; and the verdict.

use std::{collections::BTreeMap, fmt::Write as _};

use super::{
    model::{
        percentiles, CycleReport, Percentiles, Report, SlotRow, Totals, EXIT_ERROR, EXIT_FOUND,
    },
    text::fmt_ns,
};
use crate::{
    cmd::stress::{
        cycle::{Action, CycleEvent, Op, Outcome, Plan},
        observer::StressObserver,
        sysfs::HungWrite,
    },
    record::Record,
};

/// Collects what the observer sees.
#[derive(Clone, Default)]
pub struct ReportBuilder {
    records: Vec<Record>,
    /// `(index, start_ns, end_ns, actions)`.
    cycles: Vec<(u64, u64, u64, Vec<Action>)>,
    restore_failures: Vec<String>,
    cycler_error: Option<String>,
    hung_write: Option<HungWrite>,
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
            CycleEvent::Hung(h) => {
                self.hung_write.get_or_insert_with(|| h.clone());
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
                        (Op::Offline, Outcome::Refused) => c.busy.push(format!("{t} (EINVAL)")),
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
        let (verdict, exit_code) = verdict_of(
            &totals,
            &latency,
            &self.restore_failures,
            self.hung_write.as_ref(),
            error.as_deref(),
        );
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
            hung_write: self.hung_write,
            interrupted,
            in_progress: false,
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
/// lacked the entry) or a PGD mismatched, 0 otherwise. A write that hung
/// (memory hotplug wedged, often by the oops a missed sync causes) makes 3 when
/// something was found and 1 otherwise, whatever it left unrestored; the
/// verdict names it and what was not restored.
fn verdict_of(
    t: &Totals,
    latency: &Percentiles,
    restore_failures: &[String],
    hung: Option<&HungWrite>,
    error: Option<&str>,
) -> (String, i32) {
    let found = t.unsynced > 0 || t.mismatches > 0;
    let findings = format!(
        "{} unsynced population(s) (PGDs lacked the entry), {} mismatched slot(s)",
        t.unsynced, t.mismatches
    );
    if let Some(h) = hung {
        let mut s = h.explain();
        if !restore_failures.is_empty() {
            let _ = write!(s, "; could not restore {}", restore_failures.join("; "));
        }
        return if found {
            (
                format!("FOUND: {findings} in {} cycle(s); {s}", t.cycles),
                EXIT_FOUND,
            )
        } else {
            (format!("ERROR: {s}"), EXIT_ERROR)
        };
    }
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
