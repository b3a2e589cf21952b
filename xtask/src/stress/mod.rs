//! `cargo xtask stress`: a guest's hotplug paths driven from the host over QMP while
//! `sync-trace stress` (or `run`) traces inside. The guest script (stress.sh) calls
//! `checkpoint NAME` at each moment the host must act; the host plugs and unplugs DIMMs,
//! grows and shrinks virtio-mem there, then acknowledges. docs/stress.md, "From the host".

pub mod crash;
pub mod guest;
pub mod inject;
pub mod plan;
pub mod report;

use self::guest::run_stress;
use self::plan::expected;
use self::report::{check, layout_of, matches_plan, setup_populations, setup_records, summarize};

use crate::guest_binary::{build_guest_sync_trace, workspace_root};
use crate::vm::KernelId;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// The hotplug paths the run drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum HotplugPath {
    /// pc-dimm: device_add, online, offline, device_del.
    Dimm,
    /// virtio-mem-pci grown and shrunk with qom-set requested-size.
    VirtioMem,
    /// NVDIMM at 32 TiB: namespace to device-dax, then devdax <-> system-ram (kmem).
    Nvdimm,
}

impl HotplugPath {
    pub(crate) fn name(self) -> &'static str {
        match self {
            HotplugPath::Dimm => "dimm",
            HotplugPath::VirtioMem => "virtio-mem",
            HotplugPath::Nvdimm => "nvdimm",
        }
    }
}

/// Faults a run adds on purpose, to show what the report makes of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Inject {
    /// After cycle 1, the st_populate test module (tests/modules/st_populate) writes a
    /// top-level entry and never syncs it: the verdict must be 3, with that slot unsynced.
    NeverSync,
    /// After the cycles, two `sync-trace stress` runs whose Nth sysfs write fails: each
    /// must exit 1 and leave every block and dax0.0 as it found them.
    CycleError,
}

