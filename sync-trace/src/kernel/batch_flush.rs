//! Flushes the kernel's open batches of populate calls (events.h,
//! "Batches"): runs the `st_flush` program with BPF_PROG_TEST_RUN on every
//! CPU whose `PENDING` count says it has one open, so that every batched call
//! that ended before a scan is in the ring buffer when the ring is drained
//! for it. The daemon owns the loaded object through it: dropping it detaches
//! every probe.

use aya::{
    maps::{MapData, PerCpuArray},
    programs::{RawTracePoint, RawTracePointRunOptions, TestRun},
    Ebpf,
};
use sync_trace_common::batch;

pub struct BatchFlush {
    ebpf: Ebpf,
    /// Per-CPU count of open batches; `None` when the flush program or the
    /// map is unusable (the batches are then written at their next call).
    pending: Option<PerCpuArray<MapData, u64>>,
}

impl BatchFlush {
    /// Loads the flush program of `ebpf` (which keeps the attached probes).
    pub fn new(mut ebpf: Ebpf) -> Self {
        let pending = match Self::open(&mut ebpf) {
            Ok(p) => Some(p),
            Err(e) => {
                log::warn!("batches of populate calls cannot be flushed before scans ({e}); each is written at its next call");
                None
            }
        };
        Self { ebpf, pending }
    }

    fn open(ebpf: &mut Ebpf) -> anyhow::Result<PerCpuArray<MapData, u64>> {
        let prog: &mut RawTracePoint = ebpf
            .program_mut(batch::PROG_FLUSH)
            .ok_or_else(|| anyhow::anyhow!("no program {} in the object", batch::PROG_FLUSH))?
            .try_into()?;
        prog.load()?;
        let map = ebpf
            .take_map(batch::MAP_PENDING)
            .ok_or_else(|| anyhow::anyhow!("no map {} in the object", batch::MAP_PENDING))?;
        Ok(PerCpuArray::try_from(map)?)
    }

    /// Writes every open batch to the ring buffer (a batch whose call is
    /// being counted at that very moment is left for later). Returns the
    /// CPUs flushed.
    pub fn flush(&mut self) -> anyhow::Result<u32> {
        let Some(pending) = &self.pending else {
            return Ok(0);
        };
        let counts = pending.get(&0, 0)?;
        let cpus: Vec<u32> = counts
            .iter()
            .enumerate()
            .filter(|(_, &n)| n != 0)
            .filter_map(|(cpu, _)| u32::try_from(cpu).ok())
            .collect();
        let prog: &mut RawTracePoint = self
            .ebpf
            .program_mut(batch::PROG_FLUSH)
            .ok_or_else(|| anyhow::anyhow!("no program {}", batch::PROG_FLUSH))?
            .try_into()?;
        for &cpu in &cpus {
            let mut opts = RawTracePointRunOptions::new();
            opts.cpu = Some(cpu);
            // A CPU that went offline keeps its batches until it is back.
            if let Err(e) = prog.test_run(opts) {
                log::debug!("flushing the batches of cpu {cpu}: {e}");
            }
        }
        Ok(cpus.len() as u32)
    }

    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }
}
