//! The `sync-trace` binary: parses the command line and runs a subcommand
//! (see the library, `lib.rs`).

use std::process::ExitCode;

use clap::Parser;
use sync_trace::{cli::Cli, cmd};

/// Exit status for failures (usage errors exit 2, from clap).
const EXIT_ERROR: u8 = 1;

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("warn,sync_trace=info,sync_trace_ebpf=info"),
    )
    .target(env_logger::Target::Stderr)
    .init();
    match cmd::dispatch(cli.command) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(EXIT_ERROR)),
        Err(e) => {
            eprintln!("sync-trace: {}", cmd::one_line(&e));
            ExitCode::from(EXIT_ERROR)
        }
    }
}
