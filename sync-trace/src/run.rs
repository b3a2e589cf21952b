//! `sync-trace run`: the event loop. Kernel programs → ring buffer →
//! decode (sync-trace-common) → tracer and scanner → model → sinks.

use std::{sync::Arc, time::Duration};

use anyhow::{anyhow, Context as _};
use aya::maps::{MapData, PerCpuArray, RingBuf};
use aya_log::EbpfLogger;
use sync_trace_common::{raw, RawEvent, Target};
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

struct LostCounters {
    map: PerCpuArray<MapData, u64>,
    totals: [u64; raw::LOST_MAX as usize],
}

impl LostCounters {
    /// A `lost` record for every counter that grew.
    fn poll(&mut self, out: &mut Vec<Record>) -> anyhow::Result<()> {
        for i in 0..raw::LOST_MAX {
            let total: u64 = self.map.get(&i, 0)?.iter().sum();
            let prev = &mut self.totals[i as usize];
            if total > *prev {
                out.push(Record::Lost(LostRecord {
                    what: LOST_NAMES[i as usize].to_string(),
                    count: total - *prev,
                    total,
                }));
                *prev = total;
            }
        }
        Ok(())
    }
}

/// The scanner and the model, advanced together.
struct Engine {
    scanner: Scanner,
    model: Model,
    out: Vec<Record>,
    metrics: Option<Arc<Metrics>>,
    grace_ns: u64,
    /// Slots of populations, with the end of their grace window: the walk
    /// at that deadline compares them.
    watch: Vec<(u64, usize)>,
}

impl Engine {
    /// Scans and feeds the model. What is walked follows what changed: a
    /// quiet sweep reads init_mm's table only (its cost does not grow with
    /// the number of processes); after syncs, pgd_list is walked for the
    /// synced slots; at a grace deadline, for the slots of the populations
    /// whose window closed (every kernel slot when none is known). A walk
    /// at a grace deadline is reported as such.
    fn scan(&mut self, trigger: Trigger, tracer: &Tracer, synced: &SlotSet) -> anyhow::Result<()> {
        // Direct-map mappings still running bound the populations they make.
        for (ts, args) in tracer.inflight(Target::InitMemoryMapping) {
            self.model.detector.bound_direct_map(ts, args[0], args[1]);
        }
        let now = monotonic_ns();
        let due_now = self.model.next_deadline().is_some_and(|d| d <= now);
        let mut slots = *synced;
        if due_now || trigger == Trigger::Deadline {
            let mut closed = SlotSet::empty();
            for &(_, slot) in self.watch.iter().filter(|w| w.0 <= now) {
                closed.insert(slot);
            }
            self.watch.retain(|w| w.0 > now);
            slots = slots.union(if closed.is_empty() {
                &const { SlotSet::all() }
            } else {
                &closed
            });
        }
        let snap = if slots.is_empty() {
            self.scanner.table()?
        } else {
            self.scanner.verified_walk_of(&slots)?
        };
        let due = self
            .model
            .next_deadline()
            .is_some_and(|d| d <= snap.raw.end_ns);
        let trigger = if due && trigger == Trigger::Sweep {
            Trigger::Deadline
        } else {
            trigger
        };
        let before = self.out.len();
        self.model.on_scan(&snap, trigger, &mut self.out);
        for r in &self.out[before..] {
            if let Record::Populate(p) = r {
                self.watch
                    .push((p.ts_ns.saturating_add(self.grace_ns), p.pop.slot));
            }
        }
        let reported = self.out[before..]
            .iter()
            .any(|r| matches!(r, Record::Verify(_)));
        if let (false, true, Some(m)) = (reported, snap.walked(), &self.metrics) {
            m.walk(snap.raw.pgds);
        }
        Ok(())
    }
}

/// The baseline: the first walk fixes the layout and the entries present at
/// start; returns the `layout` record and the walk (whose verification is
/// reported before `ready`).
fn baseline(engine: &mut Engine) -> anyhow::Result<(Record, Snapshot)> {
    let snap = engine.scanner.verified_walk()?;
    let layout = engine.model.detector.baseline(&snap);
    let rec = Record::Layout(LayoutRecord {
        ts_ns: snap.ts_ns(),
        kernel: kernel_release(),
        paging: layout.paging,
        page_offset_base: Hex(layout.page_offset_base),
        vmalloc_base: Hex(layout.vmalloc_base),
        vmemmap_base: Hex(layout.vmemmap_base),
        kernel_boundary: layout.kernel_boundary(),
        present: snap.present_kernel_slots().collect(),
    });
    Ok((rec, snap))
}

