//! Where records go: stdout, as text lines or NDJSON.

use std::io::{self, Write};

use anyhow::Context as _;

use crate::record::Record;

pub struct Sink {
    json: bool,
    out: io::BufWriter<io::Stdout>,
}

impl Sink {
    pub fn stdout(json: bool) -> Self {
        Self {
            json,
            out: io::BufWriter::new(io::stdout()),
        }
    }

    pub fn emit(&mut self, r: &Record) -> anyhow::Result<()> {
        if self.json {
            serde_json::to_writer(&mut self.out, r)?;
            self.out.write_all(b"\n")?;
        } else {
            writeln!(self.out, "{}", r.text())?;
        }
        self.out.flush().context("cannot write to stdout")
    }

    /// Emits and clears `recs`; returns whether one was `unsynced`.
    pub fn emit_all(&mut self, recs: &mut Vec<Record>) -> anyhow::Result<bool> {
        let mut unsynced = false;
        for r in recs.drain(..) {
            unsynced |= matches!(r, Record::Unsynced(_));
            self.emit(&r)?;
        }
        Ok(unsynced)
    }
}
