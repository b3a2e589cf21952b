//! The report's types: per cycle, per slot, totals. Serialized as they are
//! for `--json`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{
    cmd::stress::{
        blocks::{Block, Skipped},
        cycle::Action,
        dax::DaxDevice,
        sysfs::HungWrite,
    },
    record::Hex,
};

/// Exit status when a population went unsynced or a PGD mismatched.
pub const EXIT_FOUND: i32 = 3;
pub const EXIT_ERROR: i32 = 1;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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
    pub(super) latencies: Vec<u64>,
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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

#[derive(Clone, Debug, Serialize, Deserialize)]
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
    /// The first sysfs write that did not return within the write timeout: memory
    /// hotplug wedged, cycling stopped there.
    #[serde(default)]
    pub hung_write: Option<HungWrite>,
    pub interrupted: bool,
    /// Written while the run went on, at a finding (`--report`'s early copy); the
    /// final report replaces it when the run ends.
    #[serde(default)]
    pub in_progress: bool,
    pub error: Option<String>,
    pub verdict: String,
    pub exit_code: i32,
    /// `(ts_ns, duration_ns)` of every sync, for the plot (kept in the JSON so
    /// that `--from-json` draws the same page).
    #[serde(default)]
    pub sync_points: Vec<(u64, u64)>,
    /// Every populate→sync latency, for the plot.
    #[serde(default)]
    pub latencies: Vec<u64>,
    /// CLOCK_MONOTONIC when tracing was armed.
    #[serde(default)]
    pub start_ns: u64,
}