pub async fn run(args: RunArgs) -> anyhow::Result<i32> {
    let mut session = Session::open(&Options {
        capture_stack: !args.no_stacks,
        force_log: args.test_kernel_log,
    })?;
    if !probe::any_sync_attached(&session.statuses) {
        return Err(anyhow!(
            "no sync point attached (arch_sync_kernel_mappings, sync_global_pgds); run `sync-trace probe` for the reason per target"
        ));
    }
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
    let syms: &Kallsyms = &session.facts.kallsyms;
    let mut engine = Engine {
        scanner: Scanner::open(syms, args.max_pgds)?,
        model: Model::new(args.grace.as_nanos() as u64),
        out: Vec::with_capacity(16),
        metrics: None,
        grace_ns: args.grace.as_nanos() as u64,
        watch: Vec::new(),
    };
    engine.model.detector.kasan = syms.has_kasan();
    let (layout, first_walk) = baseline(&mut engine)?;
    let Some(l) = engine.model.detector.layout() else {
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
    engine.metrics = metrics.clone();
    let mut sink = Sink::stdout(args.json).with_metrics(metrics);
    let mut tracer = Tracer::new(l);

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
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let deadline = sleep(args.duration.unwrap_or(Duration::from_secs(u64::MAX / 4)));
    tokio::pin!(deadline);
    let mut lost_tick = interval(LOST_POLL);
    let mut sweep = interval(args.sweep);
    sweep.set_missed_tick_behavior(MissedTickBehavior::Delay);

    sink.emit(&layout)?;
    // Problems present at start are reported before `ready`.
    engine
        .model
        .on_scan(&first_walk, Trigger::Baseline, &mut engine.out);
    sink.emit_all(&mut engine.out)?;
    eprintln!("ready");

    let mut exit = 0;
    loop {
        let grace_wait = engine
            .model
            .next_deadline()
            .map(|d| Duration::from_nanos(d.saturating_sub(monotonic_ns())))
            .unwrap_or(Duration::from_secs(3600));
        let mut synced = SlotSet::empty();
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard?;
                synced = drain(guard.get_inner_mut(), &mut tracer, syms, &mut engine)?;
                guard.clear_ready();
            }
            guard = logger.readable_mut() => {
                let mut guard = guard?;
                guard.get_inner_mut().flush();
                guard.clear_ready();
            }
            _ = sweep.tick() => engine.scan(Trigger::Sweep, &tracer, &SlotSet::empty())?,
            _ = sleep(grace_wait) => engine.scan(Trigger::Deadline, &tracer, &SlotSet::empty())?,
            _ = lost_tick.tick() => lost.poll(&mut engine.out)?,
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = &mut deadline => break,
        }
        if !synced.is_empty() {
            engine.scan(Trigger::Sync, &tracer, &synced)?;
        }
        if sink.emit_all(&mut engine.out)? && args.fail_on_unsynced {
            exit = EXIT_UNSYNCED;
            break;
        }
    }
    drain(ring.get_mut(), &mut tracer, syms, &mut engine)?;
    logger.get_mut().flush();
    lost.poll(&mut engine.out)?;
    sink.emit_all(&mut engine.out)?;
    let st = engine.scanner.stats();
    log::info!(
        "scans: {} table, {} walks, {} test runs, {} us in the kernel, longest run {} us (walk {} us), {} of {} walk runs over 1 ms",
        st.tables,
        st.walks,
        st.runs,
        st.busy_ns / 1000,
        st.max_run_ns / 1000,
        st.max_walk_run_ns / 1000,
        st.walk_runs_over_1ms,
        st.walk_runs
    );
    let mut summary = engine.model.summary.clone();
    summary.finish();
    sink.emit(&Record::Summary(summary))?;
    Ok(exit)
}

/// Decodes every pending ring-buffer record; returns the kernel slots that
/// completed syncs covered.
fn drain(
    ring: &mut RingBuf<MapData>,
    tracer: &mut Tracer,
    syms: &Kallsyms,
    engine: &mut Engine,
) -> anyhow::Result<SlotSet> {
    let mut synced = SlotSet::empty();
    while let Some(item) = ring.next() {
        match RawEvent::from_bytes(&item) {
            Ok(ev) => {
                if let Some(rec) = tracer.on_event(&ev, syms) {
                    if let Record::Sync(s) = &rec {
                        for slot in s.slot_first..=s.slot_last {
                            synced.insert(slot);
                        }
                    }
                    // The call first, then what it caused.
                    engine.out.push(rec.clone());
                    engine.model.observe(&rec, &mut engine.out);
                }
            }
            Err(e) => {
                engine.model.summary.undecodable += 1;
                log::error!("{e}");
            }
        }
    }
    Ok(synced)
}
