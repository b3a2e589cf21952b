//! The `sync-trace` binary: parses the command line and runs a subcommand
//! (see the library, `lib.rs`).

use std::process::ExitCode;

use clap::Parser;
use sync_trace::{cli::Cli, cmd};

/// Exit status for failures.
const EXIT_ERROR: u8 = 1;
/// Exit status for usage errors (as clap's).
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    sync_trace::startup_phases::begin();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version: stdout, 0
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            e.exit()
        }
        Err(e) => {
            eprintln!("{}", sync_trace::cli::usage_error_line(&e, &args));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    sync_trace::startup_phases::mark("arguments");
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
