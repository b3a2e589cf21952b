//! Running QEMU: command line, memory layout for hot-add, live serial tails, hot-add on request.

use crate::initramfs::{ACK, CHECKPOINT, EXIT_MARKER, HOTADD_REQUEST};
use crate::mem::{HotAdd, VirtioMem};
use crate::qmp::Qmp;
use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;
/// Boot RAM. 1 GiB sits entirely below 4 GiB on the `pc` machine, so device memory (the
/// hot-add window) starts right at 4 GiB, or at 1 TiB when QEMU moves it (see below).
const RAM: &str = "1G";
/// DIMM slots: how many hot-adds one run can do.
const SLOTS: usize = 4;
/// Lines of console kept for error messages.
const TAIL_LINES: usize = 40;
/// Console markers that end the run with an error.
const PANIC_MARKERS: &[&str] = &["Kernel panic", "BUG:", "Oops"];
/// The markers of an oops that kills one task and leaves the kernel running:
/// tolerated when the run expects one.
const OOPS_MARKERS: &[&str] = &["BUG:", "Oops"];

/// How QEMU runs the guest's CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl std::fmt::Display for Accel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        })
    }
}

/// KVM when `/dev/kvm` opens read-write and the host CPU can give the guest what it needs
/// (LA57 for 5-level paging, enough physical address bits for the hot-add window); TCG
/// otherwise. `SYNC_TRACE_ACCEL=tcg` (or `kvm`) decides instead. Returns the choice and why.
pub fn choose_accel(paging: u8, layout: Option<&MemLayout>) -> (Accel, String) {
    match std::env::var("SYNC_TRACE_ACCEL").as_deref() {
        Ok("tcg") => return (Accel::Tcg, "SYNC_TRACE_ACCEL=tcg".into()),
        Ok("kvm") => return (Accel::Kvm, "SYNC_TRACE_ACCEL=kvm".into()),
        _ => {}
    }
    if let Some(why) = KVM_BROKEN.lock().unwrap_or_else(|e| e.into_inner()).clone() {
        return (
            Accel::Tcg,
            format!("KVM failed earlier in this process: {why}"),
        );
    }
    if let Err(e) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        return (Accel::Tcg, format!("/dev/kvm is not usable: {e}"));
    }
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    kvm_fits(&cpuinfo, paging, layout.and_then(|l| l.phys_bits))
}

/// Whether a KVM guest on a host with this `/proc/cpuinfo` can have `paging` levels and
/// `phys_bits` physical address bits.
fn kvm_fits(cpuinfo: &str, paging: u8, phys_bits: Option<u8>) -> (Accel, String) {
    let flags = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("flags")
                .map(|r| r.trim_start_matches([' ', '\t', ':']))
        })
        .unwrap_or("");
    if paging == 5 && !flags.split_whitespace().any(|f| f == "la57") {
        return (
            Accel::Tcg,
            "5-level paging needs LA57, which the host CPU lacks".into(),
        );
    }
    let host_bits: Option<u8> = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("address sizes"))
        .and_then(|r| r.trim_start_matches([' ', '\t', ':']).split(' ').next())
        .and_then(|b| b.parse().ok());
    if let (Some(want), Some(have)) = (phys_bits, host_bits) {
        if want > have {
            return (
                Accel::Tcg,
                format!(
                    "the hot-add window needs {want} physical address bits, the host has {have}"
                ),
            );
        }
    }
    (Accel::Kvm, "/dev/kvm is usable".into())
}

/// Set when a guest failed under KVM (see [`KvmFailed`]): later guests of this process go
/// straight to TCG.
static KVM_BROKEN: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// QEMU's words for a KVM that opened but cannot run the guest (e.g. a nested or emulated
/// /dev/kvm): QEMU then stops the guest and idles.
const KVM_FAILURE_MARKERS: &[&str] = &[
    "KVM internal error",
    "failed to initialize kvm",
    "failed to initialize KVM",
    "Could not access KVM kernel module",
    "kvm run failed",
    "failed to set MSR",
];

/// Under KVM, the kernel prints `Linux version` within this or KVM is taken as not working.
const KVM_BOOT_WITHIN: Duration = Duration::from_secs(30);

/// The guest could not run under KVM; the caller may run it again under TCG.
#[derive(Debug)]
pub struct KvmFailed(pub String);

impl std::fmt::Display for KvmFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QEMU cannot run the guest under KVM: {}", self.0)
    }
}

impl std::error::Error for KvmFailed {}

/// Remembers for this process that KVM does not work.
pub fn mark_kvm_broken(why: &str) {
    *KVM_BROKEN.lock().unwrap_or_else(|e| e.into_inner()) = Some(why.to_string());
}

