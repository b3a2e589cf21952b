//! The userspace path fed from the synthetic stream, as `run` drives it:
//! a batch of ring records through the pipeline (decode → tracer →
//! model), the scan that follows it, then the batch to the sink (metrics
//! and NDJSON).

use std::{io::Write, sync::Arc};

use anyhow::{ensure, Context as _};
use sync_trace::{
    cmd::run::pipeline::Pipeline,
    model::Model,
    output::{
        metrics::{Context, Metrics},
        sink::Sink,
    },
    record::{Hex, LayoutRecord, Record, Trigger},
};
use sync_trace_common::raw::EVENT_SIZE;

use crate::{
    clock::cpu_secs,
    rss::rss_kib,
    stream::{self, Stream, POP_EVERY},
};

/// `run`'s default grace window.
pub const GRACE_NS: u64 = 100_000_000;
/// Where the synthetic clock starts (CLOCK_MONOTONIC ns, 20 s after boot).
pub const START_NS: u64 = 20_000_000_000;

/// What a run of the pipeline measured.
pub struct Measured {
    pub events: u64,
    pub secs: f64,
    /// `(events so far, RSS in KiB)` at each checkpoint.
    pub rss: Vec<(u64, u64)>,
    pub records_written: u64,
    /// The metrics the sink updated (compared byte for byte in the tests).
    #[cfg_attr(not(test), allow(dead_code))]
    pub metrics: Arc<Metrics>,
}

/// Feeds ring records until `checkpoints`' last, noting the RSS at each;
/// NDJSON goes to `out`. Checks what the model made of them: one paired
/// population per [`POP_EVERY`] calls, and no verdict else.
pub fn run(checkpoints: &[u64], out: Box<dyn Write + Send>) -> anyhow::Result<Measured> {
    let syms = stream::kallsyms();
    let mut model = Model::new(GRACE_NS);
    let layout = model.baseline(&stream::table_scan(START_NS, false), false);
    let mut pipe = Pipeline::new(&syms, layout, model);
    let metrics = Metrics::new(&Context {
        kernel: "synthetic",
        paging: layout.paging,
        probes: &[],
    });
    let metrics = Arc::new(metrics);
    let mut sink = Sink::writer(true, out).with_metrics(Some(metrics.clone()));
    // The first record, as `run` writes it.
    sink.emit(&Record::Layout(LayoutRecord {
        ts_ns: START_NS,
        kernel: "synthetic".into(),
        paging: layout.paging,
        page_offset_base: Hex(layout.page_offset_base),
        vmalloc_base: Hex(layout.vmalloc_base),
        vmemmap_base: Hex(layout.vmemmap_base),
        kernel_boundary: layout.kernel_boundary(),
        present: stream::BOOT_SLOTS.to_vec(),
        struct_page: layout.struct_page,
    }))?;
    let mut stream = Stream::new(START_NS);
    let (mut events, mut written, mut rss) = (0u64, 1u64, Vec::new());
    let last = *checkpoints.last().context("no checkpoint")?;
    let t0 = cpu_secs();
    for &at in checkpoints {
        while events < at {
            let (batch, scan) = stream.fill();
            for rec in batch.chunks_exact(EVENT_SIZE) {
                pipe.on_ring_record(rec, |_| Ok(()))?;
            }
            events += (batch.len() / EVENT_SIZE) as u64;
            if let Some(s) = scan {
                pipe.model.on_scan(&s, Trigger::Sweep, &mut pipe.out);
            }
            written += pipe.out.len() as u64;
            sink.emit_all(&mut pipe.out)?;
        }
        rss.push((events, rss_kib()?));
    }
    let secs = cpu_secs() - t0;
    pipe.model.finish(&mut pipe.out);
    let Some(Record::Summary(s)) = pipe.out.last().cloned() else {
        anyhow::bail!("the model wrote no summary");
    };
    written += pipe.out.len() as u64;
    sink.emit_all(&mut pipe.out)?;
    let calls = events / 2;
    let pops = calls / POP_EVERY;
    ensure!(
        s.paired == pops && s.unsynced + s.unsynced_unconfirmed + s.uncertain == 0,
        "after {calls} calls the model paired {} populations (expected {pops}) and judged {} unsynced: the pipeline is broken",
        s.paired,
        s.unsynced + s.unsynced_unconfirmed + s.uncertain
    );
    ensure!(last <= events, "fed fewer events than asked");
    Ok(Measured {
        events,
        secs,
        rss,
        records_written: written,
        metrics,
    })
}
