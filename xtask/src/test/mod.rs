//! `cargo xtask test`: host checks, then guest scenarios on real Debian
//! kernels. Every failure is collected; the last line counts them.

mod batches;
pub mod browser;
mod bug;
mod exporter;
mod exporter_abuse;
mod faults;
mod guest_tools;
mod host;
mod hotadd;
mod livepatch;
mod module;
mod module_last;
pub mod output;
mod privileges;
mod prometheus;
mod scale;
pub mod scenarios;
mod sections;
mod shapes;

use std::time::Instant;

use anyhow::Result;
use clap::Args;

use crate::{deps, guest_binary, vm};
use output::Output;

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Also run the scenarios beyond the CI set (listed in `docs/testing.md`): the default run
    /// stays a strict subset.
    #[arg(long)]
    pub full: bool,
    /// Run only scenarios whose name contains this text (no host checks).
    #[arg(long)]
    pub only: Option<String>,
    /// Skip fmt, clippy and unit tests.
    #[arg(long)]
    pub no_host: bool,
}

/// Debian packages the tests need on the host, beyond the VM's.
/// `bpftool` goes into the faults scenario's guest (scripts/faults.sh).
const TEST_PACKAGES: &[&str] = &["clang", "llvm", "libbpf-dev", "libc6-dev", "bpftool"];

struct Tally {
    passed: Vec<String>,
    failed: Vec<(String, String)>,
}

impl Tally {
    fn record(&mut self, name: &str, started: Instant, r: Result<()>) {
        let secs = started.elapsed().as_secs_f64();
        match r {
            Ok(()) => {
                println!("xtask test: PASS {name} ({secs:.1} s)");
                self.passed.push(name.to_string());
            }
            Err(e) => {
                println!("xtask test: FAIL {name} ({secs:.1} s): {e:#}");
                self.failed.push((name.to_string(), format!("{e:#}")));
            }
        }
    }
}

pub fn run(args: TestArgs) -> Result<i32> {
    // What the host had before anything was installed: `host/packages-kept` checks at the
    // end that the run removed none of it.
    let installed_before = deps::installed_packages()?;
    deps::ensure_host_packages(TEST_PACKAGES)?;
    deps::ensure_host_packages(deps::VM_PACKAGES)?;
    deps::ensure_host_packages(deps::MODULE_BUILD_PACKAGES)?;
    deps::ensure_host_packages(deps::SID_ROOT_PACKAGES)?;
    let mut tally = Tally {
        passed: vec![],
        failed: vec![],
    };
    if args.only.is_none() && !args.no_host {
        for (name, cargo_args) in host::HOST_CHECKS {
            let t = Instant::now();
            tally.record(name, t, host::run(cargo_args));
        }
    }
    let t = Instant::now();
    let bin = match guest_binary::build_guest_sync_trace(&guest_binary::workspace_root()) {
        Ok(b) => b,
        Err(e) => {
            tally.record("guest-build", t, Err(e));
            return Ok(finish(&tally));
        }
    };
    let wanted = |name: &str| args.only.as_deref().is_none_or(|o| name.contains(o));
    if wanted("host/exporter-replay") {
        let t = Instant::now();
        tally.record("host/exporter-replay", t, exporter::replay_endpoint(&bin));
    }
    if wanted("host/report-browser") {
        let t = Instant::now();
        tally.record("host/report-browser", t, browser::report_in_browser(&bin));
    }
    if wanted("host/exporter-abuse") {
        let t = Instant::now();
        tally.record("host/exporter-abuse", t, exporter_abuse::abuse(&bin));
    }
    if args.only.is_none() && !args.no_host {
        let t = Instant::now();
        tally.record("host/deploy", t, host::deploy());
        let t = Instant::now();
        tally.record("host/unprivileged", t, host::unprivileged(&bin));
        let t = Instant::now();
        tally.record("host/image", t, crate::image::check());
    }
    for s in scenarios::all(args.full) {
        if args.only.as_deref().is_some_and(|o| !s.name.contains(o)) {
            continue;
        }
        let t = Instant::now();
        println!("xtask test: RUN  {}", s.name);
        let r = run_scenario(&s, &bin).map(drop);
        tally.record(&s.name, t, r);
    }
    let name = "6.12/4-level/prometheus";
    if wanted(name) {
        let t = Instant::now();
        println!("xtask test: RUN  {name}");
        tally.record(name, t, exporter::prometheus_scenario(&bin));
    }
    // Host-driven hotplug stress (xtask/src/stress/): only with --full or --only.
    for (name, kernel) in [
        ("6.12/4-level/stress", vm::KernelId::V6_12),
        ("6.1/4-level/stress", vm::KernelId::V6_1),
    ] {
        if (args.full || args.only.is_some()) && wanted(name) {
            let t = Instant::now();
            println!("xtask test: RUN  {name}");
            tally.record(name, t, crate::stress::test_scenario(&bin, kernel));
        }
    }
    let name = "6.12/4-level/stress-inject";
    if (args.full || args.only.is_some()) && wanted(name) {
        let t = Instant::now();
        println!("xtask test: RUN  {name}");
        tally.record(name, t, crate::stress::inject_scenario(&bin));
    }
    let name = "6.1-reverted/4-level/stress-devdax";
    if (args.full || args.only.is_some()) && wanted(name) {
        let t = Instant::now();
        println!("xtask test: RUN  {name}");
        tally.record(name, t, crate::stress::reverted_devdax_scenario(&bin));
    }
    if args.only.is_none() && !args.no_host {
        let t = Instant::now();
        let r = deps::check_none_removed(&installed_before);
        tally.record("host/packages-kept", t, r);
    }
    let ran = tally.passed.len() + tally.failed.len();
    if let Some(o) = args.only.as_deref().filter(|_| ran == 0) {
        println!(
            "xtask test: nothing matches --only {o} (names look like 6.12/4-level/nokaslr/module)"
        );
        return Ok(1);
    }
    Ok(finish(&tally))
}

/// Boots a scenario's guest and checks its output; returns the output of a
/// run that passed.
pub fn run_scenario(s: &scenarios::Scenario, bin: &std::path::Path) -> Result<Output> {
    // TCG occasionally trips over the kernel's own code patching while it
    // boots (an int3 Oops before any script runs); one retry tells that
    // apart from a crash the scenario causes, which repeats.
    let run = || vm::run_vm(&s.spec, bin);
    let out = run().or_else(|e| {
        println!("xtask test: retrying {} once: {e:#}", s.name);
        run()
    })?;
    let mut o = Output::parse(&out.output);
    o.oops = out.oops.clone();
    (s.check)(&o, s.spec.kernel).map_err(|e| {
        // The script's whole output, next to the console log, for a failed check.
        let script_log = out.console_log.with_extension("script.log");
        let saved = std::fs::write(&script_log, &out.output).is_ok();
        e.context(format!(
            "console log: {}{}",
            out.console_log.display(),
            if saved {
                format!(", script output: {}", script_log.display())
            } else {
                String::new()
            }
        ))
    })?;
    Ok(o)
}

fn finish(t: &Tally) -> i32 {
    for (name, why) in &t.failed {
        println!(
            "xtask test: failed: {name}: {}",
            why.lines().next().unwrap_or("")
        );
    }
    println!("{} passed, {} failed", t.passed.len(), t.failed.len());
    if t.failed.is_empty() {
        0
    } else {
        1
    }
}
