//! `glue::traced` driving a fake `run` that is built as the real one is:
//! records leave through a `Sink` built from the hooks, readiness is
//! signalled after the first records, the loop waits on `StopSignals` with
//! the hook's stop handle, and the summary is emitted after it.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use super::records::*;
use crate::{
    cmd::{
        run::RunHooks,
        stress::{cycle::CycleEvent, glue, observer::StressObserver, progress::Progress},
        StopSignals,
    },
    model::Model,
    output::sink::Sink,
    record::Record,
};

#[derive(Default)]
struct Seen {
    records: Vec<Record>,
    events: Vec<CycleEvent>,
}

impl StressObserver for Seen {
    fn record(&mut self, r: &Record) {
        self.records.push(r.clone());
    }
    fn cycle_event(&mut self, ev: &CycleEvent) {
        self.events.push(ev.clone());
    }
}

/// What the fake run did.
#[derive(Default)]
struct RunLog {
    ready: AtomicBool,
    /// Records emitted before `ready`.
    before_ready: Mutex<usize>,
    stopped_by_handle: AtomicBool,
}

/// A run-like loop: emits a record, signals ready, emits a record every
/// few ms until its stop signals (with the hook's handle) fire, then emits
/// the summary. Gives up after 10 s (the test then fails).
async fn fake_run(hooks: RunHooks, log: Arc<RunLog>) -> anyhow::Result<i32> {
    let RunHooks {
        on_record,
        on_ready,
        stop,
    } = hooks;
    let mut sink = Sink::observed(true, on_record.expect("on_record"));
    let mut signals = StopSignals::install()?.with_handle(stop);
    sink.emit(&sync(1, 10))?;
    *log.before_ready.lock().unwrap() = 1;
    log.ready.store(true, Ordering::SeqCst);
    on_ready.expect("on_ready")();
    let give_up = tokio::time::sleep(Duration::from_secs(10));
    tokio::pin!(give_up);
    let mut ts = 100;
    loop {
        tokio::select! {
            _ = signals.recv() => {
                log.stopped_by_handle.store(true, Ordering::SeqCst);
                break;
            }
            _ = &mut give_up => break,
            _ = tokio::time::sleep(Duration::from_millis(5)) => {
                sink.emit(&sync(ts, 10))?;
                ts += 100;
            }
        }
    }
    let mut out = Vec::new();
    Model::new(100_000_000).finish(&mut out);
    sink.emit_all(&mut out)?;
    Ok(0)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn cycles_once_ready_then_stops_run_which_emits_its_summary() {
    let log = Arc::new(RunLog::default());
    let mut seen = Seen::default();
    let mut progress = Progress::new(Some(1));
    let run_log = log.clone();
    let cycler_log = log.clone();
    let traced = rt()
        .block_on(glue::traced(
            move |hooks| fake_run(hooks, run_log),
            move |_stop, emit| {
                assert!(
                    cycler_log.ready.load(Ordering::SeqCst),
                    "cycling before ready"
                );
                emit(CycleEvent::Start {
                    index: 1,
                    of: Some(1),
                    ts_ns: 1,
                });
                std::thread::sleep(Duration::from_millis(30));
                emit(CycleEvent::End { index: 1, ts_ns: 2 });
                emit(CycleEvent::Done(Ok(())));
            },
            &mut seen,
            &mut progress,
            Duration::from_millis(20),
        ))
        .unwrap();
    assert_eq!(traced.run.unwrap(), 0);
    assert_eq!(traced.cycled, Some(Ok(())));
    assert!(!traced.interrupted);
    assert!(log.stopped_by_handle.load(Ordering::SeqCst));
    assert_eq!(*log.before_ready.lock().unwrap(), 1);
    // Every record the run emitted, the summary last.
    assert!(seen.records.len() >= 3, "{}", seen.records.len());
    assert!(matches!(seen.records[0], Record::Sync(_)));
    assert!(matches!(seen.records.last(), Some(Record::Summary(_))));
    assert!(matches!(seen.events.last(), Some(CycleEvent::Done(Ok(())))));
}

#[test]
fn a_run_that_fails_before_ready_cycles_nothing() {
    let mut seen = Seen::default();
    let mut progress = Progress::new(Some(1));
    let cycled = Arc::new(AtomicBool::new(false));
    let c = cycled.clone();
    let traced = rt()
        .block_on(glue::traced(
            |_hooks| async { Err(anyhow::anyhow!("no sync point attached")) },
            move |_stop, _emit| c.store(true, Ordering::SeqCst),
            &mut seen,
            &mut progress,
            Duration::from_millis(20),
        ))
        .unwrap();
    assert!(traced.run.is_err());
    assert_eq!(traced.cycled, None);
    assert!(!cycled.load(Ordering::SeqCst));
    assert!(seen.records.is_empty());
}

#[test]
fn the_end_of_run_stops_the_cycler() {
    let mut seen = Seen::default();
    let mut progress = Progress::new(None);
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let traced = rt()
        .block_on(glue::traced(
            |hooks: RunHooks| async move {
                let RunHooks {
                    on_record,
                    on_ready,
                    ..
                } = hooks;
                on_ready.expect("on_ready")();
                // Returns (as on --duration) while the cycler runs.
                let _ = started_rx.await;
                drop(on_record);
                Ok(0)
            },
            move |stop, emit| {
                let _ = started_tx.send(());
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                emit(CycleEvent::Done(Ok(())));
            },
            &mut seen,
            &mut progress,
            Duration::from_secs(60),
        ))
        .unwrap();
    assert_eq!(traced.run.unwrap(), 0);
    assert_eq!(traced.cycled, Some(Ok(())));
}
