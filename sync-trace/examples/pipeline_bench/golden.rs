//! What the path writes, byte for byte: the NDJSON of a pipeline run over
//! the synthetic stream, its metrics, and the NDJSON of `replay` of that
//! recording, each compared with a digest of the bytes the path wrote
//! before its fast paths were made (the serde-derived serializer, one
//! `String` per frame, per-record metric updates). A change to any output
//! byte fails here; a deliberate change of the format updates the digests
//! (and docs/events.md).

use std::{
    io::{self, Write},
    sync::{Arc, Mutex},
};

use sync_trace::{
    cmd::replay::{replay_into, RecordReader},
    output::sink::Sink,
};

use crate::pipeline::{self, GRACE_NS};

/// A writer that keeps every byte.
#[derive(Clone, Default)]
pub struct Captured(pub Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// 64-bit FNV-1a: a digest that needs no crate, enough to tell two
/// outputs apart.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `(bytes, lines, digest)` of one output.
pub type Shape = (usize, usize, u64);

pub fn shape(bytes: &[u8]) -> Shape {
    let lines = bytes.iter().filter(|&&b| b == b'\n').count();
    (bytes.len(), lines, fnv1a(bytes))
}

/// The run's NDJSON, its metrics (Prometheus text) and `replay`'s NDJSON.
pub fn outputs(events: u64) -> (Vec<u8>, String, Vec<u8>) {
    let run = Captured::default();
    let m = pipeline::run(&[events], Box::new(run.clone())).expect("the pipeline runs");
    let recording = run.0.lock().unwrap().clone();
    let path =
        std::env::temp_dir().join(format!("sync-trace-golden-{}.ndjson", std::process::id()));
    std::fs::write(&path, &recording).expect("the recording is written");
    let replayed = Captured::default();
    let mut sink = Sink::writer(true, Box::new(replayed.clone()));
    let reader = RecordReader::open(&path).expect("the recording opens");
    replay_into(reader, GRACE_NS, true, &mut sink).expect("replay runs");
    std::fs::remove_file(&path).ok();
    let replayed = replayed.0.lock().unwrap().clone();
    (recording, m.metrics.prometheus_text(), replayed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two populations (one at 50,000 calls, one at 100,000), each paired
    /// and cleared, between 120,000 syncs from three call sites and eight
    /// threads.
    const EVENTS: u64 = 240_000;

    #[test]
    fn the_outputs_are_those_of_before_byte_for_byte() {
        let (run, metrics, replayed) = outputs(EVENTS);
        if std::env::var_os("SYNC_TRACE_GOLDEN_DUMP").is_some() {
            std::fs::write("/tmp/golden-run.ndjson", &run).unwrap();
            std::fs::write("/tmp/golden-metrics.txt", &metrics).unwrap();
            std::fs::write("/tmp/golden-replay.ndjson", &replayed).unwrap();
        }
        // A family's label sets come out in hash order: the lines are
        // compared sorted.
        let mut lines: Vec<&str> = metrics.lines().collect();
        lines.sort_unstable();
        let metrics = lines.join("\n") + "\n";
        let got = [shape(&run), shape(metrics.as_bytes()), shape(&replayed)];
        assert_eq!(got, GOLDEN);
    }

    const GOLDEN: [Shape; 3] = [
        (78_980_927, 120_103, 0xdae7_9885_7cca_f854),
        (11_980, 160, 0x7051_d6a3_56a5_2078),
        (1_218, 3, 0xbdb1_b501_3af2_8961),
    ];
}
