//! The engine of `run`: the tracer, the scanner and the model advanced
//! together, fed from the ring buffer and the scans.

use std::time::Duration;

use aya::maps::{MapData, RingBuf};

use super::{pipeline::Pipeline, sync_walks::SyncWalks};
use crate::{
    kernel::{
        batch_flush::BatchFlush,
        clock::monotonic_ns,
        lost::LostCounters,
        probe_watch::{self, ProbeWatch},
        scan::Scanner,
        slot_set::SlotSet,
        sweep::{drain_changes, KernelSweep},
    },
    output::sink::Sink,
    record::{Record, Trigger},
};

/// Pause before walking again after a walk that ended early (the list
/// changed under it), so a busy fork/exit load cannot make the loop spin.
const WALK_RETRY: Duration = Duration::from_millis(10);

/// The tracer, the scanner and the model, advanced together.
pub(super) struct Engine<'a> {
    /// Ring-buffer records through the tracer and the model.
    pub(super) pipe: Pipeline<'a>,
    pub(super) scanner: Scanner,
    pub(super) lost: LostCounters,
    /// The kernel's open batches of populate calls, flushed before scans.
    pub(super) batches: BatchFlush,
    /// PGDs of walks that wrote no `verify` record, not yet counted.
    pub(super) quiet_walks: Vec<u32>,
    /// The last walk ended early: wait before the next deadline walk.
    pub(super) walk_failed: bool,
    /// The attached kprobes, checked for going away.
    pub(super) watch: Option<ProbeWatch>,
    /// The sweep in the kernel, when it runs (else `run` sweeps itself).
    pub(super) sweep: Option<KernelSweep>,
    /// The last read of the loss counters found new losses: read them again
    /// shortly ([`LOST_RECHECK`]). Losses at the end of a burst leave no
    /// record to wake the daemon, and the counters are otherwise read only
    /// at the next drain or scan (up to `--walk-every` later).
    pub(super) recheck_lost: bool,
    /// Slots that syncs covered, walked once their burst is over.
    pub(super) sync_walks: SyncWalks,
}

/// How soon the loss counters are read again after a read that found new
/// losses (and again while they keep growing); no wake-up without losses.
pub(super) const LOST_RECHECK: Duration = Duration::from_millis(100);

