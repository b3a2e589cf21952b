//! Walks of pgd_list compared with init_mm: `verify` and `mismatch` records.

use serde::{Deserialize, Serialize};
use strum::{EnumIter, EnumString, IntoStaticStr, VariantNames};
use sync_trace_common::{Level, Region};

use super::Hex;

/// One slot's result in a verification.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlotCount {
    pub slot: usize,
    pub addr: Hex,
    pub region: Region,
    pub pgds: u32,
}

/// Why a verification walk ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, IntoStaticStr, EnumString, VariantNames, EnumIter)]
#[strum(serialize_all = "snake_case")]
pub enum Trigger {
    Baseline,
    Sync,
    Sweep,
    Deadline,
    Audit,
}

named!(Trigger);

/// Every PGD on pgd_list compared with init_mm's kernel half.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VerifyRecord {
    /// When the walk ended.
    pub ts_ns: u64,
    /// When it started (older recordings: 0, read as `ts_ns`).
    #[serde(default)]
    pub start_ns: u64,
    pub trigger: Trigger,
    pub level: Level,
    /// PGDs compared.
    pub pgds_total: u32,
    /// Present kernel top-level slots of init_mm compared in each.
    pub slots_checked: u32,
    /// The slots compared, when the walk compared only some (after a sync,
    /// the synced slots; at a deadline, those whose window closed). Absent:
    /// every present kernel slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slots: Option<Vec<usize>>,
    /// The walk reached the end of pgd_list without a fault.
    pub complete: bool,
    /// The walk stopped at `--max-pgds`: its counts cover the PGDs it reached.
    #[serde(default)]
    pub truncated: bool,
    /// No PGD lacks an entry and none points elsewhere.
    pub ok: bool,
    pub missing: Vec<SlotCount>,
    pub mismatched: Vec<SlotCount>,
}

impl VerifyRecord {
    pub fn started_ns(&self) -> u64 {
        if self.start_ns == 0 {
            self.ts_ns
        } else {
            self.start_ns
        }
    }

    /// Whether the walk compared `slot`.
    pub fn compared(&self, slot: usize) -> bool {
        self.slots.as_ref().is_none_or(|s| s.contains(&slot))
    }

    pub fn missing_in(&self, slot: usize) -> u32 {
        self.missing
            .iter()
            .find(|m| m.slot == slot)
            .map_or(0, |m| m.pgds)
    }
}

/// PGDs whose present entry points to a different table than init_mm's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MismatchRecord {
    pub ts_ns: u64,
    pub level: Level,
    pub slot: usize,
    pub addr: Hex,
    pub region: Region,
    pub pgds: u32,
    pub pgds_total: u32,
}
