//! Prometheus metrics, kept by the official `prometheus-client` crate and
//! updated from the same records `run` prints. Names and labels are a
//! contract: docs/metrics.md.

mod labels;
mod prometheus_text;
mod sync_tally;

use prometheus_client::{
    encoding::text,
    metrics::{
        counter::Counter,
        family::{Family, MetricConstructor},
        gauge::Gauge,
        histogram::Histogram,
    },
    registry::Registry,
};
use strum::IntoEnumIterator;
use sync_trace_common::{Paging, Region};

use self::labels::{
    pop_labels, BuildLabels, FunctionLabels, LatencyBuckets, PopLabels, ProbeLabels, RegionLabels,
    SyncLabels, VerdictLabels, SYNC_FUNCTIONS, VERDICTS,
};
pub use self::prometheus_text::openmetrics_to_prometheus;
pub use self::sync_tally::SyncTally;
use self::sync_tally::{PublishedHistogram, CALLERS};
use crate::{
    kernel::target_status::TargetStatus,
    record::{Caller, Record, Source},
};

pub struct Metrics {
    registry: Registry,
    populations: Family<PopLabels, Counter>,
    syncs: Family<SyncLabels, Counter>,
    unsynced: Family<RegionLabels, Counter>,
    unconfirmed: Family<RegionLabels, Counter>,
    uncertain: Family<VerdictLabels, Counter>,
    depopulations: Family<RegionLabels, Counter>,
    mismatches: Counter,
    latency: Histogram,
    sync_duration: Family<FunctionLabels, PublishedHistogram, LatencyBuckets>,
    pgds_verified: Counter,
    pgd_list_length: Gauge,
    lost: Counter,
    probe_attached: Family<ProbeLabels, Gauge>,
    build_info: Family<BuildLabels, Gauge>,
    /// The `syncs` counter of each sync function and caller (at
    /// `function * CALLERS + caller`) and the `sync_duration` histogram of
    /// each function (at `function`), by [`SYNC_FUNCTIONS`]' order: what a
    /// [`SyncTally`] publishes into.
    sync_counts: Vec<Counter>,
    sync_durations: Vec<PublishedHistogram>,
}

/// What the metrics describe: set once at start.
pub struct Context<'a> {
    pub kernel: &'a str,
    pub paging: Paging,
    pub probes: &'a [TargetStatus],
}

