//! The hook into `run`: the only code here that knows how `run` works.
//! Re-wire this (and only this) once `run` can hand its records to a
//! consumer directly.
//!
//! How it hooks today: `crate::cmd::run::run()` runs in this task with
//! `--json`, and its stdout (the `Sink`, fd 1) is redirected into a pipe. A
//! thread reads the NDJSON lines back into `Record`s and sends them here,
//! where they go to the observer. fd 1 is put back when `run()` returns,
//! which ends the pipe.
//!
//! Readiness: `run()` emits the `layout` record after every probe is
//! attached (its `StopSignals::install()` precedes it) and then, without
//! awaiting anything, scans its baseline and prints `ready`. On the
//! current-thread runtime this task cannot be polled in between, so once it
//! has the `layout` record the tracing is armed: only then does cycling
//! start.
//!
//! The better hook: a `Sink` that also hands every emitted record to a
//! callback (`Sink::emit` is the single place records leave), replacing the
//! pipe and the reader thread with a direct `observer.record(r)`, and a stop
//! handle instead of the self-SIGTERM.
//!
//! Ending: `run()` stops on SIGINT, SIGTERM or `--duration`. When the
//! cycles are done (and the grace window has passed) this sends SIGTERM to
//! its own process; `run()` then drains, judges what is pending and writes
//! its summary. A Ctrl-C or SIGTERM from outside reaches both: `run()`
//! stops, and the cycler sees the stop flag and restores.

use std::{
    fs::File,
    io::{self, BufRead as _, BufReader, Write as _},
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::{
    signal::unix::{signal, SignalKind},
    sync::mpsc::{unbounded_channel, UnboundedSender},
    time::{sleep_until, Instant},
};

use super::{cycle::CycleEvent, observer::StressObserver, progress::Progress};
use crate::{cli::RunArgs, record::Record};

/// fd 1 redirected into a pipe; put back on `restore()` or drop.
struct StdoutPipe {
    saved: Option<OwnedFd>,
}

impl StdoutPipe {
    fn redirect() -> io::Result<(Self, File)> {
        io::stdout().flush()?;
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills two fds on success; dup/dup2 take valid fds.
        unsafe {
            if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
                return Err(io::Error::last_os_error());
            }
            let (read, write) = (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]));
            let saved = libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 3);
            if saved < 0 {
                return Err(io::Error::last_os_error());
            }
            let saved = OwnedFd::from_raw_fd(saved);
            if libc::dup2(write.as_raw_fd(), 1) < 0 {
                return Err(io::Error::last_os_error());
            }
            drop(write); // fd 1 is now the only write end
            Ok((Self { saved: Some(saved) }, File::from(read)))
        }
    }

    fn restore(&mut self) {
        if let Some(saved) = self.saved.take() {
            let _ = io::stdout().flush();
            // SAFETY: both fds are open; this closes the pipe's write end.
            unsafe { libc::dup2(saved.as_raw_fd(), 1) };
        }
    }
}

impl Drop for StdoutPipe {
    fn drop(&mut self) {
        self.restore();
    }
}

fn read_records(pipe: File, tx: UnboundedSender<Record>) {
    for line in BufReader::new(pipe).lines() {
        let Ok(line) = line else { break };
        match serde_json::from_str::<Record>(&line) {
            Ok(r) => {
                if tx.send(r).is_err() {
                    break;
                }
            }
            Err(e) => log::warn!("stress: unreadable record from run: {e}"),
        }
    }
}

/// Interrupts the cycler's sysfs write in progress, once: offlining a block
/// retries page migration until a signal is pending on the writing thread
/// (`offline_pages()`, mm/memory_hotplug.c), which a process-directed
/// Ctrl-C may not be. SIGINT is handled (by tokio's handler) from the
/// moment `traced` starts, so it only makes the write return EINTR.
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
    /// What `run()` returned.
    pub run: anyhow::Result<i32>,
    /// Whether the cycler ran, and how it ended (`None`: never started).
    pub cycled: Option<Result<(), String>>,
    /// Ctrl-C or SIGTERM from outside.
    pub interrupted: bool,
}

/// Runs `run` with `run_args` and, once it is armed, `cycler` on a blocking
/// thread; feeds the observer every record and cycle event. `settle`: how
/// long tracing goes on after the last cycle (verdicts are judged a grace
/// window after a population).
pub async fn traced<F>(
    run_args: RunArgs,
    cycler: F,
    observer: &mut dyn StressObserver,
    progress: &mut Progress,
    settle: Duration,
) -> anyhow::Result<Traced>
where
    F: FnOnce(Arc<AtomicBool>, &mut dyn FnMut(CycleEvent)) + Send + 'static,
{
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let (mut pipe, read_end) = StdoutPipe::redirect()?;
    let (rec_tx, mut rec_rx) = unbounded_channel();
    std::thread::spawn(move || read_records(read_end, rec_tx));

    let run_fut = async move {
        let r = crate::cmd::run::run(run_args).await;
        pipe.restore();
        r
    };

    let drive = async move {
        let stop = Arc::new(AtomicBool::new(false));
        // The cycler's thread while it runs (0: none), and whether it was
        // sent its signal.
        let thread = Arc::new(AtomicU64::new(0));
        let mut nudged = false;
        let (ev_tx, mut ev_rx) = unbounded_channel::<CycleEvent>();
        let mut cycler = Some(cycler);
        let mut ev_tx = Some(ev_tx);
        let (mut records_open, mut events_open) = (true, false);
        let mut cycled: Option<Result<(), String>> = None;
        let mut interrupted = false;
        let mut armed = false;
        let mut end_at: Option<Instant> = None;
        let mut killed = false;
        loop {
            // The cycler is done or never ran, and run() has been told to stop.
            let cycler_idle = cycler.is_none() && !events_open
                || cycler.is_some() && stop.load(Ordering::Relaxed);
            if armed && cycler_idle && end_at.is_none() && !killed {
                end_at = Some(Instant::now() + if interrupted { Duration::ZERO } else { settle });
            }
            if !records_open && !events_open {
                break;
            }
            tokio::select! {
                r = rec_rx.recv(), if records_open => match r {
                    Some(rec) => {
                        if matches!(rec, Record::Layout(_)) && !armed {
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
                        observer.record(&rec);
                    }
                    None => {
                        // run() returned: stop cycling (the cycler restores).
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
                _ = sleep_until(end_at.unwrap_or_else(Instant::now)), if end_at.is_some() && records_open && !killed => {
                    killed = true;
                    // SAFETY: kill(2) on this process with a valid signal.
                    unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
                }
                _ = sigint.recv() => {
                    if !interrupted {
                        progress.line("stress: interrupted: restoring");
                    }
                    interrupted = true;
                    stop.store(true, Ordering::Relaxed);
                    nudge(&thread, &mut nudged);
                }
                _ = sigterm.recv(), if !killed => {
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
