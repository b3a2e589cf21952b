//! Running QEMU: the command line (here), the accelerator (`accel`), the memory layout for
//! hot-add (`layout`) and the run with its live serial tails and requests (`run`).

mod accel;
mod layout;
mod run;

pub use accel::{choose_accel, mark_kvm_broken, Accel, KvmFailed};
pub use layout::{memory_layout, MemLayout};
use layout::{GIB, SLOTS};
pub use run::run_qemu;

use crate::mem::{HotAdd, VirtioMem};
use anyhow::{bail, Result};
use std::path::Path;
use std::time::Duration;

/// Boot RAM. 1 GiB sits entirely below 4 GiB on the `pc` machine, so device memory (the
/// hot-add window) starts right at 4 GiB, or at 1 TiB when QEMU moves it (see below).
const RAM: &str = "1G";
/// Lines of console kept for error messages.
const TAIL_LINES: usize = 40;
/// Console markers that end the run with an error.
const PANIC_MARKERS: &[&str] = &["Kernel panic", "BUG:", "Oops"];
/// The markers of an oops that kills one task and leaves the kernel running:
/// tolerated when the run expects one.
const OOPS_MARKERS: &[&str] = &["BUG:", "Oops"];

pub struct QemuConfig<'a> {
    pub vmlinuz: &'a Path,
    pub accel: Accel,
    pub initrd: &'a Path,
    pub paging: u8,
    pub kaslr: bool,
    pub hotadds: &'a [HotAdd],
    /// Other ranges of the hot-add window (device ranges, virtio-mem): see [`memory_layout`].
    pub other_ranges: &'a [HotAdd],
    pub virtio_mem: Option<VirtioMem>,
    /// A cold-plugged NVDIMM (`-machine nvdimm=on`, `-device nvdimm,addr=…`); its range is
    /// one of `other_ranges` too.
    pub nvdimm: Option<HotAdd>,
    /// A second QMP socket for the caller (e.g. hot-add and unplug from `on_line`).
    pub qmp_socket: Option<&'a Path>,
    pub forward: Option<(u16, u16)>,
    pub timeout: Duration,
    pub extra_append: &'a [String],
    /// Boot RAM in MiB; `None`: [`RAM`].
    pub ram_mib: Option<u32>,
    /// Where ttyS0 (kernel console) goes; kept after the run.
    pub console_log: &'a Path,
    /// Temporary directory for the QMP socket, ttyS1 file and QEMU's own stderr.
    pub work_dir: &'a Path,
    /// An oops (not a panic) is part of the scenario: it is recorded, not fatal.
    pub expect_oops: bool,
}

pub struct QemuResult {
    /// ttyS1 lines (without `\r` and without the exit marker line).
    pub lines: Vec<String>,
    pub exit_status: i32,
    /// The console from the first oops line on (at most TAIL_LINES lines),
    /// when the run expected one and it came.
    pub oops: Option<String>,
}

/// The kernel command line.
pub fn kernel_append(cfg: &QemuConfig) -> String {
    let mut a = vec![
        // Kernel messages go to the first serial port, which is captured to the console log.
        "console=ttyS0".to_string(),
        // Reboot at once on panic; with -no-reboot QEMU then exits instead of idling until the
        // timeout.
        "panic=-1".to_string(),
    ];
    if !cfg.kaslr {
        // Fixed region bases (direct map 0xffff888000000000 / vmemmap 0xffffea0000000000 on
        // 4-level), so the hot-add recipes hit known top-level slots.
        a.push("nokaslr".to_string());
    }
    a.extend(cfg.extra_append.iter().cloned());
    a.join(" ")
}

