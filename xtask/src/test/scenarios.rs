//! The guest matrix: which kernel, paging, KASLR and DIMMs each scenario
//! boots with, the script it runs and the check of its output.

use std::time::Duration;

use anyhow::Result;

use super::{bug, faults, hotadd, livepatch, module, output::Output, scale, shapes};
use crate::{
    guest_binary::workspace_root,
    vm::{HotAdd, KernelId, VirtioMem, VmSpec},
};

/// Checks a scenario's output; the kernel tells what to expect.
pub type Check = Box<dyn Fn(&Output, KernelId) -> Result<()>>;

pub struct Scenario {
    pub name: String,
    pub spec: VmSpec,
    pub check: Check,
}

const LIB: &str = include_str!("scripts/lib.sh");
const HOTADD: &str = include_str!("scripts/hotadd.sh");
const MODULE: &str = include_str!("scripts/module.sh");
const PROMETHEUS: &str = include_str!("scripts/prometheus.sh");
const DEVMAP: &str = include_str!("scripts/devmap.sh");
const DEVMAP_BUG: &str = include_str!("scripts/devmap-bug.sh");
const VIRTIO_MEM: &str = include_str!("scripts/virtio-mem.sh");
const SCALE: &str = include_str!("scripts/scale.sh");
const FAULTS: &str = include_str!("scripts/faults.sh");
const LIVEPATCH: &str = include_str!("scripts/livepatch.sh");

/// Idle processes of the scale scenario (one PGD each): default run, and the extra one of
/// `--full`.
const SCALE_PROCS: (u64, u64) = (2_000, 10_000);

/// 128 MiB: one memory section (SECTION_SIZE_BITS 27), the smallest DIMM
/// the guest's ACPI hotplug adds.
const DIMM: u64 = 128 << 20;
/// The hot-add layouts of docs/vm.md: a new vmemmap (and direct-map) top-level
/// entry at 32 TiB, a new direct-map entry at 512 GiB.
pub const AT_32T: u64 = 0x2000_0000_0000;
const AT_512G: u64 = 0x80_0000_0000;
/// One DIMM of eight sections at 32 TiB: one arch_add_memory() over many sections.
const DIMM_1G: u64 = 1 << 30;
/// virtio-mem at 512 GiB: 2 GiB of device memory, 1 GiB (eight blocks) plugged when the
/// driver loads.
const VIRTIO_MEM_512G: VirtioMem = VirtioMem {
    addr: AT_512G,
    size: 2 << 30,
    requested: 1 << 30,
};

pub const KERNELS: [KernelId; 3] = [KernelId::V6_1, KernelId::V6_12, KernelId::Newest];

fn spec(kernel: KernelId, paging: u8, kaslr: bool, hotadds: &[u64], script: String) -> VmSpec {
    let mut s = VmSpec::new(kernel, script);
    s.paging = paging;
    s.kaslr = kaslr;
    s.hotadds = hotadds
        .iter()
        .map(|&addr| HotAdd { addr, size: DIMM })
        .collect();
    // A safety net for a hung guest, not a speed check: the module scenario takes about
    // 200 s under TCG on a loaded 2-core host and twice that with more load (seen: the
    // `lossy` step's 8192 traced syncs alone took two minutes with the host's load at 10).
    s.timeout = Duration::from_secs(600);
    s
}

/// A script body with the shared shell functions (`step`, `load_st_populate`, …).
pub fn with_lib(body: &str) -> String {
    script("", body)
}

fn script(vars: &str, body: &str) -> String {
    format!("{vars}\n{LIB}\n{body}")
}

/// A scenario spec by script name, with the test modules the script loads.
pub fn spec_for(kernel: KernelId, paging: u8, kaslr: bool, hotadds: &[u64], which: &str) -> VmSpec {
    let body = match which {
        "prometheus" => PROMETHEUS,
        "module" => MODULE,
        "devmap" => DEVMAP,
        "devmap-bug" => DEVMAP_BUG,
        "virtio-mem" => VIRTIO_MEM,
        "faults" => FAULTS,
        "livepatch" => LIVEPATCH,
        _ => HOTADD,
    };
    let mut s = spec(kernel, paging, kaslr, hotadds, script("", body));
    for module in ["st_populate", "st_livepatch"] {
        if body.contains(&format!("load_{module}")) {
            s.module_dirs
                .push(workspace_root().join("tests/modules").join(module));
        }
    }
    s
}

pub fn name(kernel: KernelId) -> &'static str {
    match kernel {
        KernelId::V6_1 => "6.1",
        KernelId::V6_12 => "6.12",
        KernelId::Newest => "newest",
        KernelId::V6_1Reverted => "6.1-reverted",
        KernelId::Local => "local",
    }
}

