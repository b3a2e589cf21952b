//! `cargo xtask demo`: boots Debian's 6.12 cloud kernel (4-level paging,
//! no KASLR), runs `sync-trace run` and hot-adds a DIMM at 32 TiB (a new
//! vmemmap and a new direct-map top-level entry) and one at 512 GiB (a new
//! direct-map entry), printing what sync-trace reports. With `--bug`, the
//! same on Debian's 6.1 built with the fix of "mm: introduce and use
//! {pgd,p4d}_populate_kernel()" taken out (built once, cached), where
//! compound device memory at 32 TiB gets a vmemmap entry nobody syncs.

use std::time::Duration;

use anyhow::Result;

use crate::{
    deps,
    guest_binary::{build_guest_sync_trace, workspace_root},
    vm::{run_vm_with, HotAdd, KernelId, VmSpec},
};

const SCRIPT: &str = include_str!("demo.sh");
const BUG_SCRIPT: &str = include_str!("demo-bug.sh");

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Show the bug: Debian's 6.1 without the vmemmap populate sync (built from
    /// linux-source-6.1 on first use: minutes), compound devmap at 32 TiB.
    #[arg(long)]
    pub bug: bool,
}

/// 128 MiB: one memory section, the smallest DIMM ACPI hotplug adds.
const DIMM: u64 = 128 << 20;

pub fn run(args: DemoArgs) -> Result<i32> {
    deps::ensure_host_packages(&["clang", "llvm", "libbpf-dev", "libc6-dev"])?;
    deps::ensure_host_packages(deps::VM_PACKAGES)?;
    let bin = build_guest_sync_trace(&workspace_root())?;
    if args.bug {
        let mut spec = crate::test::scenarios::devmap_bug().spec;
        spec.script = crate::test::scenarios::with_lib(BUG_SCRIPT);
        let out = run_vm_with(&spec, &bin, |line| println!("{line}"))?;
        return Ok(out.exit_status);
    }
    let mut spec = VmSpec::new(KernelId::V6_12, SCRIPT);
    spec.hotadds = vec![
        HotAdd {
            addr: 0x2000_0000_0000,
            size: DIMM,
        }, // 32 TiB
        HotAdd {
            addr: 0x80_0000_0000,
            size: DIMM,
        }, // 512 GiB
    ];
    spec.timeout = Duration::from_secs(300);
    let out = run_vm_with(&spec, &bin, |line| println!("{line}"))?;
    Ok(out.exit_status)
}
