//! sync-trace: watches kernel top-level page-table populations and the syncs
//! that copy them into every process page table, on x86_64.

mod audit;
mod caller;
mod cli;
mod clock;
mod detect;
mod evidence;
mod exporter;
mod kallsyms;
mod metrics;
mod model;
mod pairing;
mod privilege;
mod probe;
mod record;
mod replay;
mod run;
mod scan;
mod session;
mod sink;
mod snapshot;
mod stress;
mod summary;
mod text;
mod trace;
mod verify;

use std::{io, process::ExitCode};

use clap::Parser;

use crate::cli::{Cli, Command};

/// Exit status for failures (usage errors exit 2, from clap).
const EXIT_ERROR: u8 = 1;

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("warn,sync_trace=info,sync_trace_ebpf=info"),
    )
    .target(env_logger::Target::Stderr)
    .init();
    let result = match cli.command {
        Command::Probe { json } => probe_cmd(json),
        Command::Audit { json, max_pgds } => audit::audit(json, max_pgds),
        Command::Replay {
            file,
            json,
            grace,
            metrics_addr,
        } => runtime().and_then(|rt| {
            rt.block_on(replay::replay(
                &file,
                json,
                grace.as_nanos() as u64,
                metrics_addr,
            ))
        }),
        Command::Run(args) => runtime().and_then(|rt| rt.block_on(run::run(args))),
        Command::Stress(args) => runtime().and_then(|rt| rt.block_on(stress::stress(args))),
    };
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(EXIT_ERROR)),
        Err(e) => {
            eprintln!("sync-trace: {}", one_line(&e));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// An error chain as one line: `outer: cause: root cause`.
fn one_line(e: &anyhow::Error) -> String {
    e.chain()
        .map(|c| c.to_string().replace('\n', " "))
        .collect::<Vec<_>>()
        .join(": ")
}

fn probe_cmd(json: bool) -> anyhow::Result<i32> {
    let session = session::Session::open(&session::Options {
        capture_stack: true,
        force_log: false,
        ring_bytes: None,
    })?;
    let kernel = session::kernel_release();
    let mut out = io::stdout().lock();
    if json {
        probe::report::print_json(&mut out, &kernel, &session.statuses)?;
    } else {
        probe::report::print_text(&mut out, &kernel, &session.statuses)?;
    }
    // Dropping the session detaches every probe.
    Ok(if probe::any_sync_attached(&session.statuses) {
        0
    } else {
        1
    })
}
