//! Where records go: stdout, as text lines or NDJSON, the metrics, which
//! get every input through here, and an in-process observer (`stress`).
//!
//! Records are formatted into one buffer that goes to the writer in one
//! `write` per batch (or per [`CHUNK`] bytes): a record costs no system
//! call of its own, whether stdout is a terminal, a pipe or a file.

use std::io::{self, Write};
use std::sync::Arc;

use super::{
    metrics::{Metrics, SyncTally},
    sync_json::SyncJson,
    text,
};
use crate::record::Record;

/// Receives every record a sink emits, in the order emitted.
pub type Observer = Box<dyn FnMut(&Record) + Send>;

/// Bytes of formatted records that go to the writer at once even before
/// the batch ends (a long `replay` writes in chunks of this size).
pub const CHUNK: usize = 64 * 1024;

pub struct Sink {
    /// NDJSON (in the order made) rather than text lines (sorted by time).
    json: bool,
    /// `None`: nothing is written (the records go to the observer).
    out: Option<Box<dyn Write + Send>>,
    /// Formatted records not yet handed to `out`.
    buf: Vec<u8>,
    /// Writes the `sync` records' NDJSON.
    sync_json: SyncJson,
    metrics: Option<Arc<Metrics>>,
    /// The syncs counted since the metrics were last published (once per
    /// batch, or per [`PUBLISH_EVERY`] syncs counted).
    tally: SyncTally,
    observer: Option<Observer>,
}

/// Syncs counted before they are published into the metrics even when no
/// batch ends (`replay` counts records and writes few).
const PUBLISH_EVERY: usize = 4096;

impl Sink {
    pub fn stdout(json: bool) -> Self {
        Self::writer(json, Box::new(io::stdout()))
    }

    /// Writes to `out` (`stdout` is this with the process's stdout; the
    /// benchmark writes to `io::sink()`).
    pub fn writer(json: bool, out: Box<dyn Write + Send>) -> Self {
        Self {
            json,
            out: Some(out),
            buf: Vec::with_capacity(CHUNK + 4096),
            sync_json: SyncJson::default(),
            metrics: None,
            tally: SyncTally::default(),
            observer: None,
        }
    }

    /// Hands every record to `observer` and writes nothing: stdout stays
    /// the caller's. `json`: batches keep the order their records were
    /// made in, as NDJSON does (else they are sorted as text lines are).
    pub fn observed(json: bool, observer: Observer) -> Self {
        Self {
            json,
            out: None,
            buf: Vec::new(),
            sync_json: SyncJson::default(),
            metrics: None,
            tally: SyncTally::default(),
            observer: Some(observer),
        }
    }

