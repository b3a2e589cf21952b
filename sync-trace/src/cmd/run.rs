//! `sync-trace run`: the event loop. Kernel programs → ring buffer →
//! decode (sync-trace-common) → tracer and scanner → model → sinks.

use std::{sync::Arc, time::Duration};

use anyhow::{anyhow, Context as _};
use aya::maps::{MapData, PerCpuArray, RingBuf};
use aya_log::EbpfLogger;
use sync_trace_common::{raw, Kind, RawEvent};
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{signal, SignalKind},
    time::{interval, sleep, MissedTickBehavior},
};

use crate::{
    cli::RunArgs,
    clock::monotonic_ns,
    exporter,
    kallsyms::Kallsyms,
    metrics::{Context as MetricsContext, Metrics},
    model::Model,
    probe,
    record::{Hex, LayoutRecord, LostRecord, Record, Trigger},
    scan::Scanner,
    session::{kernel_release, Options, Session},
    sink::Sink,
    snapshot::{SlotSet, Snapshot},
    trace::Tracer,
};

/// How often the kernel's loss counters are read.
const LOST_POLL: Duration = Duration::from_secs(1);

/// Names of the LOST slots, in index order.
const LOST_NAMES: [&str; raw::LOST_MAX as usize] = ["events", "inflight", "logs"];

/// Exit status of `run --fail-on-unsynced` after an unsynced population.
pub const EXIT_UNSYNCED: i32 = 3;

/// Pause before walking again after a walk that ended early (the list
/// changed under it), so a busy fork/exit load cannot make the loop spin.
const WALK_RETRY: Duration = Duration::from_millis(10);

struct LostCounters {
    map: PerCpuArray<MapData, u64>,
    totals: [u64; raw::LOST_MAX as usize],
    /// When the counters were last read.
    read_ns: u64,
}

impl LostCounters {
    /// A `lost` record for every counter that grew since the last read:
    /// the losses happened between the two reads.
    fn poll(&mut self, out: &mut Vec<Record>) -> anyhow::Result<()> {
        let now = monotonic_ns();
        for i in 0..raw::LOST_MAX {
            let total: u64 = self.map.get(&i, 0)?.iter().sum();
            let prev = &mut self.totals[i as usize];
            if total > *prev {
                out.push(Record::Lost(LostRecord {
                    what: LOST_NAMES[i as usize].to_string(),
                    count: total - *prev,
                    total,
                    ts_ns: now,
                    since_ns: self.read_ns,
                }));
                *prev = total;
            }
        }
        self.read_ns = now;
        Ok(())
    }
}

/// The tracer, the scanner and the model, advanced together.
struct Engine<'a> {
    syms: &'a Kallsyms,
    tracer: Tracer,
    scanner: Scanner,
    model: Model,
    lost: LostCounters,
    out: Vec<Record>,
    metrics: Option<Arc<Metrics>>,
    /// The last walk ended early: wait before the next deadline walk.
    walk_failed: bool,
}