impl Inject {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Inject::NeverSync => "never-sync",
            Inject::CycleError => "cycle-error",
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct StressArgs {
    /// Guest kernel: 6.1, 6.12, newest or 6.1-reverted.
    #[arg(long, default_value = "6.12")]
    pub kernel: KernelId,
    /// Page-table levels in the guest.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(4..=5))]
    pub paging: u8,
    /// Keep kernel address randomisation (the plan then follows the bases the guest reports).
    #[arg(long)]
    pub kaslr: bool,
    /// Hotplug cycles (each: every DIMM in and out, virtio-mem grown and shrunk).
    #[arg(long, default_value_t = 3)]
    pub cycles: u32,
    /// Paths to drive, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "dimm,virtio-mem,nvdimm")]
    pub paths: Vec<HotplugPath>,
    /// Switch the NVDIMM to device-dax from a child process while `sync-trace stress`
    /// already cycles the virtio-mem blocks (needs --paths virtio-mem,nvdimm), and stop
    /// there: for a kernel that oopses on that path, whose report is wanted anyway.
    #[arg(long)]
    pub setup_under_stress: bool,
    /// Faults to add, comma-separated (cycle-error needs the virtio-mem and nvdimm paths).
    #[arg(long, value_delimiter = ',')]
    pub inject: Vec<Inject>,
    /// Seconds before the guest is killed.
    #[arg(long, default_value_t = 1800)]
    pub timeout: u64,
    /// Use this static binary as /bin/sync-trace instead of building it.
    #[arg(long, value_name = "PATH")]
    pub guest_bin: Option<PathBuf>,
}

/// Runs the command: the guest's exit code (0 clean, 3 found, 1 error).
pub fn run(args: StressArgs) -> Result<i32> {
    let both =
        args.paths.contains(&HotplugPath::VirtioMem) && args.paths.contains(&HotplugPath::Nvdimm);
    if args.inject.contains(&Inject::CycleError) && !both {
        anyhow::bail!("--inject cycle-error cycles virtio-mem blocks and dax0.0: give --paths with virtio-mem and nvdimm");
    }
    if args.setup_under_stress && !both {
        anyhow::bail!("--setup-under-stress cycles virtio-mem blocks while the NVDIMM is switched: give --paths virtio-mem,nvdimm");
    }
    if args.setup_under_stress && !args.inject.is_empty() {
        anyhow::bail!("--setup-under-stress ends the run after the switch: leave out --inject");
    }
    let guest_bin = match &args.guest_bin {
        Some(p) => p.clone(),
        None => build_guest_sync_trace(&workspace_root())?,
    };
    let o = run_stress(&args, &guest_bin, false)?;
    let dir = workspace_root().join("target/stress");
    std::fs::create_dir_all(&dir)?;
    // No report of an earlier run may stay beside this one's.
    for old in [
        "stress.json",
        "stress.html",
        "stress-early.html",
        "run.ndjson",
    ] {
        let _ = std::fs::remove_file(dir.join(old));
    }
    for (name, bytes) in &o.files {
        let p = dir.join(name);
        std::fs::write(&p, bytes).with_context(|| format!("cannot write {}", p.display()))?;
        println!("xtask stress: wrote {}", p.display());
    }
    for e in &o.host_errors {
        println!("xtask stress: host action failed: {e}");
    }
    let s = summarize(&o.files);
    let layout = layout_of(&args, &o);
    let (setup, during) = expected(&layout, &args.paths);
    println!(
        "xtask stress: plan (direct map at {:#x}, vmemmap at {:#x}): new entries at NVDIMM setup {setup:?}, in the hot-add cycles {during:?}",
        layout.direct, layout.vmemmap
    );
    if args.paths.contains(&HotplugPath::Nvdimm) {
        let got = setup_populations(&o.output);
        println!("xtask stress: NVDIMM setup populated {got:?}");
        let (calls, records, lost) = setup_records(&o.output);
        println!(
            "xtask stress: NVDIMM setup: {calls} populate calls in {records} call records, {lost} kernel records lost"
        );
    }
    match &s {
        Ok(s) => {
            println!("xtask stress: report slots {:?}", s.slots);
            println!(
                "xtask stress: kernel records lost while cycling: {}",
                s.lost
            );
            if args.setup_under_stress {
                // No setup section: the NVDIMM's entries are in the stress report.
                println!("xtask stress: not compared with the plan (--setup-under-stress)");
            } else {
                match matches_plan(&args, &o, s) {
                    Ok(()) => println!("xtask stress: populations match the plan, each paired"),
                    Err(e) => println!("xtask stress: populations differ from the plan: {e:#}"),
                }
            }
            println!("verdict: {}", s.verdict);
        }
        Err(e) => println!("verdict: ERROR: {e:#}"),
    }
    if args.setup_under_stress {
        match crash::check(&args, &o) {
            Ok(()) => println!("xtask stress: the device-dax switch's missed sync was reported (exit 3, vmemmap slot unsynced, report written during the run)"),
            Err(e) => println!("xtask stress: device-dax switch under stress: {e:#}"),
        }
    }
    if !args.inject.is_empty() {
        match inject::check(&args, &o) {
            Ok(()) => println!("xtask stress: the injected faults were reported as expected"),
            Err(e) => println!("xtask stress: the injected faults: {e:#}"),
        }
    }
    println!("exit status: {} ({})", o.exit_status, o.kernel_version);
    Ok(match o.exit_status {
        0 if !o.host_errors.is_empty() || s.is_err() => 1,
        st => st,
    })
}

/// The `--full` / `--only stress` scenarios: three cycles over all paths on `kernel`
/// (6.12, 6.1), 4-level.
pub fn test_scenario(bin: &Path, kernel: KernelId) -> Result<()> {
    let args = StressArgs {
        kernel,
        paging: 4,
        kaslr: false,
        cycles: 3,
        paths: vec![
            HotplugPath::Dimm,
            HotplugPath::VirtioMem,
            HotplugPath::Nvdimm,
        ],
        setup_under_stress: false,
        inject: vec![],
        timeout: 1800,
        guest_bin: Some(bin.to_path_buf()),
    };
    let o = run_retrying(&args, bin)?;
    check(&args, &o).map_err(|e| keep_output(e, &o, &format!("test-{kernel}")))
}

/// A scenario's run. TCG occasionally trips over the kernel's own code patching while it
/// boots (an Oops in an initcall, before the script and any host action); one retry tells
/// that apart from a crash the run causes, which repeats (as the other guest scenarios do).
fn run_retrying(args: &StressArgs, bin: &Path) -> Result<guest::StressOutcome> {
    run_stress(args, bin, true).or_else(|e| {
        println!("xtask test: retrying the stress run once: {e:#}");
        run_stress(args, bin, true)
    })
}

/// The script's output kept for a failed check.
fn keep_output(e: anyhow::Error, o: &guest::StressOutcome, what: &str) -> anyhow::Error {
    let log = std::env::temp_dir().join(format!("sync-trace-xstress-{what}.log"));
    let _ = std::fs::write(&log, &o.output);
    e.context(format!("script output: {}", log.display()))
}

/// The `--full` / `--only stress-inject` scenario on 6.12, 4-level: two cycles over
/// virtio-mem and the NVDIMM with a never-synced population after cycle 1 (verdict 3, that
/// slot unsynced, the plan's all paired), then two stress runs with a forced error
/// mid-cycle (exit 1, every block and dax0.0 as found). DIMMs are left out: their path is
/// checked by the clean scenario and adds nothing to these two.
pub fn inject_scenario(bin: &Path) -> Result<()> {
    let args = StressArgs {
        kernel: KernelId::V6_12,
        paging: 4,
        kaslr: false,
        cycles: 2,
        paths: vec![HotplugPath::VirtioMem, HotplugPath::Nvdimm],
        setup_under_stress: false,
        inject: vec![Inject::NeverSync, Inject::CycleError],
        timeout: 1800,
        guest_bin: Some(bin.to_path_buf()),
    };
    let o = run_retrying(&args, bin)?;
    inject::check(&args, &o).map_err(|e| keep_output(e, &o, "inject"))
}

/// The `--full` / `--only stress-devdax` scenario on 6.1-reverted, 4-level: the NVDIMM
/// switched to device-dax under `sync-trace stress` (`--setup-under-stress`); the kernel
/// misses the vmemmap sync and the switch's writer oopses.
pub fn reverted_devdax_scenario(bin: &Path) -> Result<()> {
    let args = StressArgs {
        kernel: KernelId::V6_1Reverted,
        paging: 4,
        kaslr: false,
        cycles: 1,
        paths: vec![HotplugPath::VirtioMem, HotplugPath::Nvdimm],
        setup_under_stress: true,
        inject: vec![],
        timeout: 1800,
        guest_bin: Some(bin.to_path_buf()),
    };
    let o = run_retrying(&args, bin)?;
    crash::check(&args, &o).map_err(|e| keep_output(e, &o, "devdax"))
}