/// The first line of QEMU's stderr that says KVM failed.
fn kvm_failure(qemu_err: &Path) -> Option<String> {
    let text = std::fs::read_to_string(qemu_err).unwrap_or_default();
    text.lines()
        .find(|l| KVM_FAILURE_MARKERS.iter().any(|m| l.contains(m)))
        .map(|l| l.trim().to_string())
}

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

/// `maxmem` and CPU `phys-bits` that make QEMU accept every DIMM of `hotadds` and let the
/// guest address every range of `others` (ranges no DIMM fills, virtio-mem's memory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemLayout {
    pub maxmem: u64,
    /// `None`: qemu64's default of 40 bits (1 TiB) is enough.
    pub phys_bits: Option<u8>,
    /// Present the CPU as Intel so QEMU keeps device memory at 4 GiB (the
    /// HyperTransport-hole move applies to AMD models only). Needed when
    /// DIMMs below and above 1 TiB share one boot. The kernel then also sees
    /// a Meltdown-affected CPU and turns PTI on (8 KiB PGDs).
    pub intel_vendor: bool,
}

/// QEMU 7.2 puts device memory (where DIMMs go) at 4 GiB, right above boot RAM — unless, with
/// an AMD CPU model such as `qemu64`, the highest used address would reach the HyperTransport
/// hole below 1 TiB (~1012 GiB), in which case it moves the whole window to 1 TiB. So a DIMM
/// below 1 TiB needs a small `maxmem` (512 GiB → 600G; with 33T `device_add` is refused with
/// "usable range [0x10000000000:…]"), and a DIMM above 1 TiB needs `maxmem` ≥ its end
/// (32 TiB → 33T) and enough `phys-bits` for QEMU to accept that `maxmem`.
pub fn memory_layout(dimms: &[HotAdd], others: &[HotAdd]) -> Result<Option<MemLayout>> {
    if dimms.len() > SLOTS {
        bail!(
            "{} hot-adds requested but only {SLOTS} DIMM slots: use fewer --hotadd",
            dimms.len()
        );
    }
    let ranges: Vec<HotAdd> = dimms.iter().chain(others).copied().collect();
    let Some(top) = ranges.iter().map(|h| h.addr + h.size).max() else {
        return Ok(None);
    };
    if let Some(h) = ranges.iter().find(|h| h.addr < 4 * GIB) {
        bail!("hot-add at {:#x} is below 4 GiB, where QEMU's device memory starts: use a higher address", h.addr);
    }
    let low_max = 900 * GIB;
    let maxmem = (top + 64 * GIB).div_ceil(100 * GIB) * 100 * GIB;
    let low = ranges.iter().all(|h| h.addr < TIB);
    if low && maxmem <= low_max {
        return Ok(Some(MemLayout {
            maxmem,
            phys_bits: None,
            intel_vendor: false,
        }));
    }
    let mixed = ranges.iter().any(|h| h.addr < TIB);
    if let Some(h) = ranges
        .iter()
        .find(|h| h.addr < TIB && h.addr + h.size > 836 * GIB)
    {
        bail!(
            "hot-add at {:#x} reaches into the HyperTransport hole below 1 TiB that QEMU keeps free: use an address below ~836 GiB or at or above 1 TiB",
            h.addr
        );
    }
    let maxmem = top.div_ceil(TIB) * TIB;
    // Highest guest-physical address: window base (1 TiB, or 4 GiB with an Intel vendor) +
    // window + per-slot alignment + the 64-bit PCI hole; 64 GiB covers the latter two.
    let base = if mixed { 4 * GIB } else { TIB };
    let end = base + maxmem + 64 * GIB;
    let bits = (64 - (end - 1).leading_zeros()).max(40) as u8;
    Ok(Some(MemLayout {
        maxmem,
        phys_bits: (bits > 40).then_some(bits),
        intel_vendor: mixed,
    }))
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

/// Bytes to lines (without `\n` and `\r`).
#[derive(Default)]
struct Lines {
    partial: Vec<u8>,
}

impl Lines {
    /// The complete lines so far; with `final_read`, the unterminated rest too.
    fn take(&mut self, final_read: bool) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(i) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=i).collect();
            lines.push(
                String::from_utf8_lossy(&line)
                    .trim_end_matches(['\n', '\r'])
                    .to_string(),
            );
        }
        if final_read && !self.partial.is_empty() {
            lines.push(
                String::from_utf8_lossy(&std::mem::take(&mut self.partial))
                    .trim_end()
                    .to_string(),
            );
        }
        lines
    }
}

/// Reads lines appended to a file since the last call.
struct Tail {
    path: PathBuf,
    file: Option<File>,
    lines: Lines,
}

