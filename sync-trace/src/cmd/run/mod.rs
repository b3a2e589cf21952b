//! `sync-trace run`: the event loop. Kernel programs → ring buffer →
//! decode (sync-trace-common) → tracer and scanner → model → sink.

mod engine;
mod hooks;
pub mod pipeline;
mod rings;
mod sync_walks;

use std::{sync::Arc, time::Duration};

use anyhow::anyhow;
use sync_trace_common::Layout;
use tokio::time::{interval, sleep, sleep_until, Instant, Interval, MissedTickBehavior};

use self::engine::{Engine, Walk, LOST_RECHECK};
pub use self::hooks::{OnReady, RunHooks};
use self::pipeline::Pipeline;
use self::rings::{open_rings, sweep_ready, use_sweep, Rings};
use super::StopSignals;
use crate::{
    cli::RunArgs,
    kernel::{
        batch_flush::BatchFlush,
        least_privilege::{self, User},
        probe_watch::ProbeWatch,
        scan::Scanner,
        session::{kernel_release, Options, ScanOptions, Scanning, Session},
        snapshot::Snapshot,
        sweep::KernelSweep,
        symbols::Symbols,
        target_status::{any_sync_attached, TargetStatus},
    },
    model::Model,
    output::{
        exporter,
        metrics::{Context as MetricsContext, Metrics},
        sink::Sink,
    },
    record::{Hex, LayoutRecord, Record, Trigger},
};

/// How often the attached kprobes are checked for going away (only while
/// some target is attached by kprobe: fentry/fexit need no watch).
const PROBE_WATCH: Duration = Duration::from_secs(1);

/// Exit status of `run --fail-on-unsynced` after an unsynced population.
pub const EXIT_UNSYNCED: i32 = 3;

/// The session, its scanner and baseline table, and the sweep timer armed
/// (`None` under `--test-user-sweep`).
type Opened = (
    Session,
    Scanner,
    Snapshot,
    Option<anyhow::Result<KernelSweep>>,
);

fn open_session(args: &RunArgs) -> anyhow::Result<Opened> {
    let opts = Options {
        capture_stack: !args.no_stacks,
        force_log: args.test_kernel_log,
        ring_bytes: args.test_ring_size,
        report: false,
        attach: args.attach,
        sync_stand_in: args.test_sync_stand_in.clone(),
        populate_calls: args.test_populate_calls,
    };
    let scan = ScanOptions {
        max_pgds: args.max_pgds,
        sweep: args.sweep,
        kernel_sweep: !args.test_user_sweep,
    };
    let (
        session,
        Scanning {
            scanner,
            before,
            sweep,
        },
    ) = Session::open_scanning(&opts, &scan)?;
    if !any_sync_attached(&session.statuses) {
        return Err(anyhow!(
            "no sync point attached: {}",
            sync_refusals(&session.statuses)
        ));
    }
    log_attach(&session.statuses);
    Ok((session, scanner, before, sweep))
}

