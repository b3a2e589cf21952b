//! `cargo xtask vm`: run a script in a guest kernel.

use crate::guest_binary::{build_guest_sync_trace, workspace_root};
use crate::vm::{run_vm_with, HotAdd, KernelId, LocalKernel, VirtioMem, VmSpec};
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct VmArgs {
    /// Guest kernel: 6.1, 6.12, newest (Debian unstable) or 6.1-reverted (6.1 built without
    /// the vmemmap sync fix).
    #[arg(
        long,
        required_unless_present = "kernel_image",
        conflicts_with = "kernel_image"
    )]
    pub kernel: Option<KernelId>,
    /// Boot this bzImage (your own build) instead of a Debian kernel.
    #[arg(long, value_name = "PATH")]
    pub kernel_image: Option<PathBuf>,
    /// Build --module directories against this kernel build tree (or headers directory) of
    /// the --kernel-image; without it, --module fails.
    #[arg(long, value_name = "DIR", requires = "kernel_image")]
    pub kernel_headers: Option<PathBuf>,
    /// Page-table levels in the guest.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(4..=5))]
    pub paging: u8,
    /// Keep kernel address randomisation (default: boot with nokaslr).
    #[arg(long)]
    pub kaslr: bool,
    /// DIMM to plug at the script's next `hotadd` (ADDR:SIZE, e.g. 0x200000000000:128M).
    #[arg(long = "hotadd", value_name = "ADDR:SIZE")]
    pub hotadds: Vec<HotAdd>,
    /// Physical range no DIMM fills that the guest must be able to map, ADDR:SIZE (e.g. for
    /// memremap_pages() in a test module); sets maxmem and phys-bits like a --hotadd there.
    #[arg(long = "device-range", value_name = "ADDR:SIZE")]
    pub device_ranges: Vec<HotAdd>,
    /// virtio-mem device, ADDR:SIZE:REQUESTED (e.g. 0x8000000000:2G:1G); the guest plugs
    /// REQUESTED once it loads virtio_mem (pass --image-module virtio_mem).
    #[arg(long = "virtio-mem", value_name = "ADDR:SIZE:REQUESTED")]
    pub virtio_mem: Option<VirtioMem>,
    /// Module of the kernel image to put, with its dependencies, in /modules/image/ (load
    /// them in the order of /modules/image/order).
    #[arg(long = "image-module", value_name = "NAME")]
    pub image_modules: Vec<String>,
    /// Kbuild module directory to build for the kernel; lands in /modules/.
    #[arg(long = "module", value_name = "DIR")]
    pub modules: Vec<PathBuf>,
    /// Extra file for the guest, HOST:GUEST (GUEST absolute).
    #[arg(long = "file", value_name = "HOST:GUEST", value_parser = parse_file)]
    pub files: Vec<(PathBuf, String)>,
    /// Forward 127.0.0.1:HOST on the host to GUEST in the guest.
    #[arg(long, value_name = "HOST:GUEST", value_parser = parse_forward)]
    pub forward: Option<(u16, u16)>,
    /// Shell script to run in the guest.
    #[arg(long)]
    pub script: PathBuf,
    /// Seconds before the guest is killed.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// Extra kernel command-line argument (repeatable).
    #[arg(long = "append", value_name = "ARG")]
    pub extra_append: Vec<String>,
    /// The script makes the kernel oops (kill a task, not panic): print the
    /// oops and go on instead of stopping the guest.
    #[arg(long)]
    pub expect_oops: bool,
    /// Boot RAM in MiB (default 1024; at most 3072 keeps it below 4 GiB).
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u32).range(256..=3072))]
    pub ram: Option<u32>,
    /// Use this static binary as /bin/sync-trace instead of building it.
    #[arg(long, value_name = "PATH")]
    pub guest_bin: Option<PathBuf>,
}

fn parse_file(s: &str) -> Result<(PathBuf, String), String> {
    let (h, g) = s.split_once(':').ok_or("use HOST:GUEST")?;
    if !g.starts_with('/') {
        return Err("the guest path must be absolute".into());
    }
    Ok((PathBuf::from(h), g.to_string()))
}

fn parse_forward(s: &str) -> Result<(u16, u16), String> {
    let (h, g) = s.split_once(':').ok_or("use HOSTPORT:GUESTPORT")?;
    Ok((
        h.parse().map_err(|e| format!("{e}"))?,
        g.parse().map_err(|e| format!("{e}"))?,
    ))
}

/// Runs the command; returns the script's exit status.
pub fn run(args: VmArgs) -> Result<i32> {
    let script = std::fs::read_to_string(&args.script)
        .with_context(|| format!("cannot read script {}", args.script.display()))?;
    let guest_bin = match args.guest_bin {
        Some(p) => p,
        None => build_guest_sync_trace(&workspace_root())?,
    };
    let local_kernel = args.kernel_image.map(|image| LocalKernel {
        image,
        headers: args.kernel_headers,
    });
    let spec = VmSpec {
        kernel: args.kernel.unwrap_or(KernelId::Local),
        local_kernel,
        paging: args.paging,
        kaslr: args.kaslr,
        hotadds: args.hotadds,
        device_ranges: args.device_ranges,
        virtio_mem: args.virtio_mem,
        nvdimm: None,
        qmp_socket: None,
        image_modules: args.image_modules,
        module_dirs: args.modules,
        files: args.files,
        script,
        forward: args.forward,
        timeout: Duration::from_secs(args.timeout),
        extra_append: args.extra_append,
        expect_oops: args.expect_oops,
        ram_mib: args.ram,
    };
    let outcome = run_vm_with(&spec, &guest_bin, |line| println!("{line}"))?;
    if let Some(oops) = &outcome.oops {
        println!("kernel oops (the run went on):\n{oops}");
    }
    println!(
        "exit status: {} ({} under {})",
        outcome.exit_status, outcome.kernel_version, outcome.accel
    );
    Ok(outcome.exit_status)
}