impl Metrics {
    pub fn new(ctx: &Context<'_>) -> Self {
        let mut m = Self {
            registry: Registry::default(),
            populations: Family::default(),
            syncs: Family::default(),
            unsynced: Family::default(),
            unconfirmed: Family::default(),
            uncertain: Family::default(),
            depopulations: Family::default(),
            mismatches: Counter::default(),
            latency: LatencyBuckets.new_metric(),
            sync_duration: Family::new_with_constructor(LatencyBuckets),
            pgds_verified: Counter::default(),
            pgd_list_length: Gauge::default(),
            lost: Counter::default(),
            probe_attached: Family::default(),
            build_info: Family::default(),
            sync_counts: Vec::with_capacity(SYNC_FUNCTIONS.len() * CALLERS),
            sync_durations: Vec::with_capacity(SYNC_FUNCTIONS.len()),
        };
        // Every known label set exists from the first scrape, at 0.
        for region in Region::ALL {
            for source in Source::iter() {
                drop(
                    m.populations
                        .get_or_create(&pop_labels(ctx.paging.level(), region, source)),
                );
            }
            let r = RegionLabels {
                region: region.name(),
            };
            drop(m.unsynced.get_or_create(&r));
            drop(m.unconfirmed.get_or_create(&r));
            drop(m.depopulations.get_or_create(&r));
        }
        for verdict in VERDICTS {
            drop(m.uncertain.get_or_create(&VerdictLabels { verdict }));
        }
        for function in SYNC_FUNCTIONS {
            for (i, caller) in Caller::iter().enumerate() {
                debug_assert_eq!(i, caller as usize);
                let c = m.syncs.get_or_create_owned(&SyncLabels {
                    function: function.symbol(),
                    caller: caller.name(),
                });
                m.sync_counts.push(c);
            }
            let h = m.sync_duration.get_or_create_owned(&FunctionLabels {
                function: function.symbol(),
            });
            m.sync_durations.push(h);
        }
        for p in ctx.probes {
            let method = p.method.map_or("none", |m| m.name());
            m.probe_attached
                .get_or_create(&ProbeLabels {
                    target: p.target.symbol(),
                    method,
                })
                .set(i64::from(p.attached));
        }
        m.build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").into(),
                kernel: ctx.kernel.into(),
                paging: ctx.paging.levels().to_string(),
            })
            .set(1);
        m.register()
    }

    fn register(mut self) -> Self {
        let r = &mut self.registry;
        r.register(
            "sync_trace_populations",
            "Kernel top-level page-table entries populated in init_mm",
            self.populations.clone(),
        );
        r.register(
            "sync_trace_syncs",
            "Calls of the functions that copy kernel top-level entries into every PGD",
            self.syncs.clone(),
        );
        r.register(
            "sync_trace_unsynced_populations",
            "Populations with no covering sync within the grace window whose walk found PGDs lacking the entry",
            self.unsynced.clone(),
        );
        r.register(
            "sync_trace_unsynced_unconfirmed_populations",
            "Populations with no covering sync traced, yet every PGD walked after the window carries the entry",
            self.unconfirmed.clone(),
        );
        r.register(
            "sync_trace_uncertain_verdicts",
            "Verdicts whose window overlapped lost kernel records",
            self.uncertain.clone(),
        );
        r.register(
            "sync_trace_depopulations",
            "Kernel top-level entries of init_mm that went from present to none",
            self.depopulations.clone(),
        );
        r.register(
            "sync_trace_pgd_mismatches",
            "PGD entries that point to a different table than init_mm's",
            self.mismatches.clone(),
        );
        r.register(
            "sync_trace_populate_to_sync_seconds",
            "Time from a population to the end of the sync that covers it",
            self.latency.clone(),
        );
        r.register(
            "sync_trace_sync_duration_seconds",
            "Duration of one sync call",
            self.sync_duration.clone(),
        );
        r.register(
            "sync_trace_pgds_verified",
            "PGDs on pgd_list compared with init_mm",
            self.pgds_verified.clone(),
        );
        r.register(
            "sync_trace_pgd_list_length",
            "PGDs on pgd_list at the last verification",
            self.pgd_list_length.clone(),
        );
        r.register(
            "sync_trace_events_lost",
            "Kernel events dropped because the ring buffer was full",
            self.lost.clone(),
        );
        r.register(
            "sync_trace_probe_attached",
            "1 when the target is attached with this method",
            self.probe_attached.clone(),
        );
        r.register(
            "sync_trace_build_info",
            "Version, kernel release and paging mode; always 1",
            self.build_info.clone(),
        );
        self
    }

    /// Publishes what `tally` counted since its last publication.
    pub fn publish(&self, tally: &mut SyncTally) {
        tally.publish_into(&self.sync_counts, &self.sync_durations);
    }

    /// Counts one record. A sync of [`SYNC_FUNCTIONS`] is counted in a
    /// [`SyncTally`] first (`Sink` does), then published with [`Self::publish`].
    pub fn observe(&self, rec: &Record, tally: &mut SyncTally) {
        match rec {
            Record::Sync(s) => {
                if tally.count(s) {
                    return;
                }
                let function = s.function.symbol();
                self.syncs
                    .get_or_create(&SyncLabels {
                        function,
                        caller: s.caller.name(),
                    })
                    .inc();
                if s.entry_seen {
                    self.sync_duration
                        .get_or_create(&FunctionLabels { function })
                        .observe(s.duration_ns as f64 / 1e9);
                }
            }
            Record::Populate(p) => {
                self.populations
                    .get_or_create(&pop_labels(p.pop.level, p.pop.region, p.pop.source))
                    .inc();
            }
            Record::Paired(p) => {
                self.latency.observe(p.latency_ns as f64 / 1e9);
                if p.uncertain {
                    self.uncertain
                        .get_or_create(&VerdictLabels { verdict: "paired" })
                        .inc();
                }
            }
            Record::Unsynced(u) => {
                let region = RegionLabels {
                    region: u.pop.region.name(),
                };
                // As the summary counts them: a confirmed one is real even
                // when records were lost.
                match (u.confirmed, u.uncertain) {
                    (true, _) => self.unsynced.get_or_create(&region).inc(),
                    (false, true) => self
                        .uncertain
                        .get_or_create(&VerdictLabels {
                            verdict: "unsynced",
                        })
                        .inc(),
                    (false, false) => self.unconfirmed.get_or_create(&region).inc(),
                };
            }
            Record::Depopulate(d) => {
                self.depopulations
                    .get_or_create(&RegionLabels {
                        region: d.region.name(),
                    })
                    .inc();
            }
            Record::Mismatch(_) => {
                self.mismatches.inc();
            }
            Record::Verify(v) => self.walk(v.pgds_total),
            Record::Lost(l) if l.what == "events" => {
                self.lost.inc_by(l.count);
            }
            Record::Detached(d) => {
                self.probe_attached
                    .get_or_create(&ProbeLabels {
                        target: d.target.symbol(),
                        method: d.method.name(),
                    })
                    .set(0);
            }
            _ => {}
        }
    }

    /// One pgd_list walk of `pgds` PGDs; called directly for walks that
    /// produced no `verify` record (a sweep that found nothing new).
    pub fn walk(&self, pgds: u32) {
        self.pgds_verified.inc_by(u64::from(pgds));
        self.pgd_list_length.set(i64::from(pgds));
    }

    /// The OpenMetrics text exposition.
    pub fn openmetrics(&self) -> String {
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = text::encode(&mut s, &self.registry);
        s
    }

    /// The Prometheus text format (0.0.4), for scrapers that do not ask for
    /// OpenMetrics.
    pub fn prometheus_text(&self) -> String {
        openmetrics_to_prometheus(&self.openmetrics())
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::record::{vmemmap_469, LostRecord, Source};

    fn metrics() -> Metrics {
        Metrics::new(&Context {
            kernel: "6.12.0-test",
            paging: Paging::Four,
            probes: &[],
        })
    }

    #[test]
    fn every_counter_exists_at_zero_before_any_event() {
        let text = metrics().prometheus_text();
        for line in [
            "# TYPE sync_trace_populations_total counter",
            "sync_trace_populations_total{level=\"p4d\",region=\"vmemmap\",source=\"helper\"} 0",
            "sync_trace_syncs_total{function=\"sync_global_pgds\",caller=\"direct_map\"} 0",
            "sync_trace_unsynced_populations_total{region=\"direct_map\"} 0",
            "sync_trace_pgd_mismatches_total 0",
            "sync_trace_events_lost_total 0",
            "sync_trace_pgds_verified_total 0",
            "sync_trace_populate_to_sync_seconds_count 0",
            "sync_trace_build_info{version=\"0.1.0\",kernel=\"6.12.0-test\",paging=\"4\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing `{line}` in\n{text}"
            );
        }
        assert!(!text.contains("# EOF"));
        assert!(metrics().openmetrics().ends_with("# EOF\n"));
    }

    #[test]
    fn records_move_the_counters() {
        let m = metrics();
        let t = &mut SyncTally::default();
        m.observe(&Record::Populate(vmemmap_469(1, 0, Source::Effect)), t);
        m.observe(
            &Record::Lost(LostRecord {
                what: "events".into(),
                count: 5,
                total: 5,
                ts_ns: 10,
                since_ns: 5,
            }),
            t,
        );
        m.observe(
            &Record::Lost(LostRecord {
                what: "logs".into(),
                count: 2,
                total: 2,
                ts_ns: 10,
                since_ns: 5,
            }),
            t,
        );
        let text = m.prometheus_text();
        assert!(text.contains("sync_trace_populations_total{level=\"p4d\",region=\"vmemmap\",source=\"effect\"} 1\n"), "{text}");
        assert!(text.contains("sync_trace_events_lost_total 5\n"), "{text}");
    }
}