impl Engine<'_> {
    /// Reads the loss counters and feeds the `lost` records to the model.
    pub(super) fn poll_lost(&mut self) -> anyhow::Result<()> {
        let found = poll_lost(&mut self.lost, &mut self.pipe)?;
        self.recheck_lost |= found;
        Ok(())
    }

    /// The read [`LOST_RECHECK`] after losses: again if they still grew.
    pub(super) fn recheck_lost(&mut self) -> anyhow::Result<()> {
        self.recheck_lost = poll_lost(&mut self.lost, &mut self.pipe)?;
        Ok(())
    }

    /// Checks that the attached kprobes are still live: one that went away
    /// is one line on stderr and a `detached` record (which sets its
    /// `sync_trace_probe_attached` to 0). A list that cannot be read any
    /// more is one line, and the watch ends.
    pub(super) fn watch_probes(&mut self) {
        let Some(w) = self.watch.as_mut() else {
            return;
        };
        match w.check(monotonic_ns()) {
            Ok(gone) => {
                for d in gone {
                    log::warn!("{}", probe_watch::describe(&d));
                    self.pipe.observe(crate::record::Record::Detached(d));
                }
            }
            Err(e) => {
                log::warn!("{e}: kprobes going away are no longer noticed");
                self.watch = None;
            }
        }
    }

    /// Reads the loss counters, then every pending ring-buffer record, and
    /// the counters again before each sync (the kernel keeps appending while
    /// the ring is read): losses are known before the records that follow
    /// them are judged. Diagnostics are logged as they come. Returns the
    /// kernel slots the completed syncs covered.
    pub(super) fn drain(&mut self, ring: &mut RingBuf<MapData>) -> anyhow::Result<SlotSet> {
        self.poll_lost()?;
        let mut synced = SlotSet::empty();
        let lost = &mut self.lost;
        let mut found = false;
        while let Some(item) = ring.next() {
            // A sync can decide a verdict: losses that happened before it
            // was read must be known.
            let covered = self.pipe.on_ring_record(&item, |pipe| {
                found |= poll_lost(lost, pipe)?;
                Ok(())
            })?;
            for slot in covered.into_iter().flatten() {
                synced.insert(slot);
            }
        }
        self.recheck_lost |= found;
        Ok(synced)
    }

    /// One scan, with the ring drained before it (every sync that ended
    /// before the scan is known) and after it (every act that started
    /// before it). What it walks follows what changed: `want`, plus the
    /// slots of populations whose grace window has closed (their judge);
    /// nothing at all is init_mm's table only, whose cost does not grow
    /// with the number of processes.
    pub(super) fn scan(
        &mut self,
        ring: &mut RingBuf<MapData>,
        trigger: Trigger,
        want: Walk,
    ) -> anyhow::Result<()> {
        self.batches.flush()?;
        let synced = self.drain(ring)?;
        self.sweep_caught_up()?;
        let due: SlotSet = self
            .pipe
            .model
            .due_slots(monotonic_ns())
            .into_iter()
            .collect();
        let slots = match want {
            Walk::None => {
                // Syncs read on the way are verified with their burst.
                self.sync_walks.add(synced, monotonic_ns());
                due
            }
            Walk::Synced(s) => s.union(&synced).union(&due),
            Walk::All => SlotSet::all(),
        };
        let walk = !slots.is_empty();
        let snap = if !walk {
            self.scanner.table()?
        } else if slots == SlotSet::all() {
            self.scanner.verified_walk()?
        } else {
            self.scanner.verified_walk_of(&slots)?
        };
        self.walk_failed = walk && snap.incomplete() && !snap.truncated();
        self.drain(ring)?;
        let before = self.pipe.out.len();
        self.pipe.model.on_scan(&snap, trigger, &mut self.pipe.out);
        let reported = self.pipe.out[before..]
            .iter()
            .any(|r| matches!(r, Record::Verify(_)));
        if walk && !reported {
            self.quiet_walks.push(snap.raw.pgds);
        }
        Ok(())
    }

    /// Tells the model what the kernel's sweep saw last (before a scan:
    /// its reading is older than the scan's).
    fn sweep_caught_up(&mut self) -> anyhow::Result<()> {
        if let Some(k) = &self.sweep {
            let v = k.view()?;
            self.pipe.model.sweep_quiet(&v.bits, v.last_ns);
        }
        Ok(())
    }

    /// Changes the kernel's sweep wrote: each says until when the table was
    /// as before it (then a scan reads the table as it is now).
    pub(super) fn sweep_changed(
        &mut self,
        ring: &mut RingBuf<MapData>,
        events: &mut RingBuf<MapData>,
    ) -> anyhow::Result<()> {
        let mut changes = Vec::new();
        drain_changes(ring, &mut changes);
        for c in &changes {
            self.pipe.model.sweep_quiet(&c.before, c.prev_ns);
        }
        self.scan(events, Trigger::Sweep, Walk::None)
    }

    /// Whether the kernel's sweep still runs; when it stopped, `run` sweeps
    /// itself from now on (an error says so).
    pub(super) fn check_sweep(&mut self) -> anyhow::Result<()> {
        if let Some(k) = &mut self.sweep {
            if !k.alive(monotonic_ns())? {
                log::error!("the sweep timer in the kernel stopped: sweeping from userspace");
                self.sweep = None;
            }
        }
        Ok(())
    }

    /// Syncs that a drain read: their walk waits for the end of their
    /// burst (`sync_walks.rs`).
    pub(super) fn synced(&mut self, slots: SlotSet) {
        self.sync_walks.add(slots, monotonic_ns());
    }

    /// How long until the walk of the last burst of syncs is due; an hour
    /// when none waits (the loop's arm is off then).
    pub(super) fn sync_walk_wait(&self) -> Duration {
        self.sync_walks
            .wait(monotonic_ns())
            .unwrap_or(Duration::from_secs(3600))
    }

    /// The walk of the slots the last burst of syncs covered, if any.
    pub(super) fn walk_synced(&mut self, ring: &mut RingBuf<MapData>) -> anyhow::Result<()> {
        match self.sync_walks.take() {
            Some(slots) => self.scan(ring, Trigger::Sync, Walk::Synced(slots)),
            None => Ok(()),
        }
    }

    /// How long until the next grace deadline a walk can judge.
    pub(super) fn grace_wait(&self) -> Duration {
        self.pipe
            .model
            .next_deadline()
            .map(|d| Duration::from_nanos(d.saturating_sub(monotonic_ns())))
            .map(|w| {
                if self.walk_failed {
                    w.max(WALK_RETRY)
                } else {
                    w
                }
            })
            .unwrap_or(Duration::from_secs(3600))
    }

    /// Writes what was made since the last call; returns whether it held a
    /// confirmed `unsynced`.
    pub(super) fn flush(&mut self, sink: &mut Sink) -> anyhow::Result<bool> {
        for pgds in self.quiet_walks.drain(..) {
            sink.count_walk(pgds);
        }
        sink.emit_all(&mut self.pipe.out)
    }
}

/// Reads the loss counters into `lost` records, which go to the model;
/// true when there were new losses.
fn poll_lost(lost: &mut LostCounters, pipe: &mut Pipeline<'_>) -> anyhow::Result<bool> {
    let mut new = Vec::new();
    lost.poll(&mut new)?;
    let found = !new.is_empty();
    for r in new {
        pipe.observe(r);
    }
    Ok(found)
}

/// What a scan walks besides the slots whose grace window closed.
pub(super) enum Walk {
    None,
    /// The slots that syncs just covered.
    Synced(SlotSet),
    /// Every kernel slot.
    All,
}
