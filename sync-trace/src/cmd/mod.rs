//! The subcommands: each wires the stages of the data path together
//! (kernel → model → output) and returns the process's exit status.

pub mod audit;
pub mod probe;
pub mod replay;
pub mod run;
pub mod stress;

use std::sync::Arc;

use tokio::{
    signal::unix::{signal, Signal, SignalKind},
    sync::watch,
};

use crate::cli::Command;

/// Runs one subcommand; returns its exit status.
pub fn dispatch(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Probe { json } => probe::probe(json),
        Command::Audit { json, max_pgds } => audit::audit(json, max_pgds),
        Command::Replay {
            file,
            json,
            grace,
            metrics_addr,
        } => runtime()?.block_on(replay::replay(
            &file,
            json,
            grace.as_nanos() as u64,
            metrics_addr,
        )),
        Command::Run(args) => runtime()?.block_on(run::run(args)),
        Command::Stress(args) => runtime()?.block_on(stress::stress(args)),
        Command::Capabilities { json } => capabilities(json),
        Command::StressRestoreWatch {
            journal,
            write_timeout,
        } => stress::journal::watch(journal, write_timeout),
    }
}

/// `sync-trace capabilities`.
fn capabilities(json: bool) -> anyhow::Result<i32> {
    use crate::kernel::least_privilege::{
        names, AFTER_ATTACH, DEFAULT_USER, TO_ATTACH, TO_SWITCH_USER,
    };
    let (attach, switch, after) = (
        names(&TO_ATTACH),
        names(&TO_SWITCH_USER),
        names(&AFTER_ATTACH),
    );
    if json {
        println!(
            "{}",
            serde_json::json!({
                "attach": attach,
                "switch_user": switch,
                "after_attach": after,
                "default_user": DEFAULT_USER,
            })
        );
    } else {
        println!("attach: {}", attach.join(" "));
        println!("switch_user: {}", switch.join(" "));
        println!("after_attach: {}", after.join(" "));
        println!("default_user: {DEFAULT_USER}");
    }
    Ok(0)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// An error chain as one line: `outer: cause: root cause`.
pub fn one_line(e: &anyhow::Error) -> String {
    e.chain()
        .map(|c| c.to_string().replace('\n', " "))
        .collect::<Vec<_>>()
        .join(": ")
}

/// Stops what `StopSignals` stops, from inside the process and without a
/// signal (`stress` ends its `run` with it). Clones share one state; a stop
/// is never forgotten, whether it comes before or while anyone waits.
#[derive(Clone, Debug)]
pub struct StopHandle(Arc<watch::Sender<bool>>);

impl Default for StopHandle {
    fn default() -> Self {
        Self(Arc::new(watch::channel(false).0))
    }
}

impl StopHandle {
    pub fn stop(&self) {
        self.0.send_replace(true);
    }

    pub fn is_stopped(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once `stop()` has been called (at once if it was).
    pub async fn stopped(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives as long as `self`: waiting cannot fail.
        let _ = rx.wait_for(|stopped| *stopped).await;
    }
}

/// SIGTERM and SIGINT (Ctrl-C), and an optional `StopHandle`: what stops
/// `run` and a serving `replay`.
pub struct StopSignals {
    term: Signal,
    int: Signal,
    handle: Option<StopHandle>,
}

impl StopSignals {
    /// Installs the handlers (before the work they stop begins).
    pub fn install() -> anyhow::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            handle: None,
        })
    }

    /// Also stops when `handle` is stopped.
    pub fn with_handle(mut self, handle: Option<StopHandle>) -> Self {
        self.handle = handle;
        self
    }

    /// Resolves when either signal arrives or the handle is stopped.
    /// Cancel-safe: it can be polled again in every `select!` round.
    pub async fn recv(&mut self) {
        let handle = self.handle.clone();
        let stopped = async move {
            match handle {
                Some(h) => h.stopped().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
            _ = stopped => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::timeout;

    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn a_stop_before_the_wait_is_kept() {
        rt().block_on(async {
            let h = StopHandle::default();
            assert!(!h.is_stopped());
            h.clone().stop();
            assert!(h.is_stopped());
            timeout(Duration::from_secs(5), h.stopped()).await.unwrap();
        });
    }

    #[test]
    fn the_handle_ends_a_wait_on_the_stop_signals() {
        rt().block_on(async {
            let h = StopHandle::default();
            let mut signals = StopSignals::install().unwrap().with_handle(Some(h.clone()));
            let waited = async {
                // As the event loop does: recv() in a select! with work.
                let mut rounds = 0u32;
                loop {
                    tokio::select! {
                        _ = signals.recv() => break rounds,
                        _ = tokio::time::sleep(Duration::from_millis(1)) => rounds += 1,
                    }
                }
            };
            let stopper = async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                h.stop();
            };
            let (rounds, ()) = timeout(Duration::from_secs(5), async {
                tokio::join!(waited, stopper)
            })
            .await
            .unwrap();
            assert!(rounds > 0);
        });
    }
}