    /// Also counts every record in `metrics`.
    pub fn with_metrics(mut self, metrics: Option<Arc<Metrics>>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Counts a record in the metrics without writing it (`replay` counts
    /// the recorded records and writes what it derives).
    pub fn count(&mut self, r: &Record) {
        if let Some(m) = &self.metrics {
            m.observe(r, &mut self.tally);
            if self.tally.unpublished() >= PUBLISH_EVERY {
                m.publish(&mut self.tally);
            }
        }
    }

    /// Publishes the syncs counted into the metrics.
    fn publish(&mut self) {
        if let Some(m) = &self.metrics {
            if self.tally.unpublished() > 0 {
                m.publish(&mut self.tally);
            }
        }
    }

    /// Counts a walk of `pgds` PGDs that wrote no `verify` record (a sweep
    /// that found nothing new).
    pub fn count_walk(&self, pgds: u32) {
        if let Some(m) = &self.metrics {
            m.walk(pgds);
        }
    }

    /// The single place records leave: the metrics, stdout, the observer.
    /// Stdout is flushed once the record is written.
    pub fn emit(&mut self, r: &Record) -> anyhow::Result<()> {
        self.put(r)?;
        self.flush()
    }

    /// A record to the metrics, the observer and the buffer; the buffer
    /// goes to the writer once it holds [`CHUNK`] bytes.
    pub fn put(&mut self, r: &Record) -> anyhow::Result<()> {
        self.count(r);
        if self.out.is_some() {
            if self.json {
                match r {
                    Record::Sync(s) => self.sync_json.write(&mut self.buf, s),
                    _ => serde_json::to_writer(&mut self.buf, r)?,
                }
                self.buf.push(b'\n');
            } else {
                self.buf.extend_from_slice(text::line(r).as_bytes());
                self.buf.push(b'\n');
            }
            if self.buf.len() >= CHUNK {
                self.write_buf()?;
            }
        }
        if let Some(observer) = &mut self.observer {
            observer(r);
        }
        Ok(())
    }

    fn write_buf(&mut self) -> anyhow::Result<()> {
        if let Some(out) = &mut self.out {
            if !self.buf.is_empty() {
                let written = out.write_all(&self.buf);
                self.buf.clear();
                if let Err(e) = written {
                    self.stdout_gone(&e);
                }
            }
        }
        Ok(())
    }

    /// Hands what is buffered to the writer and flushes it; publishes the
    /// syncs counted into the metrics.
    pub fn flush(&mut self) -> anyhow::Result<()> {
        self.publish();
        self.write_buf()?;
        if let Some(out) = &mut self.out {
            if let Err(e) = out.flush() {
                self.stdout_gone(&e);
            }
        }
        Ok(())
    }

    /// Stdout cannot be written any more (a closed pipe, a full disk): one line on stderr, and
    /// records go on to the metrics and the observer only. Tracing goes on: the kernel still
    /// has to be watched, and `/metrics` still counts what it sees.
    fn stdout_gone(&mut self, e: &io::Error) {
        eprintln!("{}", stdout_gone_line(e));
        self.out = None;
        self.buf = Vec::new();
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
        // Written where they are (not moved out one by one), then dropped
        // together, an error or not.
        let written = recs.iter().try_for_each(|r| {
            unsynced |= matches!(r, Record::Unsynced(u) if u.confirmed);
            self.put(r)
        });
        recs.clear();
        written?;
        // One write to stdout per batch, not one per record.
        self.flush()?;
        Ok(unsynced)
    }
}

/// The one line `run` writes when its stdout goes away.
fn stdout_gone_line(e: &io::Error) -> String {
    format!(
        "sync-trace: cannot write records to stdout ({e}); no more records are written there, tracing goes on (see the metrics)"
    )
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::model::Model;

    fn rec(json: &str) -> Record {
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"))
    }

    fn sync(ts: u64) -> Record {
        rec(&format!(
            r#"{{"event":"sync","ts_ns":{ts},"end_ns":{},"duration_ns":5,"cpu":1,"pid":9,"tid":9,"comm":"k","function":"sync_global_pgds","start":"0xffffea0000000000","end":"0xffffea0000000000","slot_first":468,"slot_last":468,"helper":true,"caller":"populate_helper","method":"fentry","entry_seen":true,"stack":[]}}"#,
            ts + 5
        ))
    }

    /// A sink whose observer collects what it is handed.
    fn observed(json: bool) -> (Sink, Arc<Mutex<Vec<Record>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let sink = Sink::observed(json, Box::new(move |r| s.lock().unwrap().push(r.clone())));
        (sink, seen)
    }

    fn json(recs: &[Record]) -> Vec<String> {
        recs.iter()
            .map(|r| serde_json::to_string(r).unwrap())
            .collect()
    }

    /// A pipe whose reader has gone.
    struct ClosedPipe;

    impl Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_stdout_stops_the_writes_not_the_counting() {
        let mut sink = Sink::writer(true, Box::new(ClosedPipe)).with_metrics(Some(Arc::new(
            crate::output::metrics::Metrics::new(&crate::output::metrics::Context {
                kernel: "6.12.0",
                paging: sync_trace_common::Paging::Four,
                probes: &[],
            }),
        )));
        sink.emit(&sync(1_000)).unwrap();
        assert!(sink.out.is_none(), "the writer is given up after the error");
        let mut batch = vec![sync(2_000), sync(3_000)];
        assert!(!sink.emit_all(&mut batch).unwrap());
        let text = sink.metrics.as_ref().unwrap().prometheus_text();
        assert!(
            text.lines()
                .any(|l| l.starts_with("sync_trace_syncs_total{") && l.ends_with(" 3")),
            "{text}"
        );
        assert!(
            stdout_gone_line(&io::ErrorKind::BrokenPipe.into())
                .lines()
                .count()
                == 1
        );
    }

    #[test]
    fn an_emitted_record_reaches_the_observer() {
        let (mut sink, seen) = observed(true);
        let r = sync(1_000);
        sink.emit(&r).unwrap();
        assert_eq!(json(&seen.lock().unwrap()), json(&[r]));
    }

    #[test]
    fn a_batch_reaches_the_observer_in_the_order_made() {
        let (mut sink, seen) = observed(true);
        let mut batch = vec![sync(3_000), sync(1_000), sync(2_000)];
        let made = json(&batch);
        assert!(!sink.emit_all(&mut batch).unwrap());
        assert!(batch.is_empty());
        assert_eq!(json(&seen.lock().unwrap()), made);
    }

    #[test]
    fn the_summary_reaches_the_observer() {
        let (mut sink, seen) = observed(true);
        let mut out = Vec::new();
        Model::new(100_000_000).finish(&mut out);
        sink.emit_all(&mut out).unwrap();
        assert!(seen
            .lock()
            .unwrap()
            .iter()
            .any(|r| matches!(r, Record::Summary(_))));
    }

    /// Counts the writes it gets.
    #[derive(Clone, Default)]
    struct Writes(Arc<Mutex<(usize, Vec<u8>)>>);

    impl std::io::Write for Writes {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let mut w = self.0.lock().unwrap();
            w.0 += 1;
            w.1.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_batch_is_one_write_and_a_long_one_goes_in_chunks() {
        let w = Writes::default();
        let mut sink = Sink::writer(true, Box::new(w.clone()));
        let mut batch: Vec<Record> = (0..10).map(|i| sync(1_000 * i)).collect();
        let lines = json(&batch).join("\n") + "\n";
        sink.emit_all(&mut batch).unwrap();
        assert_eq!(w.0.lock().unwrap().0, 1);
        assert_eq!(
            String::from_utf8(w.0.lock().unwrap().1.clone()).unwrap(),
            lines
        );
        // Put without a flush: written once CHUNK bytes are formatted.
        let one = serde_json::to_string(&sync(0)).unwrap().len() + 1;
        for _ in 0..CHUNK / one + 1 {
            sink.put(&sync(0)).unwrap();
        }
        assert_eq!(w.0.lock().unwrap().0, 2);
    }
}
