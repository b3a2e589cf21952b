//! Where records go: stdout, as text lines or NDJSON, and the metrics,
//! which get every input through here.

use std::{
    io::{self, Write},
    sync::Arc,
};

use anyhow::Context as _;

use super::{metrics::Metrics, text};
use crate::record::Record;

pub struct Sink {
    json: bool,
    out: io::BufWriter<io::Stdout>,
    metrics: Option<Arc<Metrics>>,
}

impl Sink {
    pub fn stdout(json: bool) -> Self {
        Self {
            json,
            out: io::BufWriter::new(io::stdout()),
            metrics: None,
        }
    }

    /// Also counts every record in `metrics`.
    pub fn with_metrics(mut self, metrics: Option<Arc<Metrics>>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Counts a record in the metrics without writing it (`replay` counts
    /// the recorded records and writes what it derives).
    pub fn count(&self, r: &Record) {
        if let Some(m) = &self.metrics {
            m.observe(r);
        }
    }

    /// Counts a walk of `pgds` PGDs that wrote no `verify` record (a sweep
    /// that found nothing new).
    pub fn count_walk(&self, pgds: u32) {
        if let Some(m) = &self.metrics {
            m.walk(pgds);
        }
    }

    pub fn emit(&mut self, r: &Record) -> anyhow::Result<()> {
        self.count(r);
        if self.json {
            serde_json::to_writer(&mut self.out, r)?;
            self.out.write_all(b"\n")?;
        } else {
            writeln!(self.out, "{}", text::line(r))?;
        }
        self.out.flush().context("cannot write to stdout")
    }

    /// Emits and clears a batch of records; returns whether one was a
    /// confirmed `unsynced` (PGDs lack the entry). NDJSON keeps the order
    /// the records were made in (`replay` depends on it); text lines are
    /// put in the order of the times they begin with (a sync's line can be
    /// made after that of a call that started later).
    pub fn emit_all(&mut self, recs: &mut Vec<Record>) -> anyhow::Result<bool> {
        if !self.json {
            recs.sort_by_key(|r| r.ts_ns().unwrap_or(u64::MAX));
        }
        let mut unsynced = false;
        for r in recs.drain(..) {
            unsynced |= matches!(&r, Record::Unsynced(u) if u.confirmed);
            self.emit(&r)?;
        }
        Ok(unsynced)
    }
}
