//! `sync-trace run`: the event loop. Kernel programs → ring buffer →
//! decode (sync-trace-common) → tracer and scanner → model → sink.

use std::{sync::Arc, time::Duration};

use anyhow::{anyhow, Context as _};
use aya::{
    maps::{MapData, PerCpuArray, RingBuf},
    Ebpf,
};
use aya_log::EbpfLogger;
use sync_trace_common::{raw, Kind, Layout, RawEvent};
use tokio::{
    io::unix::AsyncFd,
    time::{interval, sleep, sleep_until, Instant, Interval, MissedTickBehavior},
};

use super::StopSignals;
use crate::{
    cli::RunArgs,
    kernel::{
        clock::monotonic_ns,
        kallsyms::Kallsyms,
        lost::LostCounters,
        scan::Scanner,
        session::{kernel_release, Options, Session},
        slot_set::SlotSet,
        snapshot::Snapshot,
        target_status::{any_sync_attached, TargetStatus},
        trace::Tracer,
    },
    model::Model,
    output::{
        exporter,
        metrics::{Context as MetricsContext, Metrics},
        sink::Sink,
    },
    record::{Hex, LayoutRecord, Record, Trigger},
};

/// How often the kernel's loss counters are read.
const LOST_POLL: Duration = Duration::from_secs(1);

/// Exit status of `run --fail-on-unsynced` after an unsynced population.
pub const EXIT_UNSYNCED: i32 = 3;

/// Pause before walking again after a walk that ended early (the list
/// changed under it), so a busy fork/exit load cannot make the loop spin.
const WALK_RETRY: Duration = Duration::from_millis(10);

/// The tracer, the scanner and the model, advanced together.
struct Engine<'a> {
    syms: &'a Kallsyms,
    tracer: Tracer,
    scanner: Scanner,
    model: Model,
    lost: LostCounters,
    /// Records made and not yet written.
    out: Vec<Record>,
    /// PGDs of walks that wrote no `verify` record, not yet counted.
    quiet_walks: Vec<u32>,
    /// The last walk ended early: wait before the next deadline walk.
    walk_failed: bool,
}

