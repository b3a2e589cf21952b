//! `cargo xtask fixtures`: records the replay fixtures
//! (`sync-trace/tests/fixtures/*.ndjson`) again from guest runs, so that they
//! always hold what today's daemon writes. `sync-trace/tests/fixtures.rs`
//! fails when a fixture disagrees with what today's code derives from its
//! raw data; this command is the way to bring them back in line.

use anyhow::{ensure, Context as _, Result};
use clap::Args;

use crate::{
    deps, guest_binary,
    test::{run_scenario, scenarios},
};

/// A fixture: the `run --json` records of one step of a guest scenario, taken
/// only from a run whose checks pass.
struct Fixture {
    file: &'static str,
    scenario: &'static str,
    step: &'static str,
}

const FIXTURES: [Fixture; 3] = [
    // A DIMM at 32 TiB on 6.1 (populate helpers notrace): helper and effect.
    Fixture {
        file: "6.1-hotadd-32T.ndjson",
        scenario: "6.1/4-level/hotadd-32T",
        step: "hotadd",
    },
    // The test module on 6.12: synced, late, never synced, cleared, mismatched.
    Fixture {
        file: "6.12-module.ndjson",
        scenario: "6.12/4-level/nokaslr/module",
        step: "run",
    },
    // A DIMM at 32 TiB on the newest kernel (populate functions traced).
    Fixture {
        file: "newest-hotadd-32T.ndjson",
        scenario: "newest/4-level/hotadd-32T",
        step: "hotadd",
    },
];

#[derive(Debug, Args)]
pub struct FixturesArgs {
    /// Record only the fixtures whose file name contains this text.
    #[arg(long)]
    pub only: Option<String>,
}

pub fn run(args: FixturesArgs) -> Result<i32> {
    deps::ensure_host_packages(deps::VM_PACKAGES)?;
    deps::ensure_host_packages(deps::MODULE_BUILD_PACKAGES)?;
    let root = guest_binary::workspace_root();
    let bin = guest_binary::build_guest_sync_trace(&root)?;
    let all = scenarios::all(true);
    let mut wrote = 0;
    for f in FIXTURES
        .iter()
        .filter(|f| args.only.as_deref().is_none_or(|o| f.file.contains(o)))
    {
        let s = all
            .iter()
            .find(|s| s.name == f.scenario)
            .with_context(|| format!("no scenario {} for {}", f.scenario, f.file))?;
        println!("xtask fixtures: RUN  {} for {}", s.name, f.file);
        let out = run_scenario(s, &bin).with_context(|| format!("recording {}", f.file))?;
        let records: Vec<&str> = out
            .lines_of(f.step)?
            .iter()
            .map(String::as_str)
            .filter(|l| l.starts_with('{'))
            .collect();
        ensure!(
            !records.is_empty(),
            "{}: step `{}` printed no records",
            s.name,
            f.step
        );
        let path = root.join("sync-trace/tests/fixtures").join(f.file);
        std::fs::write(&path, records.join("\n") + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!(
            "xtask fixtures: wrote {} ({} records)",
            path.display(),
            records.len()
        );
        wrote += 1;
    }
    ensure!(wrote > 0, "no fixture matches --only");
    println!("xtask fixtures: review with `git diff sync-trace/tests/fixtures`, then `cargo test -p sync-trace --test fixtures`");
    Ok(0)
}
