//! The sweep in the kernel (sync-trace-ebpf/src/bpf/sweep_timer.h): a
//! bpf_timer reads init_mm's kernel half every `--sweep` period and writes a
//! record only when the set of present slots changed, so an idle daemon
//! sleeps instead of waking every period. [`KernelSweep::arm`] starts it;
//! the daemon then waits on its ring buffer, and reads its view (the last
//! reading that matched) before each of its own scans, so that the model
//! knows how recently each slot was seen in its state.
//!
//! When the timer cannot run (no vmlinux BTF, a kernel without bpf_timer or
//! without BPF_PROG_TEST_RUN of tracing programs), `run` sweeps from
//! userspace as before.

use std::time::Duration;

use anyhow::{anyhow, Context as _};
use aya::{
    maps::{Array, MapData, RingBuf},
    programs::{fexit::FExitLink, FExit, TestRun},
    Btf, Ebpf, Pod,
};
use sync_trace_common::raw::{self, RawSweep, RawSweepChange, RawSweepView};

/// `RawSweep` as a map value.
#[derive(Clone, Copy)]
#[repr(transparent)]
struct SweepValue(RawSweep);
// SAFETY: RawSweep is repr(C) plain data; every bit pattern is valid.
unsafe impl Pod for SweepValue {}

/// Periods the health check allows the timer to be late by before it is
/// taken as stopped (a loaded host delays softirqs, never by this much).
const LATE_PERIODS: u64 = 20;

pub struct KernelSweep {
    state: Array<MapData, SweepValue>,
    /// Taken by `run` to wait on (registered with the runtime).
    ring: Option<RingBuf<MapData>>,
    period: Duration,
    /// The view at the last health check.
    checked: RawSweepView,
    /// The arming program's link, until it is detached.
    arming: Option<FExitLink>,
}

impl KernelSweep {
    /// Loads (verifies) the timer's arming program `prog` of the scan
    /// object; nothing runs yet. Apart from [`KernelSweep::arm`] so that the
    /// verification can run beside other start-up work.
    pub fn load(prog: &mut FExit, btf: Option<&Btf>) -> anyhow::Result<()> {
        let btf = btf.ok_or_else(|| {
            anyhow!("the kernel sweep needs the kernel's BTF (/sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF)")
        })?;
        prog.load(raw::SWEEP_ARM_FUNCTION, btf)
            .map_err(|e| anyhow!("cannot load the sweep timer's program (bpf_timer in tracing programs needs Linux 5.15 or later): {e}"))
    }

    /// Arms the timer of the scan object `ebpf` (attach the fexit of
    /// `bpf_fentry_test1`, run it once; `detach_arming_beside` detaches
    /// it), its program loaded by
    /// [`KernelSweep::load`], and checks that it runs.
    pub fn arm(ebpf: &mut Ebpf, period: Duration) -> anyhow::Result<Self> {
        let state: Array<MapData, SweepValue> = Array::try_from(
            ebpf.take_map(raw::MAP_SWEEP)
                .context("ST_SWEEP map missing from the scan object")?,
        )?;
        let ring = RingBuf::try_from(
            ebpf.take_map(raw::MAP_SWEEP_RING)
                .context("ST_SWEEP_RING map missing from the scan object")?,
        )?;
        let prog: &mut FExit = ebpf
            .program_mut(raw::PROG_SWEEP_ARM)
            .context("sweep arming program missing from the scan object")?
            .try_into()?;
        let link = prog
            .attach()
            .map_err(|e| anyhow!("cannot attach fexit to {}: {e}", raw::SWEEP_ARM_FUNCTION))?;
        crate::startup_phases::mark("sweep timer: attach");
        let run = prog.test_run(());
        crate::startup_phases::mark("sweep timer: test run");
        // Detached soon, not at once (`detach_arming_beside`): other tools'
        // test runs must not reach it (the timer keeps the program
        // loaded), but a detach waits for the kernel to tear the
        // trampoline down (a quarter of a second under emulation), which
        // nothing before `ready` needs.
        let arming = prog.take_link(link)?;
        run.map_err(|e| anyhow!("BPF_PROG_TEST_RUN of the sweep timer's program failed: {e}"))?;
        let mut s = Self {
            state,
            ring: Some(ring),
            period,
            checked: RawSweepView::default(),
            arming: Some(arming),
        };
        let v = s.view()?;
        if v.armed == 0 {
            return Err(anyhow!(
                "the sweep timer did not start (error {}, {} failed readings of init_top_pgt)",
                v.arm_error,
                v.faults
            ));
        }
        s.checked = v;
        Ok(s)
    }

    /// Detaches the arming program on a thread of its own (dropped with
    /// `self` otherwise). Called once the process has its final privileges:
    /// the thread needs none to close a link, and must not keep any.
    pub fn detach_arming_beside(&mut self) {
        if let Some(link) = self.arming.take() {
            if let Err(e) = std::thread::Builder::new()
                .name("detach".into())
                .spawn(move || drop(link))
            {
                // The link went with the closure: detached here, at once.
                log::debug!("cannot start a thread to detach the sweep's arming program: {e}; detached at once");
            }
        }
    }

    /// The ring buffer of changes, once.
    pub fn take_ring(&mut self) -> Option<RingBuf<MapData>> {
        self.ring.take()
    }

    /// The timer's state now.
    pub fn view(&self) -> anyhow::Result<RawSweepView> {
        Ok(self
            .state
            .get(&0, 0)
            .context("cannot read the sweep timer's state")?
            .0
            .view)
    }

    /// Whether the timer went on since the last check, at least once per
    /// `LATE_PERIODS` periods of the time elapsed (`now_ns`, monotonic).
    pub fn alive(&mut self, now_ns: u64) -> anyhow::Result<bool> {
        let v = self.view()?;
        let period = self.period.as_nanos().max(1) as u64;
        let due = now_ns.saturating_sub(self.checked.last_ns) / period;
        let ok = v.sweeps > self.checked.sweeps || due < LATE_PERIODS;
        self.checked = v;
        Ok(ok)
    }
}

/// The change records waiting in `ring`.
pub fn drain_changes(ring: &mut RingBuf<MapData>, out: &mut Vec<RawSweepChange>) {
    while let Some(item) = ring.next() {
        match RawSweepChange::from_bytes(&item) {
            Some(c) => out.push(c),
            None => log::error!(
                "sweep ring: a record of {} bytes is not a change",
                item.len()
            ),
        }
    }
}