impl Engine<'_> {
    /// Reads the loss counters and feeds the `lost` records to the model.
    fn poll_lost(&mut self) -> anyhow::Result<()> {
        let from = self.out.len();
        self.lost.poll(&mut self.out)?;
        let new: Vec<Record> = self.out[from..].to_vec();
        for r in &new {
            self.model.observe(r, &mut self.out);
        }
        Ok(())
    }

    /// Reads the loss counters, then every pending ring-buffer record, and
    /// the counters again before each sync (the kernel keeps appending while
    /// the ring is read): losses are known before the records that follow
    /// them are judged. Returns the kernel slots the completed syncs covered.
    fn drain(&mut self, ring: &mut RingBuf<MapData>) -> anyhow::Result<SlotSet> {
        self.poll_lost()?;
        let mut synced = SlotSet::empty();
        while let Some(item) = ring.next() {
            let ev = match RawEvent::from_bytes(&item) {
                Ok(ev) => ev,
                Err(e) => {
                    self.model.count_undecodable();
                    log::error!("{e}");
                    continue;
                }
            };
            if ev.kind == Kind::Entry {
                self.model.note_entry(ev.target, ev.ts_ns, ev.args);
            }
            let Some(rec) = self.tracer.on_event(&ev, self.syms) else {
                continue;
            };
            if let Record::Sync(s) = &rec {
                // A sync can decide a verdict: losses that happened before
                // it was read must be known.
                self.poll_lost()?;
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
        if walk && !reported {
            self.quiet_walks.push(snap.raw.pgds);
        }
        Ok(())
    }

    /// How long until the next grace deadline a walk can judge.
    fn grace_wait(&self) -> Duration {
        self.model
            .next_deadline()
            .map(|d| Duration::from_nanos(d.saturating_sub(monotonic_ns())))
            .map(|w| {
                if self.walk_failed {
                    w.max(WALK_RETRY)
                } else {
                    w
                }
            })
            .unwrap_or(Duration::from_secs(3600))
    }

    /// Writes what was made since the last call; returns whether it held a
    /// confirmed `unsynced`.
    fn flush(&mut self, sink: &mut Sink) -> anyhow::Result<bool> {
        for pgds in self.quiet_walks.drain(..) {
            sink.count_walk(pgds);
        }
        sink.emit_all(&mut self.out)
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

/// The kernel's ring buffers, registered with the runtime.
struct Rings {
    events: AsyncFd<RingBuf<MapData>>,
    logs: AsyncFd<EbpfLogger<&'static dyn log::Log>>,
}

/// Opens the session and takes the baseline scan before any probe attaches.
fn open_session(args: &RunArgs) -> anyhow::Result<(Session, Scanner, Snapshot)> {
    let opts = Options {
        capture_stack: !args.no_stacks,
        force_log: args.test_kernel_log,
        ring_bytes: args.test_ring_size,
    };
    let (session, (scanner, before)) = Session::open_with(&opts, |facts| {
        let mut scanner = Scanner::open(&facts.kallsyms, args.max_pgds)?;
        let before = scanner.table()?;
        Ok((scanner, before))
    })?;
    if !any_sync_attached(&session.statuses) {
        return Err(anyhow!(
            "no sync point attached (arch_sync_kernel_mappings, sync_global_pgds); run `sync-trace probe` for the reason per target"
        ));
    }
    log_attach(&session.statuses);
    Ok((session, scanner, before))
}

fn log_attach(statuses: &[TargetStatus]) {
    for s in statuses {
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

/// Takes the scan made before the probes attached as the model's baseline
/// (so populations between attach and the first walk are reported, not
/// swallowed); returns the layout and its `layout` record.
fn baseline(model: &mut Model, snap: &Snapshot, kasan: bool) -> (Layout, Record) {
    let layout = model.baseline(snap, kasan);
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
    (layout, rec)
}

/// The metrics and their endpoint, when `--metrics-addr` asks for them.
async fn start_metrics(
    args: &RunArgs,
    layout: &Layout,
    probes: &[TargetStatus],
) -> anyhow::Result<Option<Arc<Metrics>>> {
    let Some(addr) = args.metrics_addr else {
        return Ok(None);
    };
    let m = Arc::new(Metrics::new(&MetricsContext {
        kernel: &kernel_release(),
        paging: layout.paging,
        probes,
    }));
    exporter::start(addr, m.clone()).await?;
    Ok(Some(m))
}

/// Takes the ring buffers and the loss counters out of the loaded object.
fn open_rings(ebpf: &mut Ebpf, since_ns: u64) -> anyhow::Result<(Rings, LostCounters)> {
    let ring = RingBuf::try_from(
        ebpf.take_map(raw::MAP_EVENTS)
            .context("EVENTS map missing")?,
    )?;
    // SAFETY (both registrations): the ring buffers own their map fds, which
    // stay open and unchanged until the AsyncFd and its contents are dropped.
    let events = unsafe { AsyncFd::register(ring) }
        .map_err(|e| anyhow!("cannot poll the EVENTS ring buffer: {e}"))?;
    let logger = EbpfLogger::init(ebpf).context("cannot read kernel-side logs (AYA_LOGS)")?;
    let logs = unsafe { AsyncFd::register(logger) }
        .map_err(|e| anyhow!("cannot poll the AYA_LOGS ring buffer: {e}"))?;
    let lost = LostCounters::new(
        PerCpuArray::try_from(ebpf.take_map(raw::MAP_LOST).context("LOST map missing")?)?,
        since_ns,
    );
    Ok((Rings { events, logs }, lost))
}

async fn timers(args: &RunArgs) -> Timers {
    // Without --duration: a century, which no run reaches.
    let forever = Duration::from_secs(100 * 365 * 24 * 3600);
    let now = Instant::now();
    let end = now
        .checked_add(args.duration.unwrap_or(forever))
        .unwrap_or(now + forever);
    let lost = interval(LOST_POLL);
    let mut sweep = interval(args.sweep);
    sweep.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut walk = interval(args.walk_every);
    walk.set_missed_tick_behavior(MissedTickBehavior::Delay);
    walk.tick().await; // the first tick is now: the baseline walk
    Timers {
        lost,
        sweep,
        walk,
        end,
    }
}

/// The periodic wake-ups of the loop, and its end.
struct Timers {
    lost: Interval,
    sweep: Interval,
    walk: Interval,
    /// Where `--duration` ends the run.
    end: Instant,
}

/// Runs until a signal, `--duration`, or (with `--fail-on-unsynced`) a
/// confirmed unsynced population; returns the exit status.
async fn event_loop(
    engine: &mut Engine<'_>,
    rings: &mut Rings,
    timers: &mut Timers,
    signals: &mut StopSignals,
    sink: &mut Sink,
    fail_on_unsynced: bool,
) -> anyhow::Result<i32> {
    let deadline = sleep_until(timers.end);
    tokio::pin!(deadline);
    loop {
        let grace_wait = engine.grace_wait();
        tokio::select! {
            guard = rings.events.readable_mut() => {
                let mut guard = guard?;
                let synced = engine.drain(guard.get_inner_mut())?;
                if !synced.is_empty() {
                    engine.scan(guard.get_inner_mut(), Trigger::Sync, Walk::Synced(synced))?;
                }
                guard.clear_ready();
            }
            guard = rings.logs.readable_mut() => {
                let mut guard = guard?;
                guard.get_inner_mut().flush();
                guard.clear_ready();
            }
            _ = timers.sweep.tick() => engine.scan(rings.events.get_mut(), Trigger::Sweep, Walk::None)?,
            _ = timers.walk.tick() => engine.scan(rings.events.get_mut(), Trigger::Sweep, Walk::All)?,
            _ = sleep(grace_wait) => engine.scan(rings.events.get_mut(), Trigger::Deadline, Walk::None)?,
            _ = timers.lost.tick() => engine.poll_lost()?,
            _ = signals.recv() => return Ok(0),
            _ = &mut deadline => return Ok(0),
        }
        if engine.flush(sink)? && fail_on_unsynced {
            return Ok(EXIT_UNSYNCED);
        }
    }
}

pub async fn run(args: RunArgs) -> anyhow::Result<i32> {
    let (mut session, scanner, before) = open_session(&args)?;
    let syms: &Kallsyms = &session.facts.kallsyms;
    let mut model = Model::new(args.grace.as_nanos() as u64);
    let (layout, layout_rec) = baseline(&mut model, &before, syms.has_kasan());
    let metrics = start_metrics(&args, &layout, &session.statuses).await?;
    let mut sink = Sink::stdout(args.json).with_metrics(metrics);
    let (mut rings, lost) = open_rings(&mut session.ebpf, before.ts_ns())?;
    let mut engine = Engine {
        syms,
        tracer: Tracer::new(layout),
        scanner,
        model,
        lost,
        out: Vec::with_capacity(16),
        quiet_walks: Vec::new(),
        walk_failed: false,
    };
    let mut timers = timers(&args).await;
    let mut signals = StopSignals::install()?;

    sink.emit(&layout_rec)?;
    // What happened since the baseline, and problems present at start, are
    // reported before `ready`.
    engine.scan(rings.events.get_mut(), Trigger::Baseline, Walk::All)?;
    engine.flush(&mut sink)?;
    eprintln!("ready");

    let exit = event_loop(
        &mut engine,
        &mut rings,
        &mut timers,
        &mut signals,
        &mut sink,
        args.fail_on_unsynced,
    )
    .await?;

    engine.drain(rings.events.get_mut())?;
    rings.logs.get_mut().flush();
    log::info!("scans: {}", engine.scanner.stats());
    engine.model.finish(&mut engine.out);
    engine.flush(&mut sink)?;
    Ok(exit)
}
