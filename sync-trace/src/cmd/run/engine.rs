//! The engine of `run`: the tracer, the scanner and the model advanced
//! together, fed from the ring buffer and the scans.

use std::time::Duration;

use aya::maps::{MapData, RingBuf};
use sync_trace_common::{Kind, RawRecord};

use crate::{
    kernel::{
        clock::monotonic_ns, diag, kallsyms::Kallsyms, lost::LostCounters, scan::Scanner,
        slot_set::SlotSet, trace::Tracer,
    },
    model::Model,
    output::sink::Sink,
    record::{Record, Trigger},
};

/// Pause before walking again after a walk that ended early (the list
/// changed under it), so a busy fork/exit load cannot make the loop spin.
const WALK_RETRY: Duration = Duration::from_millis(10);

/// The tracer, the scanner and the model, advanced together.
pub(super) struct Engine<'a> {
    pub(super) syms: &'a Kallsyms,
    pub(super) tracer: Tracer,
    pub(super) scanner: Scanner,
    pub(super) model: Model,
    pub(super) lost: LostCounters,
    /// Records made and not yet written.
    pub(super) out: Vec<Record>,
    /// PGDs of walks that wrote no `verify` record, not yet counted.
    pub(super) quiet_walks: Vec<u32>,
    /// The last walk ended early: wait before the next deadline walk.
    pub(super) walk_failed: bool,
}

impl Engine<'_> {
    /// Reads the loss counters and feeds the `lost` records to the model.
    pub(super) fn poll_lost(&mut self) -> anyhow::Result<()> {
        let from = self.out.len();
        self.lost.poll(&mut self.out)?;
        let new: Vec<Record> = self.out[from..].to_vec();
        for r in &new {
            self.model.observe(r, &mut self.out);
        }
        Ok(())
    }

    /// Reads the loss counters, then every pending ring-buffer record, and
    /// the counters again before each sync (the kernel keeps appending while
    /// the ring is read): losses are known before the records that follow
    /// them are judged. Diagnostics are logged as they come. Returns the
    /// kernel slots the completed syncs covered.
    pub(super) fn drain(&mut self, ring: &mut RingBuf<MapData>) -> anyhow::Result<SlotSet> {
        self.poll_lost()?;
        let mut synced = SlotSet::empty();
        while let Some(item) = ring.next() {
            let ev = match RawRecord::from_bytes(&item) {
                Ok(RawRecord::Event(ev)) => {
                    self.model.count_received(match ev.kind {
                        Kind::Entry => "entry",
                        Kind::Exit => "exit",
                    });
                    ev
                }
                Ok(RawRecord::Diag(d)) => {
                    self.model.count_received("diag");
                    diag::log(&d);
                    continue;
                }
                Err(e) => {
                    self.model.count_undecodable();
                    log::error!("{e}");
                    continue;
                }
            };
            if ev.kind == Kind::Entry {
                self.model.note_entry(ev.target, ev.ts_ns, ev.args);
            }
            let Some(rec) = self.tracer.on_event(&ev, self.syms) else {
                continue;
            };
            if let Record::Sync(s) = &rec {
                // A sync can decide a verdict: losses that happened before
                // it was read must be known.
                self.poll_lost()?;
                if s.start.0 <= s.end.0 {
                    (s.slot_first..=s.slot_last).for_each(|slot| {
                        synced.insert(slot);
                    });
                }
            }
            // The call first, then what it caused.
            self.out.push(rec.clone());
            self.model.observe(&rec, &mut self.out);
        }
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
        let synced = self.drain(ring)?;
        let due: SlotSet = self.model.due_slots(monotonic_ns()).into_iter().collect();
        let slots = match want {
            Walk::None => due,
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
        let before = self.out.len();
        self.model.on_scan(&snap, trigger, &mut self.out);
        let reported = self.out[before..]
            .iter()
            .any(|r| matches!(r, Record::Verify(_)));
        if walk && !reported {
            self.quiet_walks.push(snap.raw.pgds);
        }
        Ok(())
    }

    /// How long until the next grace deadline a walk can judge.
    pub(super) fn grace_wait(&self) -> Duration {
        self.model
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
        sink.emit_all(&mut self.out)
    }
}

/// What a scan walks besides the slots whose grace window closed.
pub(super) enum Walk {
    None,
    /// The slots that syncs just covered.
    Synced(SlotSet),
    /// Every kernel slot.
    All,
}
