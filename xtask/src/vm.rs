//! The VM harness's entry point for other xtask code: one spec in, the script's output out.

use crate::deps;
use crate::initramfs::{self, InitramfsSpec};
use crate::kernels;
use crate::modules;
use crate::qemu::{self, QemuConfig};
use anyhow::{bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use crate::kernels::{KernelId, LocalKernel};
pub use crate::mem::{parse_size, HotAdd, VirtioMem};

#[derive(Debug, Clone)]
pub struct VmSpec {
    /// The Debian kernel; [`KernelId::Local`] with `local_kernel` set for the user's own.
    pub kernel: KernelId,
    /// The user's bzImage (and headers) when `kernel` is [`KernelId::Local`].
    pub local_kernel: Option<LocalKernel>,
    /// 4 or 5 (page-table levels).
    pub paging: u8,
    pub kaslr: bool,
    /// Done in order, one per `hotadd` call of the script.
    pub hotadds: Vec<HotAdd>,
    /// Guest-physical ranges no DIMM fills that the guest must be able to map (e.g. for
    /// `memremap_pages()` in a test module): they set `maxmem` and `phys-bits` as a DIMM there
    /// would.
    pub device_ranges: Vec<HotAdd>,
    /// A virtio-mem device present from boot.
    pub virtio_mem: Option<VirtioMem>,
    /// A cold-plugged NVDIMM (`ADDR:SIZE`): one label-less pmem region in the guest.
    pub nvdimm: Option<HotAdd>,
    /// Where QEMU also serves a QMP socket for the caller (connect with
    /// [`crate::qmp::Qmp::connect`] from `on_line`, e.g. at a checkpoint).
    pub qmp_socket: Option<PathBuf>,
    /// Modules of the kernel image (names as in `modules.dep`), put with their dependencies
    /// in /modules/image/ and listed in load order in /modules/image/order (not loaded).
    pub image_modules: Vec<String>,
    /// Kbuild module directories, built for the kernel and put in /modules/.
    pub module_dirs: Vec<PathBuf>,
    /// Host file → absolute guest path.
    pub files: Vec<(PathBuf, String)>,
    /// Shell script run by the guest's /init with busybox sh.
    pub script: String,
    /// (host port, guest port) forwarded on 127.0.0.1.
    pub forward: Option<(u16, u16)>,
    pub timeout: Duration,
    pub extra_append: Vec<String>,
    /// The script makes the kernel oops (kill a task, not panic): the oops is
    /// kept in the outcome instead of failing the run.
    pub expect_oops: bool,
    /// Boot RAM in MiB (default 1024). Stays below 4 GiB up to 3072, so the
    /// hot-add window does not move.
    pub ram_mib: Option<u32>,
}

impl VmSpec {
    pub fn new(kernel: KernelId, script: impl Into<String>) -> VmSpec {
        VmSpec {
            kernel,
            local_kernel: None,
            paging: 4,
            kaslr: false,
            hotadds: Vec::new(),
            device_ranges: Vec::new(),
            virtio_mem: None,
            nvdimm: None,
            qmp_socket: None,
            image_modules: Vec::new(),
            module_dirs: Vec::new(),
            files: Vec::new(),
            script: script.into(),
            forward: None,
            timeout: Duration::from_secs(300),
            extra_append: Vec::new(),
            expect_oops: false,
            ram_mib: None,
        }
    }

    /// Guest-physical ranges beyond boot RAM that are not DIMMs: device ranges and
    /// virtio-mem's memory.
    pub fn other_ranges(&self) -> Vec<HotAdd> {
        let mut v = self.device_ranges.clone();
        v.extend(self.virtio_mem.map(|m| m.range()));
        v.extend(self.nvdimm);
        v
    }
}

#[derive(Debug, Clone)]
pub struct VmOutcome {
    /// The script's stdout+stderr (ttyS1), one `\n` per line.
    pub output: String,
    pub exit_status: i32,
    /// Kernel console log (kept in `cache/runs/`).
    pub console_log: PathBuf,
    /// `uname -r` of the guest kernel.
    pub kernel_version: String,
    /// The accelerator the guest ran under.
    pub accel: qemu::Accel,
    /// The oops report, when the spec expected one and it came.
    pub oops: Option<String>,
}

/// Runs the spec's script in a guest; see [`run_vm_with`].
pub fn run_vm(spec: &VmSpec, guest_bin: &Path) -> Result<VmOutcome> {
    run_vm_with(spec, guest_bin, |_| {})
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);
impl TempDir {
    fn new(tag: &str) -> Result<TempDir> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let p =
            std::env::temp_dir().join(format!("sync-trace-{tag}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&p).with_context(|| format!("cannot create {}", p.display()))?;
        Ok(TempDir(p))
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Fetches the kernel, builds modules and the initramfs, boots the guest and runs the script;
/// `on_line` sees each output line as soon as the guest prints it. A script that fails is not
/// an error (see `exit_status`); a crash, timeout or harness problem is.
pub fn run_vm_with(
    spec: &VmSpec,
    guest_bin: &Path,
    mut on_line: impl FnMut(&str),
) -> Result<VmOutcome> {
    // Refuse impossible hot-adds before any download.
    let layout = qemu::memory_layout(&spec.hotadds, &spec.other_ranges())?;
    deps::ensure_host_packages(deps::VM_PACKAGES)?;
    let t0 = Instant::now();
    let kernel = match (&spec.local_kernel, spec.kernel) {
        (Some(local), KernelId::Local) => kernels::local_kernel(local)?,
        (None, KernelId::Local) => bail!("the local kernel needs its image: pass --kernel-image"),
        (Some(_), k) => bail!("a kernel image and the {k} kernel at once: pick one"),
        (None, k) => {
            kernels::fetch_kernel(k).with_context(|| format!("cannot get the {k} kernel"))?
        }
    };
    let mut kos = Vec::new();
    for dir in &spec.module_dirs {
        kos.extend(modules::build_module(&kernel, dir)?);
    }
    let boot_modules = match spec.forward {
        Some(_) => modules::nic_modules(&kernel)?,
        None => Vec::new(),
    };
    let names: Vec<&str> = spec.image_modules.iter().map(String::as_str).collect();
    let image_modules = modules::in_load_order(&kernel, &names)?;
    let tmp = TempDir::new("vm")?;
    let initrd = tmp.0.join("initramfs.cpio");
    initramfs::write_initramfs(
        &initrd,
        &InitramfsSpec {
            guest_bin,
            script: &spec.script,
            files: &spec.files,
            modules: &kos,
            boot_modules: &boot_modules,
            image_modules: &image_modules,
            network: spec.forward.is_some(),
        },
    )?;
    let runs = kernels::cache_dir().join("runs");
    fs::create_dir_all(&runs)?;
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let console_log = runs.join(format!("{stamp}-{}.console.log", kernel.version));
    let (mut accel, mut why) = qemu::choose_accel(spec.paging, layout.as_ref());
    let t1 = Instant::now();
    let res = loop {
        eprintln!(
            "xtask: booting {} (paging {}, kaslr {}) under {accel} ({why}), prepared in {:.1} s; console: {}",
            kernel.version,
            spec.paging,
            if spec.kaslr { "on" } else { "off" },
            t0.elapsed().as_secs_f64(),
            console_log.display()
        );
        let cfg = QemuConfig {
            vmlinuz: &kernel.vmlinuz,
            accel,
            initrd: &initrd,
            paging: spec.paging,
            kaslr: spec.kaslr,
            hotadds: &spec.hotadds,
            other_ranges: &spec.other_ranges(),
            virtio_mem: spec.virtio_mem,
            nvdimm: spec.nvdimm,
            qmp_socket: spec.qmp_socket.as_deref(),
            forward: spec.forward,
            timeout: spec.timeout,
            extra_append: &spec.extra_append,
            ram_mib: spec.ram_mib,
            console_log: &console_log,
            work_dir: &tmp.0,
            expect_oops: spec.expect_oops,
        };
        match qemu::run_qemu(&cfg, &mut on_line) {
            // /dev/kvm opened but KVM cannot run the guest, before the script printed
            // anything: TCG from now on.
            Err(e)
                if accel == qemu::Accel::Kvm && e.downcast_ref::<qemu::KvmFailed>().is_some() =>
            {
                let msg = format!("{e:#}");
                eprintln!("xtask: {msg}; running it under TCG instead");
                qemu::mark_kvm_broken(&msg);
                (accel, why) = (qemu::Accel::Tcg, "KVM failed".to_string());
            }
            r => break r.with_context(|| format!("guest run on {} failed", kernel.version))?,
        }
    };
    eprintln!("xtask: guest ran {:.1} s", t1.elapsed().as_secs_f64());
    let mut output = res.lines.join("\n");
    if !output.is_empty() {
        output.push('\n');
    }
    Ok(VmOutcome {
        output,
        exit_status: res.exit_status,
        console_log,
        kernel_version: kernel.version,
        accel,
        oops: res.oops,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hotadd() {
        let h: HotAdd = "0x200000000000:128M".parse().unwrap();
        assert_eq!(
            h,
            HotAdd {
                addr: 0x2000_0000_0000,
                size: 128 << 20
            }
        );
        assert!("0x200000000000".parse::<HotAdd>().is_err());
        assert!("0x1000:128M".parse::<HotAdd>().is_err());
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
    }

    #[test]
    fn layouts_match_the_recipes() {
        let l = qemu::memory_layout(&["0x200000000000:128M".parse().unwrap()], &[])
            .unwrap()
            .unwrap();
        assert_eq!(
            (l.maxmem, l.phys_bits, l.intel_vendor),
            (33 << 40, Some(46), false)
        );
        let l = qemu::memory_layout(&["0x8000000000:128M".parse().unwrap()], &[])
            .unwrap()
            .unwrap();
        assert_eq!((l.maxmem, l.phys_bits), (600 << 30, None));
        assert!(qemu::memory_layout(&["0xf000000000:128M".parse().unwrap()], &[]).is_err());
        // Below and above 1 TiB in one boot: an Intel vendor keeps the window at 4 GiB.
        let both = [
            "0x200000000000:128M".parse().unwrap(),
            "0x8000000000:128M".parse().unwrap(),
        ];
        let l = qemu::memory_layout(&both, &[]).unwrap().unwrap();
        assert_eq!(
            (l.maxmem, l.phys_bits, l.intel_vendor),
            (33 << 40, Some(46), true)
        );
        // A device range or virtio-mem shapes the layout as a DIMM there would.
        let devmap = ["0x200000000000:128M".parse().unwrap()];
        let l = qemu::memory_layout(&[], &devmap).unwrap().unwrap();
        assert_eq!((l.maxmem, l.phys_bits), (33 << 40, Some(46)));
        let vmem: VirtioMem = "0x8000000000:2G:1G".parse().unwrap();
        let l = qemu::memory_layout(&[], &[vmem.range()]).unwrap().unwrap();
        assert_eq!((l.maxmem, l.phys_bits), (600 << 30, None));
        assert!("0x8000000000:2G:3G".parse::<VirtioMem>().is_err());
        // A 1 GiB DIMM at 32 TiB still fits below 33 TiB.
        let l = qemu::memory_layout(&["0x200000000000:1G".parse().unwrap()], &[])
            .unwrap()
            .unwrap();
        assert_eq!((l.maxmem, l.phys_bits), (33 << 40, Some(46)));
    }
}