/// The hot-plug shapes of real machines (xtask/src/test/shapes.rs). Without `full`, the
/// 1 GiB DIMM runs on 6.12 only and virtio-mem on 6.12 and 6.1 (where its virtio core is
/// modular); `full` adds the others.
fn shapes(full: bool) -> Vec<Scenario> {
    let mut v = Vec::new();
    for k in KERNELS {
        let spec = devmap_spec(k, "devmap");
        v.push(Scenario {
            name: format!("{}/4-level/devmap-32T", name(k)),
            spec,
            check: Box::new(shapes::check_devmap),
        });
    }
    for k in KERNELS {
        if k != KernelId::V6_12 && !full {
            continue;
        }
        let mut spec = spec(k, 4, false, &[], script("IDLE=0", HOTADD));
        spec.hotadds.push(HotAdd {
            addr: AT_32T,
            size: DIMM_1G,
        });
        v.push(Scenario {
            name: format!("{}/4-level/hotadd-1G-32T", name(k)),
            spec,
            check: Box::new(|o, k| shapes::check_dimm_1g(o, k, DIMM_1G)),
        });
    }
    for k in KERNELS {
        if k == KernelId::Newest && !full {
            continue;
        }
        let mut spec = spec_for(k, 4, false, &[], "virtio-mem");
        spec.virtio_mem = Some(VIRTIO_MEM_512G);
        spec.image_modules = vec!["virtio_pci".into(), "virtio_mem".into()];
        v.push(Scenario {
            name: format!("{}/4-level/virtio-mem-512G", name(k)),
            spec,
            check: Box::new(|o, _| shapes::check_virtio_mem(o, VIRTIO_MEM_512G.requested / DIMM)),
        });
    }
    v
}

/// A guest for the st_populate `devmap` action: 4-level, no KASLR, 32 TiB
/// addressable. Nothing is plugged there: the address only has to be valid
/// (phys-bits, maxmem).
fn devmap_spec(kernel: KernelId, which: &str) -> VmSpec {
    let mut spec = spec_for(kernel, 4, false, &[], which);
    spec.device_ranges.push(HotAdd {
        addr: AT_32T,
        size: DIMM,
    });
    spec
}

/// Compound devmap on 6.1 with the vmemmap populate sync taken out: the
/// kernel oopses, and sync-trace reports slot 469 unsynced.
pub fn devmap_bug() -> Scenario {
    let mut spec = devmap_spec(KernelId::V6_1Reverted, "devmap-bug");
    spec.expect_oops = true;
    Scenario {
        name: "6.1-reverted/4-level/devmap-32T".into(),
        spec,
        check: Box::new(|o, _| bug::check_devmap_bug(o)),
    }
}

/// The scale scenario: idle cost with 10 and with `many` processes, and a
/// never-synced population among them (module `never`).
fn scale_scenario(kernel: KernelId, many: u64) -> Scenario {
    let vars = format!("FEW=10 MANY={many} SECS=30");
    let mut s = spec(kernel, 4, false, &[], script(&vars, SCALE));
    s.module_dirs = vec![workspace_root().join("tests/modules/st_populate")];
    // About 60 KiB of kernel memory per idle process.
    s.ram_mib = Some(if many > 4_000 { 3_072 } else { 1_536 });
    s.timeout = Duration::from_secs(600);
    Scenario {
        name: format!("{}/4-level/scale-{many}", name(kernel)),
        spec: s,
        check: Box::new(move |o, _| scale::check_scale(o, many)),
    }
}

/// The guest scenarios of `cargo xtask test`: the CI set, and with `full` the extras of
/// [`full_only`] after it (docs/testing.md lists both).
pub fn all(full: bool) -> Vec<Scenario> {
    let mut v = ci();
    if full {
        v.extend(full_only());
    }
    v
}

/// The default (CI) set: every kernel (6.1, 6.12, newest, 6.1-reverted) and both paging
/// modes, within about 35 minutes on an idle 2-core machine.
fn ci() -> Vec<Scenario> {
    let mut v = Vec::new();

    for k in KERNELS {
        v.push(Scenario {
            name: format!("{}/4-level/hotadd-32T", name(k)),
            spec: spec(k, 4, false, &[AT_32T], script("IDLE=1", HOTADD)),
            check: Box::new(|o, k| {
                hotadd::check_probe(o, k)?;
                hotadd::check_idle(o)?;
                hotadd::check_hotadd_32t(o, k)
            }),
        });
        v.push(Scenario {
            name: format!("{}/4-level/hotadd-512G", name(k)),
            spec: spec(k, 4, false, &[AT_512G], script("IDLE=0", HOTADD)),
            check: Box::new(|o, _| hotadd::check_hotadd_512g(o)),
        });
    }
    for k in KERNELS {
        for paging in [4, 5] {
            for kaslr in [false, true] {
                let mut spec = spec_for(k, paging, kaslr, &[], "module");
                if kaslr {
                    // PTI too (qemu64 is an AMD model, so it is off by default):
                    // 8 KiB PGDs whose second page must not be compared.
                    spec.extra_append.push("pti=on".into());
                }
                v.push(Scenario {
                    name: format!(
                        "{}/{paging}-level/{}/module",
                        name(k),
                        if kaslr { "kaslr-pti" } else { "nokaslr" }
                    ),
                    spec,
                    check: Box::new(move |o, _| module::check_module(o, paging)),
                });
            }
        }
    }
    v.push(Scenario {
        name: "6.12/5-level/hotadd-512G".into(),
        spec: spec(
            KernelId::V6_12,
            5,
            false,
            &[AT_512G],
            script("IDLE=0", HOTADD),
        ),
        check: Box::new(|o, _| hotadd::check_hotadd_5level(o)),
    });
    v.extend(shapes(false));
    v.push(devmap_bug());
    v.push(scale_scenario(KernelId::V6_12, SCALE_PROCS.0));
    v.push(faults_scenario());
    for k in [KernelId::V6_1, KernelId::V6_12] {
        v.push(livepatch_scenario(k));
    }
    v
}

