//! The cycler: what to cycle (the plan, checked before anything is
//! written), and the cycles themselves, run on a blocking thread that
//! reports every step as a `CycleEvent`.
//!
//! One cycle: offline every selected block (EBUSY is recorded and the block
//! stays online), online the ones that went offline; then switch every
//! device-dax device to the other mode and back. Between steps the stop flag
//! (Ctrl-C, SIGTERM, the end of the tracing) is checked; whatever happens,
//! the restore guard puts every block and device back as found.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

use super::{
    blocks::{self, Block, BlockSpec, Skipped},
    dax::{self, DaxDevice, Mode},
    restore::RestoreGuard,
    sysfs::{HungWrite, SysfsRoot, WriteError},
};
use crate::kernel::clock::monotonic_ns;

/// What will be cycled, and how long.
#[derive(Clone, Debug)]
pub struct Plan {
    pub blocks: Vec<Block>,
    pub dax: Vec<DaxDevice>,
    pub skipped: Vec<Skipped>,
    /// Stop after this many cycles (`None`: until `duration`).
    pub cycles: Option<u64>,
    pub duration: Option<Duration>,
    /// Testing only (`--test-fail-at-step`): this write (from 1) fails.
    pub fail_at_step: Option<u64>,
}

impl Plan {
    /// Selects blocks and devices. Memory blocks of a device in system-ram
    /// are cycled with their device, never on their own.
    pub fn build(
        root: &SysfsRoot,
        spec: &BlockSpec,
        dax_wanted: Option<&[String]>,
        cycles: Option<u64>,
        duration: Option<Duration>,
    ) -> Result<Plan, String> {
        let (dax, mut skipped) = if root.exists(dax::DEVICES) {
            dax::select(root, dax_wanted)?
        } else if dax_wanted.is_some_and(|w| !w.is_empty()) {
            return Err(format!(
                "no device-dax bus: {} is absent (CONFIG_DEV_DAX, or no dax device)",
                root.path(dax::DEVICES).display()
            ));
        } else {
            (Vec::new(), Vec::new())
        };
        let dax_blocks: Vec<u64> = dax
            .iter()
            .flat_map(|d| dax::block_ids(root, &d.name))
            .collect();
        if !root.exists(blocks::MEMORY) && !matches!(spec, BlockSpec::None) {
            return Err(format!(
                "no memory hotplug: {} is absent (CONFIG_MEMORY_HOTPLUG)",
                root.path(blocks::MEMORY).display()
            ));
        }
        let (blocks, more) = blocks::select(root, spec, &dax_blocks)?;
        skipped.extend(more);
        if blocks.is_empty() && dax.is_empty() {
            let why = match spec {
                BlockSpec::Movable => "no online block is in ZONE_MOVABLE and no device-dax device is bound; give --blocks (a list, or all-offlinable) or --dax",
                BlockSpec::None => "--blocks none and no device-dax device is bound",
                _ => "no block or device qualifies",
            };
            let list = skipped
                .iter()
                .map(|s| format!("{}: {}", s.target, s.reason))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(if list.is_empty() {
                format!("nothing to cycle: {why}")
            } else {
                format!("nothing to cycle: {why}: {list}")
            });
        }
        let cycles = match (cycles, duration) {
            (None, None) => Some(DEFAULT_CYCLES),
            (c, _) => c,
        };
        Ok(Plan {
            blocks,
            dax,
            skipped,
            cycles,
            duration,
            fail_at_step: None,
        })
    }

    /// Refuses to start when any file the cycles or the restore write is
    /// not writable: then the state could not be put back.
    pub fn check_writable(&self, root: &SysfsRoot) -> Result<(), String> {
        let mut files: Vec<String> = self
            .blocks
            .iter()
            .flat_map(|b| blocks::files(root, b.id))
            .collect();
        if !self.dax.is_empty() {
            files.extend(dax::files(root));
            for d in &self.dax {
                for id in dax::present_blocks(root, &d.name) {
                    files.extend(blocks::files(root, id));
                }
            }
        }
        for f in files {
            root.writable(&f).map_err(|e| {
                format!("cannot restore what it would change, so it does not start: {e}")
            })?;
        }
        Ok(())
    }
}

/// Cycles when neither `--cycles` nor `--duration` is given.
pub const DEFAULT_CYCLES: u64 = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Offline,
    Online,
    ToSystemRam,
    ToDevdax,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Offline => "offline",
            Op::Online => "online",
            Op::ToSystemRam => "to_system_ram",
            Op::ToDevdax => "to_devdax",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    /// EBUSY: the kernel refused; a normal result (the block stays online).
    Busy,
    /// EINTR: stopped by Ctrl-C or SIGTERM in the middle of the write.
    Interrupted,
    /// EINVAL on an offline: the kernel never offlines this block (it spans
    /// zones or has holes); a normal result, the block stays online.
    Refused,
    Failed(String),
    /// The write did not return within the write timeout: memory hotplug looks
    /// wedged; cycling stops.
    Hung(String),
}

/// One step of a cycle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    pub ts_ns: u64,
    pub end_ns: u64,
    /// `memory32` or `dax0.0`.
    pub target: String,
    pub op: Op,
    pub outcome: Outcome,
    /// Memory blocks a dax switch added (`to_system_ram`) or removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocks: Vec<u64>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum CycleEvent {
    /// Cycle `index` (from 1) begins; `of` is the planned count.
    Start {
        index: u64,
        of: Option<u64>,
        ts_ns: u64,
    },
    Action(Action),
    End {
        index: u64,
        ts_ns: u64,
    },
    /// A write did not return within the write timeout (the first one only):
    /// cycling stops there. Emitted at once, or after the restore when it was
    /// one of the restore's writes.
    Hung(HungWrite),
    /// Everything was put back, except what is listed.
    Restored {
        failures: Vec<String>,
    },
    /// The cycler is done: `Err` names the step that failed.
    Done(Result<(), String>),
}

