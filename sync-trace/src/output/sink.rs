//! Where records go: stdout, as text lines or NDJSON.

use std::{
    io::{self, Write},
    sync::Arc,
};

use anyhow::Context as _;

use crate::{metrics::Metrics, record::Record};

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

    /// Also counts every emitted record in `metrics`.
    pub fn with_metrics(mut self, metrics: Option<Arc<Metrics>>) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn emit(&mut self, r: &Record) -> anyhow::Result<()> {
        if let Some(m) = &self.metrics {
            m.observe(r);
        }
        if self.json {
            serde_json::to_writer(&mut self.out, r)?;
            self.out.write_all(b"\n")?;
        } else {
            writeln!(self.out, "{}", r.text())?;
        }
        self.out.flush().context("cannot write to stdout")
    }

    /// Emits and clears `recs`; returns whether one was a confirmed
    /// `unsynced` (PGDs lack the entry).
    pub fn emit_all(&mut self, recs: &mut Vec<Record>) -> anyhow::Result<bool> {
        let mut unsynced = false;
        for r in recs.drain(..) {
            unsynced |= matches!(&r, Record::Unsynced(u) if u.confirmed);
            self.emit(&r)?;
        }
        Ok(unsynced)
    }
}