/// A livepatch of arch_sync_kernel_mappings (tests/modules/st_livepatch) enabled before a run
/// and while one traces, on 6.1 and 6.12 (both CONFIG_LIVEPATCH=y; 6.1 is the kernel where a
/// BPF trampoline attached after the patch would bypass it and disable ftrace).
fn livepatch_scenario(kernel: KernelId) -> Scenario {
    Scenario {
        name: format!("{}/4-level/livepatch", name(kernel)),
        spec: spec_for(kernel, 4, false, &[], "livepatch"),
        check: Box::new(|o, _| livepatch::check_livepatch(o)),
    }
}

/// Faults in one boot (6.12, 4-level): each needed capability dropped (util-linux setpriv),
/// exact loss accounting, nothing left behind after
/// `kill -9` or SIGTERM, stdout going away, a fork/exit storm during a hot-add at 32 TiB.
/// Debian's bpftool and util-linux's setpriv, with their libraries, are in the guest.
fn faults_scenario() -> Scenario {
    let mut spec = spec_for(KernelId::V6_12, 4, false, &[AT_32T], "faults");
    // Eleven runs, two `stress` starts and eighteen starts with a capability dropped (three
    // attach) under TCG: about 5 minutes on an idle host, four times that with the host's two
    // CPUs shared by several loaded guests.
    spec.timeout = Duration::from_secs(1500);
    for files in [
        super::guest_tools::bpftool_files(),
        super::guest_tools::setpriv_files(),
    ] {
        match files {
            Ok(files) => {
                // The loader and libc come with both.
                for f in files {
                    if !spec.files.contains(&f) {
                        spec.files.push(f);
                    }
                }
            }
            // The script then fails at its first call of the tool, naming what is missing.
            Err(e) => println!("xtask test: faults: {e:#}"),
        }
    }
    Scenario {
        name: "6.12/4-level/faults".into(),
        spec,
        check: Box::new(|o, _| faults::check_faults(o)),
    }
}

/// What `--full` adds: the redundant hot-plug shapes on the other kernels, the 5-level
/// hot-add on 6.1 and newest, the scale scenario with 10,000 processes, and the livepatch
/// scenario on newest.
fn full_only() -> Vec<Scenario> {
    let ci: Vec<String> = shapes(false).into_iter().map(|s| s.name).collect();
    let mut v: Vec<Scenario> = shapes(true)
        .into_iter()
        .filter(|s| !ci.contains(&s.name))
        .collect();
    for k in [KernelId::V6_1, KernelId::Newest] {
        v.push(Scenario {
            name: format!("{}/5-level/hotadd-512G", name(k)),
            spec: spec(k, 5, false, &[AT_512G], script("IDLE=0", HOTADD)),
            check: Box::new(|o, _| hotadd::check_hotadd_5level(o)),
        });
    }
    v.push(scale_scenario(KernelId::V6_12, SCALE_PROCS.1));
    v.push(livepatch_scenario(KernelId::Newest));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: Vec<Scenario>) -> Vec<String> {
        v.into_iter().map(|s| s.name).collect()
    }

    #[test]
    fn full_runs_strictly_more() {
        let ci = names(all(false));
        let full = names(all(true));
        assert!(
            ci.iter().all(|n| full.contains(n)),
            "--full drops one of {ci:?}"
        );
        assert!(full.len() > ci.len());
        let mut unique = full.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), full.len(), "a scenario name twice: {full:?}");
    }

    #[test]
    fn ci_touches_every_kernel_and_both_paging_modes() {
        let ci = names(all(false));
        for k in ["6.1/", "6.12/", "newest/", "6.1-reverted/"] {
            assert!(ci.iter().any(|n| n.starts_with(k)), "no {k} scenario");
        }
        for p in ["/4-level/", "/5-level/"] {
            assert!(ci.iter().any(|n| n.contains(p)), "no {p} scenario");
        }
    }
}