impl Engine<'_> {
    /// Feeds records the engine made itself (lost counters) to the model.
    fn observe_new(&mut self, from: usize) {
        let new: Vec<Record> = self.out[from..].to_vec();
        for r in &new {
            self.model.observe(r, &mut self.out);
        }
    }

    /// Reads the loss counters, then every pending ring-buffer record, and
    /// the counters again before each sync (the kernel keeps appending while
    /// the ring is read): losses are known before the records that follow
    /// them are judged. Returns the kernel slots the completed syncs covered.
    fn drain(&mut self, ring: &mut RingBuf<MapData>) -> anyhow::Result<SlotSet> {
        let before = self.out.len();
        self.lost.poll(&mut self.out)?;
        self.observe_new(before);
        let mut synced = SlotSet::empty();
        while let Some(item) = ring.next() {
            match RawEvent::from_bytes(&item) {
                Ok(ev) => {
                    if ev.kind == Kind::Entry {
                        self.model.note_entry(ev.target, ev.ts_ns, ev.args);
                    }
                    if let Some(rec) = self.tracer.on_event(&ev, self.syms) {
                        if let Record::Sync(s) = &rec {
                            // A sync can decide a verdict: losses that
                            // happened before it was read must be known.
                            let before = self.out.len();
                            self.lost.poll(&mut self.out)?;
                            self.observe_new(before);
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
                }
                Err(e) => {
                    self.model.count_undecodable();
                    log::error!("{e}");
                }
            }
        }
        Ok(synced)
    }

    /// One scan, with the ring drained before it (every sync that ended
    /// before the scan is known) and after it (every act that started
    /// before it). What it walks follows what changed: `want`, plus the
    /// slots of populations whose grace window has closed (their judge);
    /// nothing at all is init_mm's table only, whose cost does not grow
    /// with the number of processes.
    fn scan(
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
        if let (false, true, Some(m)) = (reported, walk, &self.metrics) {
            m.walk(snap.raw.pgds);
        }
        Ok(())
    }
}

/// What a scan walks besides the slots whose grace window closed.
enum Walk {
    None,
    /// The slots that syncs just covered.
    Synced(SlotSet),
    /// Every kernel slot.
    All,
}

/// The scan taken before the probes attach: the baseline every later scan
/// is compared with, so populations between attach and the first walk are
/// reported, not swallowed.
fn layout_record(model: &mut Model, snap: &Snapshot, kasan: bool) -> Record {
    let layout = model.baseline(snap, kasan);
    Record::Layout(LayoutRecord {
        ts_ns: snap.ts_ns(),
        kernel: kernel_release(),
        paging: layout.paging,
        page_offset_base: Hex(layout.page_offset_base),
        vmalloc_base: Hex(layout.vmalloc_base),
        vmemmap_base: Hex(layout.vmemmap_base),
        kernel_boundary: layout.kernel_boundary(),
        present: snap.present_kernel_slots().collect(),
    })
}

fn log_attach(session: &Session) {
    for s in &session.statuses {
        match (s.attached, &s.reason) {
            (true, _) => log::info!(
                "attached {} via {}",
                s.symbol,
                s.method.map_or("?", |m| m.name())
            ),
            (false, Some(r)) => log::info!("not attached {}: {r}", s.symbol),
            (false, None) => {}
        }
    }
}

pub async fn run(args: RunArgs) -> anyhow::Result<i32> {
    let opts = Options {
        capture_stack: !args.no_stacks,
        force_log: args.test_kernel_log,
        ring_bytes: args.test_ring_size,
    };
    let (mut session, (scanner, before)) = Session::open_with(&opts, |facts| {
        let mut scanner = Scanner::open(&facts.kallsyms, args.max_pgds)?;
        let before = scanner.table()?;
        Ok((scanner, before))
    })?;
    if !probe::any_sync_attached(&session.statuses) {
        return Err(anyhow!(
            "no sync point attached (arch_sync_kernel_mappings, sync_global_pgds); run `sync-trace probe` for the reason per target"
        ));
    }
    log_attach(&session);
    let syms: &Kallsyms = &session.facts.kallsyms;
    let mut model = Model::new(args.grace.as_nanos() as u64);
    let layout = layout_record(&mut model, &before, syms.has_kasan());
    let Some(l) = model.layout() else {
        return Err(anyhow!("no kernel layout after the first scan"));
    };
    let metrics = match args.metrics_addr {
        Some(addr) => {
            let kernel = kernel_release();
            let m = Arc::new(Metrics::new(&MetricsContext {
                kernel: &kernel,
                level: l.level(),
                probes: &session.statuses,
            }));
            exporter::start(addr, m.clone()).await?;
            Some(m)
        }
        None => None,
    };
    let mut sink = Sink::stdout(args.json).with_metrics(metrics.clone());

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
    let lost = LostCounters {
        map: PerCpuArray::try_from(ebpf.take_map(raw::MAP_LOST).context("LOST map missing")?)?,
        totals: [0; raw::LOST_MAX as usize],
        read_ns: before.ts_ns(),
    };
    let mut engine = Engine {
        syms,
        tracer: Tracer::new(l),
        scanner,
        model,
        lost,
        out: Vec::with_capacity(16),
        metrics,
        walk_failed: false,
    };
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let deadline = sleep(args.duration.unwrap_or(Duration::from_secs(u64::MAX / 4)));
    tokio::pin!(deadline);
    let mut lost_tick = interval(LOST_POLL);
    let mut sweep = interval(args.sweep);
    sweep.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut walk_tick = interval(args.walk_every);
    walk_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    walk_tick.tick().await; // the first tick is now: the baseline walk below

    sink.emit(&layout)?;
    // What happened since the baseline, and problems present at start, are
    // reported before `ready`.
    engine.scan(ring.get_mut(), Trigger::Baseline, Walk::All)?;
    sink.emit_all(&mut engine.out)?;
    eprintln!("ready");

    let mut exit = 0;
    loop {
        let grace_wait = engine
            .model
            .next_deadline()
            .map(|d| Duration::from_nanos(d.saturating_sub(monotonic_ns())))
            .map(|w| {
                if engine.walk_failed {
                    w.max(WALK_RETRY)
                } else {
                    w
                }
            })
            .unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard?;
                let synced = engine.drain(guard.get_inner_mut())?;
                if !synced.is_empty() {
                    engine.scan(guard.get_inner_mut(), Trigger::Sync, Walk::Synced(synced))?;
                }
                guard.clear_ready();
            }
            guard = logger.readable_mut() => {
                let mut guard = guard?;
                guard.get_inner_mut().flush();
                guard.clear_ready();
            }
            _ = sweep.tick() => engine.scan(ring.get_mut(), Trigger::Sweep, Walk::None)?,
            _ = walk_tick.tick() => engine.scan(ring.get_mut(), Trigger::Sweep, Walk::All)?,
            _ = sleep(grace_wait) => engine.scan(ring.get_mut(), Trigger::Deadline, Walk::None)?,
            _ = lost_tick.tick() => {
                let before = engine.out.len();
                engine.lost.poll(&mut engine.out)?;
                engine.observe_new(before);
            }
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = &mut deadline => break,
        }
        if sink.emit_all(&mut engine.out)? && args.fail_on_unsynced {
            exit = EXIT_UNSYNCED;
            break;
        }
    }
    engine.drain(ring.get_mut())?;
    logger.get_mut().flush();
    let st = engine.scanner.stats();
    log::info!(
        "scans: {} table, {} walks, {} test runs, {} us in the kernel, longest run {} us (walk {} us), {} of {} walk runs over 1 ms, median walk run {} us",
        st.tables,
        st.walks,
        st.runs,
        st.busy_ns / 1000,
        st.max_run_ns / 1000,
        st.max_walk_run_ns / 1000,
        st.walk_runs_over_1ms,
        st.walk_runs,
        st.median_walk_run_ns() / 1000
    );
    let summary = engine.model.finish(&mut engine.out);
    sink.emit_all(&mut engine.out)?;
    sink.emit(&Record::Summary(summary))?;
    Ok(exit)
}
