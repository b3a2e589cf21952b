//! `replay` of a recording the pipeline wrote: the real reader, model and
//! sink, streaming from a file in a temporary directory.

use std::{
    fs::File,
    io::{self, BufWriter, Write},
    path::Path,
    sync::{Arc, Mutex},
};

use anyhow::{ensure, Context as _};
use sync_trace::{
    cmd::replay::{replay_into, RecordReader},
    output::sink::Sink,
    record::Record,
};

use crate::{
    clock::cpu_secs,
    pipeline::{self, GRACE_NS},
    rss::{peak_kib, reset_peak},
    stream::POP_EVERY,
};

/// Writes a recording of at least `records` records (what `run --json`
/// writes for the synthetic stream: a sync per call, and the populations,
/// verdicts and depopulations); returns how many it holds, and the calls
/// they record.
pub fn record(path: &Path, records: u64) -> anyhow::Result<(u64, u64)> {
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    // A call is two ring records and one `sync` record.
    let m = pipeline::run(&[2 * records], Box::new(BufWriter::new(file)))?;
    Ok((m.records_written, m.events / 2))
}

/// Keeps the last line written (the summary).
#[derive(Clone, Default)]
struct Tail(Arc<Mutex<Vec<u8>>>);

impl Write for Tail {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        t.extend_from_slice(b);
        let body = &t[..t.len().saturating_sub(1)];
        if let Some(nl) = body.iter().rposition(|&c| c == b'\n') {
            t.drain(..=nl);
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub struct Replayed {
    pub secs: f64,
    /// Peak RSS during the replay (from the RSS before it), KiB.
    pub peak_kib: u64,
}

/// Replays `path` (NDJSON output, discarded but for its summary) and checks
/// the verdicts: every population of the recording paired.
pub fn replay(path: &Path, calls: u64) -> anyhow::Result<Replayed> {
    reset_peak()?;
    let tail = Tail::default();
    let mut sink = Sink::writer(true, Box::new(tail.clone()));
    let t0 = cpu_secs();
    replay_into(RecordReader::open(path)?, GRACE_NS, true, &mut sink)?;
    let secs = cpu_secs() - t0;
    let peak = peak_kib()?;
    let last = tail.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let Ok(Record::Summary(s)) = serde_json::from_slice::<Record>(&last) else {
        anyhow::bail!("replay did not end with a summary");
    };
    let pops = calls / POP_EVERY;
    ensure!(
        s.paired == pops,
        "replay paired {} populations, the recording has {pops}",
        s.paired
    );
    Ok(Replayed {
        secs,
        peak_kib: peak,
    })
}