/// The full QEMU argument list.
pub fn qemu_args(cfg: &QemuConfig, qmp_sock: &Path, script_sock: &Path) -> Result<Vec<String>> {
    let layout = memory_layout(cfg.hotadds, cfg.other_ranges)?;
    // A fixed model, the same under TCG and KVM (an AMD one: see memory_layout).
    let mut cpu = "qemu64".to_string();
    match cfg.paging {
        // qemu64 has no LA57, so the kernel stays with 4-level paging.
        4 => {}
        // With LA57 in CPUID, Debian's kernels (CONFIG_X86_5LEVEL=y) switch to 5-level paging.
        5 => cpu += ",+la57",
        p => bail!("paging {p} is not supported: use 4 or 5"),
    }
    let mut mem = cfg.ram_mib.map_or(RAM.to_string(), |m| format!("{m}M"));
    if let Some(l) = &layout {
        // Slots and a maximum make room for pc-dimm hot-add (ACPI memory hotplug).
        mem += &format!(",slots={SLOTS},maxmem={}G", l.maxmem / GIB);
        if let Some(bits) = l.phys_bits {
            // Addresses above 1 TiB need more than qemu64's 40 physical address bits.
            cpu += &format!(",phys-bits={bits}");
        }
        if l.intel_vendor {
            // See MemLayout::intel_vendor: keeps the DIMM window at 4 GiB.
            cpu += ",vendor=GenuineIntel";
        }
    }
    let p = |x: &Path| x.display().to_string();
    let mut args: Vec<String> = [
        "-accel",
        &cfg.accel.to_string(), // see choose_accel
        "-smp",
        "2", // two vCPUs: page-table syncs matter only with more than one CPU
        "-m",
        &mem,
        "-cpu",
        &cpu,
        "-nographic", // no display; serial ports are redirected below
        "-monitor",
        "none",       // nothing on stdio: xtask owns the terminal
        "-no-reboot", // guest reboot (panic=-1) or poweroff -f ends QEMU
        "-kernel",
        &p(cfg.vmlinuz),
        "-initrd",
        &p(cfg.initrd),
        "-append",
        &kernel_append(cfg),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // ttyS0: kernel console → log file. ttyS1: the script's port, a socket xtask connects to
    // (QEMU waits for it before starting the guest): the script's output comes in, the
    // acknowledgements of its checkpoints go out.
    args.extend(["-serial".into(), format!("file:{}", p(cfg.console_log))]);
    args.extend([
        "-chardev".into(),
        format!("socket,id=script,path={},server=on,wait=on", p(script_sock)),
        "-serial".into(),
        "chardev:script".into(),
    ]);
    // QMP for hot-add; wait=off lets the guest start before xtask connects.
    args.extend([
        "-qmp".into(),
        format!("unix:{},server=on,wait=off", p(qmp_sock)),
    ]);
    if let Some(m) = cfg.virtio_mem {
        // Device memory for virtio-mem inside the hot-add window (memory_layout saw its
        // range); the guest plugs `requested-size` of it once the virtio_mem driver loads.
        args.extend([
            "-object".into(),
            format!("memory-backend-ram,id=vmem0,size={}", m.size),
            "-device".into(),
            format!(
                "virtio-mem-pci,id=vm0,memdev=vmem0,node=0,requested-size={},memaddr={:#x}",
                m.requested, m.addr
            ),
        ]);
    }
    if let Some(n) = cfg.nvdimm {
        // An NVDIMM inside the hot-add window (it takes a DIMM slot): the guest's nfit driver
        // finds one label-less region with one raw namespace.
        args.extend([
            "-machine".into(),
            "nvdimm=on".into(),
            "-object".into(),
            format!("memory-backend-ram,id=nv0,size={}", n.size),
            "-device".into(),
            format!("nvdimm,memdev=nv0,id=nvd0,addr={:#x}", n.addr),
        ]);
    }
    if let Some(sock) = cfg.qmp_socket {
        // The caller's own monitor connection (QEMU serves several -qmp sockets).
        args.extend([
            "-qmp".into(),
            format!("unix:{},server=on,wait=off", p(sock)),
        ]);
    }
    if let Some((host, guest)) = cfg.forward {
        // User networking with one forwarded port on the host's loopback; restrict=on cuts the
        // guest off from every other network.
        args.extend([
            "-netdev".into(),
            format!("user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{host}-:{guest}"),
            "-device".into(),
            "virtio-net-pci,netdev=n0".into(),
        ]);
    } else {
        args.extend(["-nic".into(), "none".into()]); // no default e1000
    }
    Ok(args)
}
