//! The hook into `run`: the only code here that knows how `run` is driven.
//!
//! `run` runs in this task with `RunHooks` (cmd/run/hooks.rs):
//! - `on_record`: its sink hands every record it emits to a channel read
//!   here, which feeds the observer; nothing is written to stdout, which
//!   stays free for the report.
//! - `on_ready`: called once every probe is attached, the baseline is taken
//!   and what the baseline scan found has been emitted; only then does
//!   cycling start.
//! - `stop`: a `StopHandle`. When the cycles are done (and the settle time
//!   has passed) this stops it; `run` then ends as on SIGTERM: it drains,
//!   judges what is pending and emits its summary.
//!
//! A Ctrl-C or SIGTERM from outside reaches both: `run` stops (its
//! `StopSignals`), and here the cycler's stop flag is set and its sysfs
//! write interrupted, and the cycler restores. When `run` returns for any
//! reason its sink, and with it the record channel, is dropped: that stops
//! the cycler too.

use std::{
    future::Future,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::{
    signal::unix::{signal, SignalKind},
    sync::{mpsc::unbounded_channel, oneshot},
    time::{sleep_until, Instant},
};

use super::{cycle::CycleEvent, observer::StressObserver, progress::Progress};
use crate::cmd::{run::RunHooks, StopHandle};

/// Interrupts the cycler's sysfs write in progress, once: offlining a block
/// retries page migration until a signal is pending on the writing task
/// (`offline_pages()`, mm/memory_hotplug.c), which a process-directed
/// SIGTERM is not. The write is made by a child process (watchdog.rs) that
/// the cycler's thread waits for in `poll()`: SIGINT (handled by tokio's
/// handler from the moment `traced` starts) makes that `poll()` return EINTR,
/// and the thread passes SIGINT on to the child, which it ends.
fn nudge(thread: &AtomicU64, nudged: &mut bool) {
    let t = thread.load(Ordering::SeqCst);
    if t != 0 && !*nudged {
        *nudged = true;
        // SAFETY: `t` is the live blocking-pool thread running the cycler
        // (it clears the slot when done; pool threads outlive their tasks).
        unsafe { libc::pthread_kill(t as libc::pthread_t, libc::SIGINT) };
    }
}

/// How the traced cycling ended.
pub struct Traced {
    /// What `run` returned.
    pub run: anyhow::Result<i32>,
    /// Whether the cycler ran, and how it ended (`None`: never started).
    pub cycled: Option<Result<(), String>>,
    /// Ctrl-C or SIGTERM from outside.
    pub interrupted: bool,
}

/// Runs `run` (`cmd::run::run_with` but for tests) with hooks and, once it
/// is ready, `cycler` on a blocking thread; feeds the observer every record
/// and cycle event. `settle`: how long tracing goes on after the last cycle
/// (verdicts are judged a grace window after a population).
pub async fn traced<R, Fut, F>(
    run: R,
    cycler: F,
    observer: &mut dyn StressObserver,
    progress: &mut Progress,
    settle: Duration,
) -> anyhow::Result<Traced>
where
    R: FnOnce(RunHooks) -> Fut,
    Fut: Future<Output = anyhow::Result<i32>>,
    F: FnOnce(Arc<AtomicBool>, &mut dyn FnMut(CycleEvent)) + Send + 'static,
{
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let (rec_tx, mut rec_rx) = unbounded_channel();
    let (ready_tx, mut ready_rx) = oneshot::channel::<()>();
    let run_stop = StopHandle::default();
    let hooks = RunHooks {
        on_record: Some(Box::new(move |r| {
            let _ = rec_tx.send(r.clone());
        })),
        on_ready: Some(Box::new(move || {
            let _ = ready_tx.send(());
        })),
        stop: Some(run_stop.clone()),
    };
    let run_fut = run(hooks);

    let drive = async move {
        let stop = Arc::new(AtomicBool::new(false));
        // The cycler's thread while it runs (0: none), and whether it was
        // sent its signal.
        let thread = Arc::new(AtomicU64::new(0));
        let mut nudged = false;
        let (ev_tx, mut ev_rx) = unbounded_channel::<CycleEvent>();
        let mut cycler = Some(cycler);
        let mut ev_tx = Some(ev_tx);
        let (mut records_open, mut events_open, mut ready_open) = (true, false, true);
        let mut cycled: Option<Result<(), String>> = None;
        let mut interrupted = false;
        let mut armed = false;
        let mut end_at: Option<Instant> = None;
        loop {
            // The cycler is done or never ran, and it has been told to stop.
            let cycler_idle = cycler.is_none() && !events_open
                || cycler.is_some() && stop.load(Ordering::Relaxed);
            if armed && cycler_idle && end_at.is_none() {
                end_at = Some(Instant::now() + if interrupted { Duration::ZERO } else { settle });
            }
            // `run` returned (its hooks with it) and the cycler is done.
            if !records_open && !events_open && !ready_open {
                break;
            }
            tokio::select! {
                ready = &mut ready_rx, if ready_open => {
                    ready_open = false;
                    // Err: `run` returned before it was ready.
                    if ready.is_ok() {
                        armed = true;
                        if !stop.load(Ordering::Relaxed) {
                            if let (Some(f), Some(tx)) = (cycler.take(), ev_tx.take()) {
                                events_open = true;
                                let stop = stop.clone();
                                let thread = thread.clone();
                                tokio::task::spawn_blocking(move || {
                                    // SAFETY: no preconditions.
                                    thread.store(unsafe { libc::pthread_self() } as u64, Ordering::SeqCst);
                                    f(stop, &mut |ev| {
                                        let _ = tx.send(ev);
                                    });
                                    thread.store(0, Ordering::SeqCst);
                                });
                            }
                        }
                    }
                }
                r = rec_rx.recv(), if records_open => match r {
                    Some(rec) => observer.record(&rec),
                    None => {
                        // `run` returned: stop cycling (the cycler restores).
                        records_open = false;
                        stop.store(true, Ordering::Relaxed);
                    }
                },
                ev = ev_rx.recv(), if events_open => match ev {
                    Some(ev) => {
                        if let CycleEvent::Done(r) = &ev {
                            cycled = Some(r.clone());
                        }
                        progress.on(&ev);
                        observer.cycle_event(&ev);
                    }
                    None => {
                        events_open = false;
                        if cycled.is_none() {
                            cycled = Some(Err("the cycler stopped without a result (it panicked; the restore guard ran)".into()));
                        }
                    }
                },
                _ = sleep_until(end_at.unwrap_or_else(Instant::now)), if end_at.is_some() && records_open && !run_stop.is_stopped() => {
                    run_stop.stop();
                }
                _ = sigint.recv() => {
                    if !interrupted {
                        progress.line("stress: interrupted: restoring");
                    }
                    interrupted = true;
                    stop.store(true, Ordering::Relaxed);
                    nudge(&thread, &mut nudged);
                }
                _ = sigterm.recv() => {
                    if !interrupted {
                        progress.line("stress: terminated: restoring");
                    }
                    interrupted = true;
                    stop.store(true, Ordering::Relaxed);
                    nudge(&thread, &mut nudged);
                }
            }
        }
        (cycled, interrupted)
    };

    let (run, (cycled, interrupted)) = tokio::join!(run_fut, drive);
    Ok(Traced {
        run,
        cycled,
        interrupted,
    })
}
