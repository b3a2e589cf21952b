//! The path of one ring-buffer record through userspace, without the
//! kernel: decode (sync-trace-common) → tracer → model, into the records
//! to write. `run`'s engine feeds it from the ring buffer; the pipeline
//! benchmark (examples/pipeline_bench.rs) from a synthetic stream.

use std::ops::RangeInclusive;

use sync_trace_common::{raw::EVENT_SIZE, DecodeError, Kind, Layout, RawEvent, RawRecord};

use crate::{
    kernel::{diag, symbols::Symbols, trace::Tracer},
    model::Model,
    record::{summary::Received, Record},
};

pub struct Pipeline<'a> {
    pub syms: &'a Symbols,
    pub tracer: Tracer,
    pub model: Model,
    /// Records made and not yet written.
    pub out: Vec<Record>,
    /// What the model derives from one record, before it joins `out`.
    derived: Vec<Record>,
}

impl<'a> Pipeline<'a> {
    pub fn new(syms: &'a Symbols, layout: Layout, model: Model) -> Self {
        Self {
            syms,
            tracer: Tracer::new(layout),
            model,
            out: Vec::with_capacity(16),
            derived: Vec::new(),
        }
    }

    /// An observed record goes out, then what the model derives from it.
    pub fn observe(&mut self, rec: Record) {
        // The record goes where it is written from, and the model reads it
        // there: not moved again after the model has seen it.
        self.out.push(rec);
        let rec = self.out.last().expect("pushed above");
        self.model.observe(rec, &mut self.derived);
        self.out.append(&mut self.derived);
    }

    /// Feeds one ring-buffer record. Diagnostics are logged, undecodable
    /// records counted and logged. `before_sync` runs before a completed
    /// sync that can decide a verdict reaches the model (`run` reads the
    /// loss counters there, three system calls: not for every sync).
    /// Returns the kernel slots a completed sync covered.
    pub fn on_ring_record(
        &mut self,
        bytes: &[u8],
        before_sync: impl FnOnce(&mut Self) -> anyhow::Result<()>,
    ) -> anyhow::Result<Option<RangeInclusive<usize>>> {
        // Events, nearly every record, are decoded as such: not through the
        // enum of every kind (the size of a batch and its stack), and used
        // where they are decoded.
        if bytes.len() != EVENT_SIZE {
            return Ok(self.on_other_record(bytes));
        }
        let ev = match RawEvent::from_bytes(bytes) {
            Ok(ev) => ev,
            Err(e) => {
                self.undecodable(&e);
                return Ok(None);
            }
        };
        self.model.count_received(match ev.kind {
            Kind::Entry => Received::Entry,
            Kind::Exit => Received::Exit,
        });
        if ev.kind == Kind::Entry {
            self.model.note_entry(ev.target, ev.ts_ns, ev.args);
        }
        let Some(rec) = self.tracer.on_event(&ev, self.syms) else {
            return Ok(None);
        };
        let mut synced = None;
        if let Record::Sync(s) = &rec {
            if self.model.awaits_sync() {
                before_sync(self)?;
            }
            if s.start.0 <= s.end.0 {
                synced = Some(s.slot_first..=s.slot_last);
            }
        }
        // The call first, then what it caused.
        self.observe(rec);
        Ok(synced)
    }

    /// A record of another kind than an event: a diagnostic, a batch, or
    /// one that does not decode.
    fn on_other_record(&mut self, bytes: &[u8]) -> Option<RangeInclusive<usize>> {
        match RawRecord::from_bytes(bytes) {
            Ok(RawRecord::Event(_)) => unreachable!("events are decoded by the caller"),
            Ok(RawRecord::Diag(d)) => {
                self.model.count_received(Received::Diag);
                diag::log(&d);
            }
            Ok(RawRecord::Batch(b)) => {
                // A batch of populate calls that cannot be populations.
                self.model.count_received(Received::Batch);
                let rec = self.tracer.on_batch(&b, self.syms);
                self.observe(rec);
            }
            Err(e) => self.undecodable(&e),
        }
        None
    }

    fn undecodable(&mut self, e: &DecodeError) {
        self.model.count_undecodable();
        log::error!("{e}");
    }
}