/// Why each sync point did not attach, on one line (`probe` gives the rest).
fn sync_refusals(statuses: &[TargetStatus]) -> String {
    statuses
        .iter()
        .filter(|s| s.target.is_sync())
        .map(|s| {
            let why = s.reason.as_deref().unwrap_or("not tried");
            format!("{}: {}", s.symbol, why.replace('\n', " "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn log_attach(statuses: &[TargetStatus]) {
    for s in statuses {
        match (s.attached, &s.reason) {
            (true, _) => log::info!(
                "attached {} via {}{}",
                s.symbol,
                s.method.map_or("?", |m| m.name()),
                livepatch_note(s)
            ),
            (false, Some(r)) => log::info!("not attached {}: {r}", s.symbol),
            (false, None) => {}
        }
    }
}

/// What a livepatch of an attached target means for its probes, or nothing.
fn livepatch_note(s: &TargetStatus) -> String {
    if s.livepatched_by.is_empty() {
        return String::new();
    }
    format!(
        " (livepatched by {}: calls still enter it, the probes see them)",
        s.livepatched_by.join(", ")
    )
}

/// The watch of the attached kprobes, opened while `run` still has its
/// privileges; what cannot be watched is one line.
fn open_watch(statuses: &[TargetStatus]) -> Option<ProbeWatch> {
    ProbeWatch::open(statuses).unwrap_or_else(|e| {
        log::warn!("{e}");
        None
    })
}

/// Takes the scan made before the probes attached as the model's baseline
/// (so populations between attach and the first walk are reported, not
/// swallowed); returns the layout and its `layout` record.
fn baseline(model: &mut Model, snap: &Snapshot, kasan: bool) -> (Layout, Record) {
    let layout = model.baseline(snap, kasan);
    if layout.struct_page.is_none() {
        log::warn!("sizeof(struct page) is unknown (no usable struct page in the kernel's BTF): a __populate_section_memmap call is taken to cover the whole vmemmap region, and each is traced alone (never batched)");
    }
    let rec = Record::Layout(LayoutRecord {
        ts_ns: snap.ts_ns(),
        kernel: kernel_release(),
        paging: layout.paging,
        page_offset_base: Hex(layout.page_offset_base),
        vmalloc_base: Hex(layout.vmalloc_base),
        vmemmap_base: Hex(layout.vmemmap_base),
        kernel_boundary: layout.kernel_boundary(),
        present: snap.present_kernel_slots().collect(),
        struct_page: layout.struct_page,
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

async fn timers(args: &RunArgs) -> Timers {
    // Without --duration: a century, which no run reaches.
    let forever = Duration::from_secs(100 * 365 * 24 * 3600);
    let now = Instant::now();
    let end = now
        .checked_add(args.duration.unwrap_or(forever))
        .unwrap_or(now + forever);
    let mut sweep = interval(args.sweep);
    sweep.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut walk = interval(args.walk_every);
    walk.set_missed_tick_behavior(MissedTickBehavior::Delay);
    walk.tick().await; // the first tick is now: the baseline walk
    let mut watch = interval(PROBE_WATCH);
    watch.set_missed_tick_behavior(MissedTickBehavior::Delay);
    Timers {
        sweep,
        walk,
        watch,
        end,
    }
}

/// The periodic wake-ups of the loop, and its end.
struct Timers {
    /// The sweep from userspace, when the kernel's does not run.
    sweep: Interval,
    walk: Interval,
    /// The check of attached kprobes, when some target is attached by kprobe.
    watch: Interval,
    /// Where `--duration` ends the run.
    end: Instant,
}

/// Runs until a signal (or the hooks' stop handle), `--duration`, or (with
/// `--fail-on-unsynced`) a confirmed unsynced population; returns the exit
/// status.
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
        let sync_wait = engine.sync_walk_wait();
        tokio::select! {
            guard = rings.events.readable_mut() => {
                let mut guard = guard?;
                let synced = engine.drain(guard.get_inner_mut())?;
                engine.synced(synced);
                guard.clear_ready();
            }
            _ = sleep(sync_wait), if engine.sync_walks.is_pending() => {
                engine.walk_synced(rings.events.get_mut())?
            }
            guard = sweep_ready(&mut rings.sweep) => {
                let mut guard = guard?;
                engine.sweep_changed(guard.get_inner_mut(), rings.events.get_mut())?;
                guard.clear_ready();
            }
            _ = timers.sweep.tick(), if engine.sweep.is_none() => {
                engine.scan(rings.events.get_mut(), Trigger::Sweep, Walk::None)?
            }
            _ = timers.walk.tick() => {
                engine.check_sweep()?;
                engine.scan(rings.events.get_mut(), Trigger::Sweep, Walk::All)?
            }
            _ = sleep(grace_wait) => engine.scan(rings.events.get_mut(), Trigger::Deadline, Walk::None)?,
            _ = timers.watch.tick(), if engine.watch.is_some() => engine.watch_probes(),
            _ = sleep(LOST_RECHECK), if engine.recheck_lost => engine.recheck_lost()?,
            _ = signals.recv() => return Ok(0),
            _ = &mut deadline => return Ok(0),
        }
        if engine.flush(sink)? && fail_on_unsynced {
            return Ok(EXIT_UNSYNCED);
        }
    }
}

/// `sync-trace run`.
pub async fn run(args: RunArgs) -> anyhow::Result<i32> {
    run_with(args, RunHooks::default()).await
}

/// `run` with an in-process consumer's hooks (`RunHooks`); returns the exit
/// status `run` would exit with.
pub async fn run_with(args: RunArgs, hooks: RunHooks) -> anyhow::Result<i32> {
    let RunHooks {
        on_record,
        on_ready,
        stop,
    } = hooks;
    // What attaching needs is named first; then what the switch needs.
    crate::kernel::privilege::preflight().map_err(anyhow::Error::msg)?;
    let user = match &args.user {
        Some(u) => {
            let u = User::resolve(u)?;
            least_privilege::preflight(&u)?;
            Some(u)
        }
        None => None,
    };
    crate::startup_phases::mark("runtime");
    let (session, scanner, before, sweep) = open_session(&args)?;
    let Session {
        ebpf,
        facts,
        statuses,
    } = session;
    let mut batches = BatchFlush::new(ebpf);
    let syms: &Symbols = &facts.symbols;
    let mut model = Model::new(args.grace.as_nanos() as u64);
    let (layout, layout_rec) = baseline(&mut model, &before, syms.has_kasan());
    let metrics = start_metrics(&args, &layout, &statuses).await?;
    crate::startup_phases::mark("metrics");
    let sink = match on_record {
        Some(observer) => Sink::observed(args.json, observer),
        None => Sink::stdout(args.json),
    };
    let mut sink = sink.with_metrics(metrics);
    let (mut rings, lost) = open_rings(batches.ebpf_mut(), before.ts_ns())?;
    let mut engine = Engine {
        pipe: Pipeline::new(syms, layout, model),
        scanner,
        lost,
        batches,
        quiet_walks: Vec::new(),
        walk_failed: false,
        watch: open_watch(&statuses),
        sweep: None,
        recheck_lost: false,
        sync_walks: Default::default(),
    };
    match sweep {
        Some(armed) => use_sweep(&mut engine, &mut rings, armed, args.sweep),
        None => log::info!(
            "sweeping from userspace every {:?}: --test-user-sweep",
            args.sweep
        ),
    }
    crate::startup_phases::mark("rings");
    let mut timers = timers(&args).await;
    let mut signals = StopSignals::install()?.with_handle(stop);

    sink.emit(&layout_rec)?;
    // What happened since the baseline, and problems present at start, are
    // reported before `ready`.
    engine.scan(rings.events.get_mut(), Trigger::Baseline, Walk::All)?;
    engine.flush(&mut sink)?;
    crate::startup_phases::mark("baseline walk");
    if let Some(u) = &user {
        least_privilege::drop_to(u)?;
    }
    match on_ready {
        Some(ready) => ready(),
        None => eprintln!("ready"),
    }
    // Work nothing before `ready` needs, on a thread of its own (started
    // with the process's final privileges): the detach of the sweep timer's
    // arming program.
    if let Some(k) = engine.sweep.as_mut() {
        k.detach_arming_beside();
    }

    let exit = event_loop(
        &mut engine,
        &mut rings,
        &mut timers,
        &mut signals,
        &mut sink,
        args.fail_on_unsynced,
    )
    .await?;

    // Syncs whose burst was still going on are verified before the end.
    engine.walk_synced(rings.events.get_mut())?;
    engine.batches.flush()?;
    engine.drain(rings.events.get_mut())?;
    log::info!("scans: {}", engine.scanner.stats());
    if let Some(k) = &engine.sweep {
        let v = k.view()?;
        log::info!(
            "kernel sweep: {} readings, {} changes, {} us in the timer, {} failed readings, {} changes retried",
            v.sweeps,
            v.changes,
            v.busy_ns / 1000,
            v.faults,
            v.lost
        );
    }
    engine.pipe.model.finish(&mut engine.pipe.out);
    engine.flush(&mut sink)?;
    Ok(exit)
}