fn outcome(r: &Result<(), WriteError>, op: Op) -> Outcome {
    match r {
        Ok(()) => Outcome::Ok,
        Err(WriteError::Busy) => Outcome::Busy,
        Err(WriteError::Interrupted) => Outcome::Interrupted,
        Err(WriteError::Refused(_)) if op == Op::Offline => Outcome::Refused,
        Err(WriteError::Refused(e) | WriteError::Failed(e)) => Outcome::Failed(e.clone()),
        Err(WriteError::Hung(h)) => Outcome::Hung(h.to_string()),
    }
}

struct Cycler<'a> {
    root: &'a SysfsRoot,
    emit: &'a mut dyn FnMut(CycleEvent),
    /// Writes made so far, and the one that is made to fail (testing only).
    steps: u64,
    fail_at_step: Option<u64>,
}

impl Cycler<'_> {
    fn step<T>(
        &mut self,
        target: &str,
        op: Op,
        f: impl FnOnce() -> Result<T, WriteError>,
        blocks_of: impl FnOnce(&T) -> Vec<u64>,
    ) -> Result<Outcome, String> {
        let ts_ns = monotonic_ns();
        self.steps += 1;
        let r = if self.fail_at_step == Some(self.steps) {
            Err(WriteError::Failed(format!(
                "injected failure of write {} (--test-fail-at-step)",
                self.steps
            )))
        } else {
            f()
        };
        let blocks = r.as_ref().map(blocks_of).unwrap_or_default();
        let r = r.map(|_| ());
        if let Err(WriteError::Hung(h)) = &r {
            (self.emit)(CycleEvent::Hung(h.clone()));
        }
        let o = outcome(&r, op);
        (self.emit)(CycleEvent::Action(Action {
            ts_ns,
            end_ns: monotonic_ns(),
            target: target.to_string(),
            op,
            outcome: o.clone(),
            blocks,
        }));
        match &o {
            Outcome::Failed(e) => Err(format!("{target}: {} failed: {e}", op.name())),
            Outcome::Hung(e) => Err(format!("{target}: {}: {e}", op.name())),
            _ => Ok(o),
        }
    }

    fn cycle(&mut self, plan: &Plan, stop: &AtomicBool) -> Result<(), String> {
        let root = self.root;
        let mut offlined = Vec::new();
        for b in &plan.blocks {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let o = self.step(
                &b.name(),
                Op::Offline,
                || blocks::offline(root, b.id),
                |_| vec![],
            )?;
            if o == Outcome::Ok {
                offlined.push(b);
            }
        }
        // Onlined even after a stop: the restore would do it anyway.
        for b in offlined {
            self.step(
                &b.name(),
                Op::Online,
                || blocks::online(root, b.id, b.zone.as_deref()),
                |_| vec![],
            )?;
        }
        for d in &plan.dax {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let (there, back) = match d.mode {
                Mode::Devdax => (Op::ToSystemRam, Op::ToDevdax),
                _ => (Op::ToDevdax, Op::ToSystemRam),
            };
            for op in [there, back] {
                let o = self.step(
                    &d.name,
                    op,
                    || match op {
                        Op::ToSystemRam => dax::to_system_ram(root, &d.name),
                        _ => dax::to_devdax(root, &d.name),
                    },
                    |b| b.clone(),
                )?;
                if o != Outcome::Ok {
                    // Busy: still in the mode the step started from.
                    // Interrupted: stopping; the restore guard takes over.
                    break;
                }
            }
        }
        Ok(())
    }
}

/// Runs the plan until its cycles or duration are done or `stop` is set,
/// then restores. Emits every step, then `Restored`, then `Done`.
pub fn run_cycles(
    root: &SysfsRoot,
    plan: &Plan,
    stop: &AtomicBool,
    emit: &mut dyn FnMut(CycleEvent),
) -> Result<(), String> {
    let mut guard = RestoreGuard::new(root, &plan.blocks, &plan.dax)
        .journaled(root.journal())
        .map_err(|e| format!("{e:#}"))?;
    let hung_at_start = root.hung().len();
    let res = {
        let mut c = Cycler {
            root,
            emit,
            steps: 0,
            fail_at_step: plan.fail_at_step,
        };
        let started = Instant::now();
        let mut index = 0;
        loop {
            if stop.load(Ordering::Relaxed)
                || plan.cycles.is_some_and(|n| index >= n)
                || plan.duration.is_some_and(|d| started.elapsed() >= d)
            {
                break Ok(());
            }
            index += 1;
            (c.emit)(CycleEvent::Start {
                index,
                of: plan.cycles,
                ts_ns: monotonic_ns(),
            });
            let r = c.cycle(plan, stop);
            (c.emit)(CycleEvent::End {
                index,
                ts_ns: monotonic_ns(),
            });
            if r.is_err() {
                break r;
            }
        }
    };
    // A write of the cycles that hung was reported as it happened; one of the restore's is
    // reported now.
    let hung_in_cycles = root.hung().len() > hung_at_start;
    let failures = guard.restore();
    if !hung_in_cycles {
        if let Some(h) = root.hung().into_iter().nth(hung_at_start) {
            emit(CycleEvent::Hung(h));
        }
    }
    emit(CycleEvent::Restored {
        failures: failures.clone(),
    });
    let res = match (res, failures.is_empty()) {
        (Ok(()), false) => Err(format!("could not restore: {}", failures.join("; "))),
        (r, _) => r,
    };
    emit(CycleEvent::Done(res.clone()));
    res
}
