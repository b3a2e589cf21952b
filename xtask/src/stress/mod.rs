//! `cargo xtask stress`: a guest's hotplug paths driven from the host over QMP while
//! `sync-trace stress` (or `run`) traces inside. The guest script (stress.sh) calls
//! `checkpoint NAME` at each moment the host must act; the host plugs and unplugs DIMMs,
//! grows and shrinks virtio-mem there, then acknowledges. docs/stress.md, "From the host".

pub mod guest;
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
    /// Seconds before the guest is killed.
    #[arg(long, default_value_t = 1800)]
    pub timeout: u64,
    /// Use this static binary as /bin/sync-trace instead of building it.
    #[arg(long, value_name = "PATH")]
    pub guest_bin: Option<PathBuf>,
}

/// Runs the command: the guest's exit code (0 clean, 3 found, 1 error).
pub fn run(args: StressArgs) -> Result<i32> {
    let guest_bin = match &args.guest_bin {
        Some(p) => p.clone(),
        None => build_guest_sync_trace(&workspace_root())?,
    };
    let o = run_stress(&args, &guest_bin, false)?;
    let dir = workspace_root().join("target/stress");
    std::fs::create_dir_all(&dir)?;
    // No report of an earlier run may stay beside this one's.
    for old in ["stress.json", "stress.html", "run.ndjson"] {
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
            match matches_plan(&args, &o, s) {
                Ok(()) => println!("xtask stress: populations match the plan, each paired"),
                Err(e) => println!("xtask stress: populations differ from the plan: {e:#}"),
            }
            println!("verdict: {}", s.verdict);
        }
        Err(e) => println!("verdict: ERROR: {e:#}"),
    }
    println!("exit status: {} ({})", o.exit_status, o.kernel_version);
    Ok(match o.exit_status {
        0 if !o.host_errors.is_empty() || s.is_err() => 1,
        st => st,
    })
}

/// The `--full` / `--only stress` scenario: three cycles over all paths on 6.12, 4-level.
pub fn test_scenario(bin: &Path) -> Result<()> {
    let args = StressArgs {
        kernel: KernelId::V6_12,
        paging: 4,
        kaslr: false,
        cycles: 3,
        paths: vec![
            HotplugPath::Dimm,
            HotplugPath::VirtioMem,
            HotplugPath::Nvdimm,
        ],
        timeout: 1800,
        guest_bin: Some(bin.to_path_buf()),
    };
    let o = run_stress(&args, bin, true)?;
    check(&args, &o).map_err(|e| {
        let log = std::env::temp_dir().join("sync-trace-xstress-test.log");
        let _ = std::fs::write(&log, &o.output);
        e.context(format!("script output: {}", log.display()))
    })
}
