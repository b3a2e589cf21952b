//! The subcommands: each wires the stages of the data path together
//! (kernel → model → output) and returns the process's exit status.

pub mod audit;
pub mod probe;
pub mod replay;
pub mod run;
pub mod stress;

use tokio::signal::unix::{signal, Signal, SignalKind};

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
    }
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

/// SIGTERM and SIGINT (Ctrl-C): what stops `run` and a serving `replay`.
pub struct StopSignals {
    term: Signal,
    int: Signal,
}

impl StopSignals {
    /// Installs the handlers (before the work they stop begins).
    pub fn install() -> anyhow::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Resolves when either signal arrives.
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
