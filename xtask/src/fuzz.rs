//! `cargo xtask fuzz`: the fuzz targets of sync-trace-fuzz (fuzz/) under
//! libFuzzer, coverage-guided, on the stable toolchain.
//!
//! cargo-fuzz's usual build needs nightly for its sanitizers; without a
//! sanitizer, coverage guidance needs only LLVM's SanitizerCoverage pass,
//! which stable rustc runs with `-Cpasses=sancov-module` and the
//! `-Cllvm-args` below (the flags cargo-fuzz passes for `--sanitizer none`).
//! libfuzzer-sys builds libFuzzer itself from its C++ source. Debug
//! assertions and overflow checks stay on, so an overflow is a crash.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::{cmd, guest_binary::workspace_root};

/// The targets (fuzz/Cargo.toml's binaries; sync_trace_fuzz::TARGETS).
pub const TARGETS: [&str; 5] = ["ring", "scan", "kallsyms", "replay", "cli"];

/// SanitizerCoverage as cargo-fuzz sets it: 8-bit edge counters and the PC
/// table (coverage), comparison tracing (libFuzzer learns the constants a
/// decoder compares with), `--cfg fuzzing`.
const RUSTFLAGS: &str = "-Cpasses=sancov-module \
    -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
    -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares \
    --cfg fuzzing -Cdebug-assertions -Coverflow-checks";

/// The host triple: an explicit `--target` keeps RUSTFLAGS off build
/// scripts and proc macros (they need no coverage).
const TRIPLE: &str = "x86_64-unknown-linux-gnu";

/// Bounds of one input: a hang is an input slower than this, memory past
/// this is a failure (libFuzzer's -timeout and -rss_limit_mb).
const TIMEOUT_S: u32 = 10;
const RSS_LIMIT_MB: u32 = 1024;

#[derive(Debug, Args)]
pub struct FuzzArgs {
    /// Inputs per target.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub runs: u64,
    /// Only this target (ring, scan, kallsyms, replay, cli); repeatable.
    #[arg(long = "target", value_parser = clap::builder::PossibleValuesParser::new(TARGETS))]
    pub targets: Vec<String>,
}

/// What one target's run did.
#[derive(Debug)]
pub struct TargetRun {
    pub target: String,
    pub inputs: u64,
    pub seconds: f64,
    pub peak_rss_mb: u64,
    pub corpus: u64,
}

pub fn run(args: FuzzArgs) -> Result<i32> {
    let root = workspace_root();
    let dir = root.join("target/fuzz");
    let bins = build(&root, &dir)?;
    let corpus = dir.join("corpus");
    cmd::output(Command::new(build_seeds(&root)?).arg(&corpus))?;
    let targets: Vec<&str> = if args.targets.is_empty() {
        TARGETS.to_vec()
    } else {
        TARGETS
            .into_iter()
            .filter(|t| args.targets.iter().any(|a| a == t))
            .collect()
    };
    println!("xtask fuzz: {} inputs per target", args.runs);
    let mut runs = Vec::new();
    for t in targets {
        let r = fuzz_one(&bins, &dir, t, args.runs)?;
        println!(
            "xtask fuzz: {:<9} {:>10} inputs in {:>7.1} s ({:>8.0}/s), peak RSS {} MiB, corpus {}",
            r.target,
            r.inputs,
            r.seconds,
            r.inputs as f64 / r.seconds.max(1e-3),
            r.peak_rss_mb,
            r.corpus
        );
        runs.push(r);
    }
    let total: u64 = runs.iter().map(|r| r.inputs).sum();
    println!(
        "xtask fuzz: {} targets, {total} inputs, 0 crashes, 0 hangs, 0 out-of-memory",
        runs.len()
    );
    Ok(0)
}

/// Builds the instrumented targets; returns their directory.
pub fn build(root: &Path, dir: &Path) -> Result<PathBuf> {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root)
        .args(["build", "--release", "-p", "sync-trace-fuzz"])
        .args(["--features", "libfuzzer", "--bins", "--target", TRIPLE])
        .arg("--target-dir")
        .arg(dir)
        .env("RUSTFLAGS", RUSTFLAGS)
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    let t = Instant::now();
    let status = c
        .status()
        .with_context(|| format!("cannot run {}", cmd::describe(&c)))?;
    if !status.success() {
        bail!("building the fuzz targets failed ({status}): see cargo's output above");
    }
    println!(
        "xtask fuzz: targets built in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    Ok(dir.join(TRIPLE).join("release"))
}

/// Builds the `seeds` program without coverage instrumentation (it does not
/// link libFuzzer, which defines the instrumentation's hooks), in the
/// workspace's debug target dir that `cargo test` already filled.
fn build_seeds(root: &Path) -> Result<PathBuf> {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root)
        .args(["build", "-p", "sync-trace-fuzz", "--features", "seeds"])
        .args(["--bin", "seeds"])
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    let status = c
        .status()
        .with_context(|| format!("cannot run {}", cmd::describe(&c)))?;
    if !status.success() {
        bail!("building the fuzz seeds program failed ({status}): see cargo's output above");
    }
    Ok(root.join("target/debug/seeds"))
}

/// Runs one target for `runs` inputs from its corpus; an error names the
/// crash, hang or memory overrun and the input libFuzzer saved.
pub fn fuzz_one(bins: &Path, dir: &Path, target: &str, runs: u64) -> Result<TargetRun> {
    let corpus = dir.join("corpus").join(target);
    let artifacts = dir.join("artifacts").join(target);
    std::fs::create_dir_all(&artifacts)?;
    let max_len = if target == "scan" {
        64 * 1024
    } else {
        16 * 1024
    };
    let mut c = Command::new(bins.join(target));
    c.arg(&corpus)
        .arg(format!("-runs={runs}"))
        .arg(format!("-max_len={max_len}"))
        .arg(format!("-timeout={TIMEOUT_S}"))
        .arg(format!("-rss_limit_mb={RSS_LIMIT_MB}"))
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg("-print_final_stats=1");
    let t = Instant::now();
    let out = cmd::output_any(&mut c, None)?;
    let seconds = t.elapsed().as_secs_f64();
    let log = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let why = log
            .lines()
            .find(|l| l.contains("ERROR: libFuzzer") || l.starts_with("thread '"))
            .unwrap_or("(no libFuzzer error line)");
        let input = log
            .lines()
            .find_map(|l| l.split_once("Test unit written to ").map(|(_, p)| p))
            .unwrap_or("(none saved)");
        let panic = log
            .lines()
            .skip_while(|l| !l.starts_with("thread '"))
            .nth(1)
            .unwrap_or("");
        bail!(
            "fuzz target {target} failed: {why} {panic} (input: {input}; rerun: {} {input})",
            bins.join(target).display()
        );
    }
    let stat = |name: &str| {
        log.lines()
            .find_map(|l| l.strip_prefix(&format!("stat::{name}:")))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    Ok(TargetRun {
        target: target.to_string(),
        inputs: stat("number_of_executed_units")
            .with_context(|| format!("fuzz target {target}: libFuzzer printed no input count"))?,
        seconds,
        peak_rss_mb: stat("peak_rss_mb").unwrap_or(0),
        corpus: std::fs::read_dir(&corpus)
            .map(|d| d.count() as u64)
            .unwrap_or(0),
    })
}
