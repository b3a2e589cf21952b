//! The kernel programs' loss counters (the `LOST` per-CPU array), read into
//! `lost` records.

use aya::maps::{MapData, PerCpuArray};
use sync_trace_common::raw;

use super::clock::monotonic_ns;
use crate::record::{LostRecord, Record};

/// Names of the LOST slots, in index order.
const LOST_NAMES: [&str; raw::LOST_MAX as usize] = ["events", "inflight", "logs"];

pub struct LostCounters {
    map: PerCpuArray<MapData, u64>,
    totals: [u64; raw::LOST_MAX as usize],
    /// When the counters were last read.
    read_ns: u64,
}

impl LostCounters {
    /// Counters read from `map`, taken as zero at `since_ns`.
    pub fn new(map: PerCpuArray<MapData, u64>, since_ns: u64) -> Self {
        Self {
            map,
            totals: [0; raw::LOST_MAX as usize],
            read_ns: since_ns,
        }
    }

    /// A `lost` record for every counter that grew since the last read:
    /// the losses happened between the two reads.
    pub fn poll(&mut self, out: &mut Vec<Record>) -> anyhow::Result<()> {
        let now = monotonic_ns();
        for i in 0..raw::LOST_MAX {
            let total: u64 = self.map.get(&i, 0)?.iter().sum();
            let prev = &mut self.totals[i as usize];
            if total > *prev {
                out.push(Record::Lost(LostRecord {
                    what: LOST_NAMES[i as usize].to_string(),
                    count: total - *prev,
                    total,
                    ts_ns: now,
                    since_ns: self.read_ns,
                }));
                *prev = total;
            }
        }
        self.read_ns = now;
        Ok(())
    }
}