impl Tail {
    fn new(path: &Path) -> Tail {
        Tail {
            path: path.to_path_buf(),
            file: None,
            lines: Lines::default(),
        }
    }

    fn poll(&mut self, final_read: bool) -> Vec<String> {
        if self.file.is_none() {
            self.file = File::open(&self.path).ok();
        }
        if let Some(f) = &mut self.file {
            let _ = f.read_to_end(&mut self.lines.partial);
        }
        self.lines.take(final_read)
    }
}

/// The script's serial port (ttyS1) as QEMU's socket chardev: its output is read without
/// blocking; checkpoint acknowledgements are written to it.
struct ScriptPort {
    sock: UnixStream,
    lines: Lines,
}

impl ScriptPort {
    /// Connects to QEMU's listening socket (QEMU waits for this before it starts the guest).
    fn connect(path: &Path, child: &mut KillOnDrop, within: Duration) -> Result<Option<Self>> {
        let t = Instant::now();
        loop {
            match UnixStream::connect(path) {
                Ok(sock) => {
                    sock.set_nonblocking(true)?;
                    return Ok(Some(ScriptPort {
                        sock,
                        lines: Lines::default(),
                    }));
                }
                Err(_) if child.0.try_wait()?.is_some() => return Ok(None),
                Err(e) if t.elapsed() > within => {
                    return Err(e).with_context(|| {
                        format!("QEMU's script port {} did not open", path.display())
                    })
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// The complete lines that arrived; `final_read`: QEMU has exited, read to the end.
    fn poll(&mut self, final_read: bool) -> Vec<String> {
        let mut buf = [0u8; 8192];
        loop {
            match self.sock.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => self.lines.partial.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break, // WouldBlock: nothing more for now
            }
        }
        self.lines.take(final_read)
    }

    /// Tells the guest's `checkpoint NAME` to go on.
    fn ack(&mut self, name: &str) -> Result<()> {
        self.sock.set_nonblocking(false)?;
        let r = self.sock.write_all(format!("{ACK} {name}\n").as_bytes());
        self.sock.set_nonblocking(true)?;
        r.context("cannot acknowledge a checkpoint")
    }
}

struct KillOnDrop(Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the guest until it powers off; `on_line` sees each ttyS1 line as it arrives.
pub fn run_qemu(cfg: &QemuConfig, on_line: &mut dyn FnMut(&str)) -> Result<QemuResult> {
    let qmp_sock = cfg.work_dir.join("qmp.sock");
    let script_sock = cfg.work_dir.join("ttyS1.sock");
    let qemu_err = cfg.work_dir.join("qemu.stderr");
    let args = qemu_args(cfg, &qmp_sock, &script_sock)?;
    let errf = File::create(&qemu_err)?;
    let child = Command::new("qemu-system-x86_64")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(errf.try_clone()?)
        .stderr(errf)
        .spawn()
        .context("cannot start qemu-system-x86_64: install qemu-system-x86")?;
    let mut child = KillOnDrop(child);
    let start = Instant::now();
    let kvm = cfg.accel == Accel::Kvm;
    let qemu_failed = |child: &mut KillOnDrop| -> anyhow::Error {
        let _ = child.0.wait();
        if let Some(why) = kvm.then(|| kvm_failure(&qemu_err)).flatten() {
            return KvmFailed(why).into();
        }
        let err = std::fs::read(&qemu_err).unwrap_or_default();
        anyhow::anyhow!("QEMU failed: {}", crate::cmd::last_line(&err))
    };
    let Some(mut port) = ScriptPort::connect(&script_sock, &mut child, Duration::from_secs(30))?
    else {
        return Err(qemu_failed(&mut child));
    };
    let mut qmp = if cfg.hotadds.is_empty() {
        None
    } else {
        match Qmp::connect(&qmp_sock, Duration::from_secs(20)) {
            Ok(q) => Some(q),
            Err(e) => {
                if child.0.try_wait()?.is_some() {
                    return Err(qemu_failed(&mut child));
                }
                return Err(e);
            }
        }
    };
    let mut con_tail = Tail::new(cfg.console_log);
    let mut console: Vec<String> = Vec::new();
    let mut lines = Vec::new();
    let mut exit_status = None;
    let mut next_hotadd = 0;
    let mut panic_seen: Option<Instant> = None;
    let mut oops: Option<Vec<String>> = None;
    // Under KVM the kernel's first line comes within a second or two; a KVM that opens but
    // cannot run the guest may also just spin without a word.
    let mut kernel_started = false;
    loop {
        let exited = child.0.try_wait()?.is_some();
        for line in port.poll(exited) {
            if let Some(st) = line.strip_prefix(EXIT_MARKER) {
                exit_status = st.trim().parse::<i32>().ok();
                // /init powers off once it has this: all the output is here.
                if !exited {
                    let _ = port.ack("exit");
                }
                continue;
            }
            // At a checkpoint the guest waits: the caller acts in on_line, then it goes on.
            on_line(&line);
            if let Some(name) = line.strip_prefix(CHECKPOINT) {
                if !exited {
                    port.ack(name.trim())?;
                }
            }
            if line.trim() == HOTADD_REQUEST {
                match (cfg.hotadds.get(next_hotadd), qmp.as_mut()) {
                    (Some(h), Some(q)) => {
                        eprintln!(
                            "xtask: hot-add #{next_hotadd}: {} at {:#x} ({:.1} s)",
                            h.size_text(),
                            h.addr,
                            start.elapsed().as_secs_f64()
                        );
                        q.hot_add_dimm(next_hotadd, h.addr, h.size)
                            .with_context(|| {
                                format!("hot-add of {} at {:#x} refused", h.size_text(), h.addr)
                            })?;
                        next_hotadd += 1;
                    }
                    _ => eprintln!(
                        "xtask: the guest asked for a hot-add but none is left: pass more --hotadd"
                    ),
                }
            }
            lines.push(line);
        }
        for line in con_tail.poll(exited) {
            kernel_started |= line.contains("Linux version");
            let oops_line = OOPS_MARKERS.iter().any(|m| line.contains(m));
            if cfg.expect_oops && (oops_line || oops.is_some()) {
                let o = oops.get_or_insert_with(Vec::new);
                if o.len() < TAIL_LINES {
                    o.push(line.clone());
                }
            } else if panic_seen.is_none() && PANIC_MARKERS.iter().any(|m| line.contains(m)) {
                panic_seen = Some(Instant::now());
            }
            console.push(line);
            if console.len() > 4 * TAIL_LINES {
                console.drain(..console.len() - TAIL_LINES);
            }
        }
        let tail = || console[console.len().saturating_sub(TAIL_LINES)..].join("\n");
        // Give the kernel a second to print the whole report before stopping it.
        if panic_seen.is_some_and(|t| t.elapsed() > Duration::from_secs(1)) {
            bail!(
                "kernel crashed (console log {}); last console lines:\n{}",
                cfg.console_log.display(),
                tail()
            );
        }
        if exited {
            if exit_status.is_none() && panic_seen.is_some() {
                bail!(
                    "kernel crashed (console log {}); last console lines:\n{}",
                    cfg.console_log.display(),
                    tail()
                );
            }
            let Some(exit_status) = exit_status else {
                let err = std::fs::read(&qemu_err).unwrap_or_default();
                bail!(
                    "the guest stopped without reporting the script's status (QEMU: {}); last console lines:\n{}",
                    crate::cmd::last_line(&err),
                    tail()
                );
            };
            return Ok(QemuResult {
                lines,
                exit_status,
                oops: oops.map(|o| o.join("\n")),
            });
        }
        if kvm && !kernel_started && lines.is_empty() && start.elapsed() > KVM_BOOT_WITHIN {
            return Err(KvmFailed(format!(
                "no kernel output within {} s",
                KVM_BOOT_WITHIN.as_secs()
            ))
            .into());
        }
        if kvm {
            if let Some(why) = kvm_failure(&qemu_err) {
                if lines.is_empty() {
                    // Nothing of the script ran: the caller may start over under TCG.
                    return Err(KvmFailed(why).into());
                }
                bail!("QEMU stopped the guest under KVM mid-script: {why} (SYNC_TRACE_ACCEL=tcg avoids KVM)");
            }
        }
        if start.elapsed() > cfg.timeout {
            // Where the script was: its last lines, as they came.
            let script = lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n");
            bail!(
                "guest timed out after {} s (raise the timeout?); last console lines:\n{}\nlast script lines:\n{script}",
                cfg.timeout.as_secs(),
                tail()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kvm_only_where_the_host_cpu_fits() {
        let amd = "flags\t\t: fpu vme svm\naddress sizes\t: 48 bits physical, 48 bits virtual\n";
        assert_eq!(kvm_fits(amd, 4, Some(46)).0, Accel::Kvm);
        assert_eq!(kvm_fits(amd, 5, None).0, Accel::Tcg);
        assert_eq!(kvm_fits(amd, 4, Some(52)).0, Accel::Tcg);
        let la57 = "flags\t\t: fpu la57\naddress sizes\t: 52 bits physical, 57 bits virtual\n";
        assert_eq!(kvm_fits(la57, 5, Some(52)).0, Accel::Kvm);
    }
}
