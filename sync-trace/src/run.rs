//! `sync-trace run`: the event loop. Kernel programs → ring buffer →
//! decode (sync-trace-common) → tracer → sinks (text or NDJSON on stdout).

use std::{
    io::{self, Write},
    time::Duration,
};

use anyhow::{anyhow, Context as _};
use aya::maps::{MapData, PerCpuArray, RingBuf};
use aya_log::EbpfLogger;
use sync_trace_common::{raw, RawEvent};
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{signal, SignalKind},
    time::{interval, sleep},
};

use crate::{
    cli::RunArgs,
    probe,
    record::{LostRecord, Record},
    session::{Options, Session},
    trace::Tracer,
};

/// How often the kernel's loss counters are read.
const LOST_POLL: Duration = Duration::from_secs(1);

/// Names of the LOST slots, in index order.
const LOST_NAMES: [&str; raw::LOST_MAX as usize] = ["events", "inflight", "logs"];

struct Sink {
    json: bool,
    out: io::BufWriter<io::Stdout>,
}

impl Sink {
    fn emit(&mut self, r: &Record) -> anyhow::Result<()> {
        if self.json {
            serde_json::to_writer(&mut self.out, r)?;
            self.out.write_all(b"\n")?;
        } else {
            writeln!(self.out, "{}", r.text())?;
        }
        self.out.flush().context("cannot write to stdout")
    }
}

struct LostCounters {
    map: PerCpuArray<MapData, u64>,
    totals: [u64; raw::LOST_MAX as usize],
}

impl LostCounters {
    /// Emits a `lost` record for every counter that grew.
    fn poll(&mut self, sink: &mut Sink, tracer: &mut Tracer) -> anyhow::Result<()> {
        for i in 0..raw::LOST_MAX {
            let total: u64 = self.map.get(&i, 0)?.iter().sum();
            let prev = &mut self.totals[i as usize];
            if total > *prev {
                let name = LOST_NAMES[i as usize];
                sink.emit(&Record::Lost(LostRecord {
                    what: name,
                    count: total - *prev,
                    total,
                }))?;
                tracer.summary.lost.insert(name, total);
                *prev = total;
            }
        }
        Ok(())
    }
}

pub async fn run(args: RunArgs) -> anyhow::Result<i32> {
    let mut session = Session::open(&Options {
        capture_stack: !args.no_stacks,
        force_log: args.test_kernel_log,
    })?;
    for s in &session.statuses {
        match (&s.attached, &s.reason) {
            (true, _) => log::info!(
                "attached {} via {}",
                s.symbol,
                s.method.map_or("?", |m| m.name())
            ),
            (false, Some(r)) => log::info!("not attached {}: {r}", s.symbol),
            (false, None) => {}
        }
    }
    if !probe::any_sync_attached(&session.statuses) {
        return Err(anyhow!(
            "no sync point attached (arch_sync_kernel_mappings, sync_global_pgds); run `sync-trace probe` for the reason per target"
        ));
    }
    let ebpf = &mut session.ebpf;
    let ring = RingBuf::try_from(
        ebpf.take_map(raw::MAP_EVENTS)
            .context("EVENTS map missing")?,
    )?;
    // SAFETY (both registrations): the ring buffers own their map fds, which
    // stay open and unchanged until the AsyncFd and its contents are dropped.
    let mut ring = unsafe { AsyncFd::register(ring) }
        .map_err(|e| anyhow!("cannot poll the EVENTS ring buffer: {e}"))?;
    let logger = EbpfLogger::init(ebpf).context("cannot read kernel-side logs (AYA_LOGS)")?;
    let mut logger = unsafe { AsyncFd::register(logger) }
        .map_err(|e| anyhow!("cannot poll the AYA_LOGS ring buffer: {e}"))?;
    let mut lost = LostCounters {
        map: PerCpuArray::try_from(ebpf.take_map(raw::MAP_LOST).context("LOST map missing")?)?,
        totals: [0; raw::LOST_MAX as usize],
    };
    let syms = &session.facts.kallsyms;
    let mut tracer = Tracer::default();
    let mut sink = Sink {
        json: args.json,
        out: io::BufWriter::new(io::stdout()),
    };
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let deadline = sleep(args.duration.unwrap_or(Duration::MAX / 4));
    tokio::pin!(deadline);
    let mut lost_tick = interval(LOST_POLL);
    eprintln!("ready");

    loop {
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard?;
                drain(guard.get_inner_mut(), &mut tracer, syms, &mut sink)?;
                guard.clear_ready();
            }
            guard = logger.readable_mut() => {
                let mut guard = guard?;
                guard.get_inner_mut().flush();
                guard.clear_ready();
            }
            _ = lost_tick.tick() => lost.poll(&mut sink, &mut tracer)?,
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = &mut deadline => break,
        }
    }
    drain(ring.get_mut(), &mut tracer, syms, &mut sink)?;
    logger.get_mut().flush();
    lost.poll(&mut sink, &mut tracer)?;
    tracer.summary.finish();
    sink.emit(&Record::Summary(tracer.summary.clone()))?;
    Ok(0)
}

fn drain(
    ring: &mut RingBuf<MapData>,
    tracer: &mut Tracer,
    syms: &crate::kallsyms::Kallsyms,
    sink: &mut Sink,
) -> anyhow::Result<()> {
    while let Some(item) = ring.next() {
        match RawEvent::from_bytes(&item) {
            Ok(ev) => {
                if let Some(rec) = tracer.on_event(&ev, syms) {
                    sink.emit(&rec)?;
                }
            }
            Err(e) => {
                tracer.summary.undecodable += 1;
                log::error!("{e}");
            }
        }
    }
    Ok(())
}
