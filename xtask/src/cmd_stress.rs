//! `cargo xtask stress`: a guest's hotplug paths driven from the host over QMP while
//! `sync-trace stress` (or `run`) traces inside. The guest script (stress.sh) calls
//! `checkpoint NAME` at each moment the host must act; the host plugs and unplugs DIMMs,
//! grows and shrinks virtio-mem there, then acknowledges. docs/stress.md, "From the host".

use crate::guest_binary::{build_guest_sync_trace, workspace_root};
use crate::initramfs::CHECKPOINT;
use crate::mem::{HotAdd, VirtioMem};
use crate::qmp::Qmp;
use crate::test::scenarios::with_lib;
use crate::vm::{run_vm_with, KernelId, VmSpec};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;

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
    fn name(self) -> &'static str {
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

/// The address plan. Under 4-level paging one top-level entry maps 512 GiB (2^39) of
/// virtual space. The direct map is physical 1:1 from 0xffff888000000000 (slot 273,
/// nokaslr), so physical [N·512 GiB, (N+1)·512 GiB) needs slot 273+N; boot RAM (1 GiB)
/// has slot 273. vmemmap holds a 64-byte struct page per 4 KiB page, 1/64 of the physical
/// span, so one entry covers 64 × 512 GiB = 32 TiB of physical memory: slot 468 (from
/// 0xffffea0000000000) for [0, 32 TiB), slot 469 for [32 TiB, 64 TiB) — the last one, as
/// 4-level x86_64 addresses at most 64 TiB (MAX_PHYSMEM_BITS 46).
///
/// - DIMM at 1 TiB: direct-map slot 275 (vmemmap in 468).
/// - DIMM at 32.5 TiB: direct-map slot 338; vmemmap slot 469 unless the NVDIMM made it.
/// - virtio-mem at 512 GiB, 1 GiB (eight 128 MiB blocks): direct-map slot 274.
/// - NVDIMM at 32 TiB, 256 MiB: direct-map slot 337 and vmemmap slot 469.
///
/// Under 5-level paging a top-level (PGD) entry maps 256 TiB (2^48): the direct map at
/// 0xff11000000000000 has slot 273 for physical [0, 256 TiB), and the vmemmap at
/// 0xffd4000000000000 has slot 468 for physical [0, 256 TiB × 64 = 16 PiB): every range
/// here lands in entries boot RAM already has, so the plan creates none (the new P4D
/// entries are one level down, in tables all PGDs share).
pub const DIMMS: [HotAdd; 2] = [
    HotAdd {
        addr: TIB,
        size: 128 * MIB,
    },
    HotAdd {
        addr: 32 * TIB + 512 * GIB,
        size: 128 * MIB,
    },
];
pub const VMEM: VirtioMem = VirtioMem {
    addr: 512 * GIB,
    size: GIB,
    requested: GIB,
};
pub const NVDIMM: HotAdd = HotAdd {
    addr: 32 * TIB,
    size: 256 * MIB,
};
/// Boot RAM (VmSpec's default): its entries exist before anything is plugged.
const BOOT_RAM: HotAdd = HotAdd { addr: 0, size: GIB };

/// The kernel top-level slots (region, slot) that map a physical range's direct map and
/// vmemmap, nokaslr.
pub fn slots_of(l: &Layout, r: HotAdd) -> Slots {
    let slot = |va: u64| (va >> l.shift) & 511;
    let mut s = BTreeSet::new();
    let end = r.addr + r.size;
    for x in slot(l.direct + r.addr)..=slot(l.direct + end - 1) {
        s.insert(("direct_map", x));
    }
    let (v0, v1) = (
        l.vmemmap + r.addr / 4096 * 64,
        l.vmemmap + end / 4096 * 64 - 1,
    );
    for x in slot(v0)..=slot(v1) {
        s.insert(("vmemmap", x));
    }
    s
}

/// Top-level entries by (region, slot number).
pub type Slots = BTreeSet<(&'static str, u64)>;

/// The guest's region bases and the top-level slots present before the plan.
#[derive(Debug, Clone)]
pub struct Layout {
    pub direct: u64,
    pub vmemmap: u64,
    /// log2 of what one top-level entry maps: 39 (4-level), 48 (5-level).
    pub shift: u32,
    /// Kernel slots present at start (the `layout` record); `None`: those of boot RAM.
    pub present: Option<BTreeSet<u64>>,
}

impl Layout {
    /// The fixed bases of a nokaslr boot.
    pub fn nokaslr(paging: u8) -> Layout {
        let (direct, vmemmap, shift) = match paging {
            5 => (0xff11_0000_0000_0000, 0xffd4_0000_0000_0000, 48),
            _ => (0xffff_8880_0000_0000, 0xffff_ea00_0000_0000, 39),
        };
        Layout {
            direct,
            vmemmap,
            shift,
            present: None,
        }
    }

    /// From the first `layout` record of `sync-trace run --json` lines (the guest's
    /// bases under KASLR too).
    pub fn from_records(text: &str) -> Option<Layout> {
        let l = events(text).into_iter().find(|e| e["event"] == "layout")?;
        let hex = |k: &str| {
            l[k].as_str()
                .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        };
        Some(Layout {
            direct: hex("page_offset_base")?,
            vmemmap: hex("vmemmap_base")?,
            shift: if l["paging"].as_str() == Some("5") {
                48
            } else {
                39
            },
            present: l["present"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_u64).collect()),
        })
    }
}

/// What the plan should populate: (during the traced NVDIMM setup, during `stress`).
pub fn expected(l: &Layout, paths: &[HotplugPath]) -> (Slots, Slots) {
    let mut have: BTreeSet<u64> = match &l.present {
        Some(p) => p.clone(),
        None => slots_of(l, BOOT_RAM).iter().map(|x| x.1).collect(),
    };
    let new = |r: HotAdd, have: &mut BTreeSet<u64>| {
        let s: Slots = slots_of(l, r)
            .into_iter()
            .filter(|x| !have.contains(&x.1))
            .collect();
        have.extend(s.iter().map(|x| x.1));
        s
    };
    let setup = if paths.contains(&HotplugPath::Nvdimm) {
        new(NVDIMM, &mut have)
    } else {
        BTreeSet::new()
    };
    let mut during = BTreeSet::new();
    // Cycle 1 creates them all; later cycles reuse the same addresses and entries stay.
    if paths.contains(&HotplugPath::Dimm) {
        for d in DIMMS {
            during.extend(new(d, &mut have));
        }
    }
    if paths.contains(&HotplugPath::VirtioMem) {
        during.extend(new(VMEM.range(), &mut have));
    }
    (setup, during)
}

/// The guest's layout as its first `sync-trace run` saw it (NVDIMM setup section, or
/// `run.ndjson`); else the nokaslr bases.
pub fn layout_of(args: &StressArgs, o: &StressOutcome) -> Layout {
    let run = o
        .files
        .iter()
        .find(|(n, _)| n == "run.ndjson")
        .map(|(_, b)| String::from_utf8_lossy(b).to_string());
    Layout::from_records(&o.output)
        .or_else(|| run.as_deref().and_then(Layout::from_records))
        .unwrap_or_else(|| Layout::nokaslr(args.paging))
}

/// The guest spec of a stress run; `qmp` is where QEMU serves the host's monitor socket.
pub fn spec(args: &StressArgs, qmp: &Path) -> VmSpec {
    let has = |p| args.paths.contains(&p);
    let dimms: String = DIMMS
        .iter()
        .map(|d| format!("{}:{}", d.addr, d.size))
        .collect::<Vec<_>>()
        .join(" ");
    let paths: Vec<&str> = args.paths.iter().map(|p| p.name()).collect();
    let vars = format!(
        "CYCLES={} PATHS='{}' DIMMS='{dimms}' VMEM_ADDR={} VMEM_SIZE={} VMEM_REQ={} NV_ADDR={} NV_SIZE={}",
        args.cycles,
        paths.join(" "),
        VMEM.addr,
        VMEM.size,
        VMEM.requested,
        NVDIMM.addr,
        NVDIMM.size
    );
    let mut s = VmSpec::new(
        args.kernel,
        with_lib(&format!("{vars}\n{}", include_str!("stress.sh"))),
    );
    s.paging = args.paging;
    s.kaslr = args.kaslr;
    s.timeout = Duration::from_secs(args.timeout);
    s.qmp_socket = Some(qmp.to_path_buf());
    let mut modules: Vec<&str> = Vec::new();
    if has(HotplugPath::Dimm) {
        // Not --hotadd: the host plugs them itself; they only shape maxmem and phys-bits.
        s.device_ranges.extend(DIMMS);
    }
    if has(HotplugPath::VirtioMem) {
        // Nothing plugged at boot: the host asks for memory at each cycle.
        s.virtio_mem = Some(VirtioMem {
            requested: 0,
            ..VMEM
        });
        modules.extend(["virtio_pci", "virtio_mem"]);
    }
    if has(HotplugPath::Nvdimm) {
        s.nvdimm = Some(NVDIMM);
        modules.extend(["nfit", "nd_pmem", "dax_pmem", "device_dax", "kmem"]);
    }
    s.image_modules = modules.into_iter().map(String::from).collect();
    s
}

/// The host's half of the checkpoints.
struct Host {
    sock: PathBuf,
    qmp: Option<Qmp>,
    /// What QEMU or the guest refused, word for word.
    errors: Vec<String>,
}

impl Host {
    fn qmp(&mut self) -> Result<&mut Qmp> {
        if self.qmp.is_none() {
            self.qmp = Some(Qmp::connect(&self.sock, Duration::from_secs(20))?);
        }
        Ok(self.qmp.as_mut().unwrap())
    }

    fn checkpoint(&mut self, name: &str) {
        if let Err(e) = self.act(name) {
            let msg = format!("{name}: {e:#}");
            eprintln!("xtask stress: {msg}");
            self.errors.push(msg);
        }
    }

    fn act(&mut self, name: &str) -> Result<()> {
        let (what, cycle) = name.rsplit_once('-').context("unknown checkpoint")?;
        match what {
            "dimm-add" => {
                for (i, d) in DIMMS.iter().enumerate() {
                    let q = self.qmp()?;
                    let mem = format!("xs-mem{cycle}-{i}");
                    q.execute(
                        "object-add",
                        json!({"qom-type": "memory-backend-ram", "id": mem, "size": d.size}),
                    )?;
                    q.execute(
                        "device_add",
                        json!({"driver": "pc-dimm", "id": format!("xs-dimm{cycle}-{i}"), "memdev": mem, "addr": d.addr}),
                    )
                    .with_context(|| format!("device_add of the DIMM at {:#x}", d.addr))?;
                    eprintln!(
                        "xtask stress: cycle {cycle}: DIMM {i} plugged at {:#x}",
                        d.addr
                    );
                }
            }
            "dimm-del" => {
                let mut errs = Vec::new();
                for (i, d) in DIMMS.iter().enumerate() {
                    let id = format!("xs-dimm{cycle}-{i}");
                    let q = self.qmp()?;
                    let r = q.execute("device_del", json!({ "id": id })).and_then(|_| {
                        // The guest ejects it (ACPI): QEMU reports DEVICE_DELETED then.
                        q.wait_event(
                            "DEVICE_DELETED",
                            |d| d.get("device").and_then(Value::as_str) == Some(id.as_str()),
                            Duration::from_secs(120),
                        )
                    });
                    match r {
                        Ok(_) => {
                            let _ = q
                                .execute("object-del", json!({"id": format!("xs-mem{cycle}-{i}")}));
                            eprintln!(
                                "xtask stress: cycle {cycle}: DIMM {i} at {:#x} removed",
                                d.addr
                            );
                        }
                        Err(e) => {
                            errs.push(format!("device_del of the DIMM at {:#x}: {e:#}", d.addr))
                        }
                    }
                }
                if !errs.is_empty() {
                    bail!("{}", errs.join("; "));
                }
            }
            "vmem-grow" | "vmem-shrink" => {
                let size = if what == "vmem-grow" {
                    VMEM.requested
                } else {
                    0
                };
                self.qmp()?.execute(
                    "qom-set",
                    json!({"path": "/machine/peripheral/vm0", "property": "requested-size", "value": size}),
                )?;
                eprintln!(
                    "xtask stress: cycle {cycle}: virtio-mem requested-size {} MiB",
                    size >> 20
                );
            }
            _ => bail!("unknown checkpoint"),
        }
        Ok(())
    }
}

/// Base64 (RFC 4648, with padding and line breaks), as busybox `base64` writes it.
fn base64_decode(text: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b'\n' | b'\r' | b' ' => continue,
            _ => bail!("not base64: {:?}", c as char),
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Ok(out)
}

/// What a run brought back.
pub struct StressOutcome {
    pub output: String,
    pub exit_status: i32,
    /// name → contents of the files the guest sent (`stress.json`, `stress.html`,
    /// `run.ndjson`).
    pub files: Vec<(String, Vec<u8>)>,
    /// Refusals of QEMU or the guest at the checkpoints.
    pub host_errors: Vec<String>,
    pub kernel_version: String,
}

/// The `=== file NAME` sections of the output.
fn files_of(output: &str) -> Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    let mut cur: Option<(String, String)> = None;
    for line in output.lines() {
        if let Some(n) = line.strip_prefix("=== file ") {
            cur = Some((n.trim().to_string(), String::new()));
        } else if line == "=== end" {
            if let Some((n, t)) = cur.take() {
                files.push((n.clone(), base64_decode(&t).with_context(|| n.to_string())?));
            }
        } else if let Some((_, t)) = cur.as_mut() {
            t.push_str(line);
        }
    }
    Ok(files)
}

/// Boots the guest and drives it; the guest's output is echoed unless `quiet`.
pub fn run_stress(args: &StressArgs, guest_bin: &Path, quiet: bool) -> Result<StressOutcome> {
    let dir = std::env::temp_dir().join(format!("sync-trace-xstress-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let sock = dir.join("host-qmp.sock");
    let spec = spec(args, &sock);
    let mut host = Host {
        sock,
        qmp: None,
        errors: Vec::new(),
    };
    let mut in_file = false;
    let out = run_vm_with(&spec, guest_bin, |line| {
        in_file = match line {
            l if l.starts_with("=== file ") => true,
            "=== end" => false,
            _ => in_file,
        };
        if !quiet && !in_file && line != "=== end" {
            println!("{line}");
        }
        if let Some(name) = line.strip_prefix(CHECKPOINT) {
            host.checkpoint(name.trim());
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
    let out = out?;
    Ok(StressOutcome {
        files: files_of(&out.output)?,
        output: out.output,
        exit_status: out.exit_status,
        host_errors: host.errors,
        kernel_version: out.kernel_version,
    })
}

/// The guest's report: verdict line, populated slots (region, slot, verdict).
pub struct Summary {
    pub verdict: String,
    pub populations: u64,
    pub slots: Vec<(String, u64, String)>,
}

/// Reads `stress.json`, or for a run without the NVDIMM (`sync-trace run` traced)
/// `run.ndjson`.
pub fn summarize(files: &[(String, Vec<u8>)]) -> Result<Summary> {
    let get = |n: &str| files.iter().find(|(f, _)| f == n).map(|(_, b)| b);
    if let Some(b) = get("stress.json") {
        let r: Value = serde_json::from_slice(b).context("stress.json")?;
        let slots = r["slots"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["source"].as_str() != Some("-"))
            .map(|s| {
                (
                    s["region"].as_str().unwrap_or("?").to_string(),
                    s["slot"].as_u64().unwrap_or(0),
                    s["verdict"].as_str().unwrap_or("?").to_string(),
                )
            })
            .collect();
        return Ok(Summary {
            verdict: r["verdict"].as_str().unwrap_or("?").to_string(),
            populations: r["totals"]["populations"].as_u64().unwrap_or(0),
            slots,
        });
    }
    let b = get("run.ndjson").context("the guest sent no report")?;
    let ev = events(&String::from_utf8_lossy(b));
    let slots = population_verdicts(&ev);
    let bad = slots.iter().filter(|s| s.2 != "paired").count();
    let mism = ev.iter().filter(|e| e["event"] == "mismatch").count();
    Ok(Summary {
        verdict: if bad + mism == 0 {
            format!(
                "clean: {} populations, all paired (sync-trace run)",
                slots.len()
            )
        } else {
            format!("FOUND: {bad} populations not paired, {mism} mismatches (sync-trace run)")
        },
        populations: slots.len() as u64,
        slots,
    })
}

fn events(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("event").is_some())
        .collect()
}

/// (region, slot, `paired` / `unsynced` / `pending`) of every `populate` event.
fn population_verdicts(ev: &[Value]) -> Vec<(String, u64, String)> {
    ev.iter()
        .filter(|e| e["event"] == "populate")
        .map(|p| {
            let slot = p["slot"].as_u64().unwrap_or(0);
            let verdict = ev
                .iter()
                .filter(|e| e["slot"].as_u64() == Some(slot))
                .find_map(|e| match e["event"].as_str() {
                    Some("paired") => Some("paired"),
                    Some("unsynced") => Some("unsynced"),
                    _ => None,
                })
                .unwrap_or("pending");
            (
                p["region"].as_str().unwrap_or("?").to_string(),
                slot,
                verdict.to_string(),
            )
        })
        .collect()
}

/// The populations of the traced NVDIMM setup (`sync-trace run --json` lines of the
/// `nvdimm-setup` step).
pub fn setup_populations(output: &str) -> Vec<(String, u64, String)> {
    let mut sect = String::new();
    let mut inside = false;
    for l in output.lines() {
        if l.starts_with("=== step ") {
            inside = l == "=== step nvdimm-setup";
        } else if inside {
            sect.push_str(l);
            sect.push('\n');
        }
    }
    population_verdicts(&events(&sect))
}

/// Compares a run with its plan: clean, one population per new entry, each paired.
pub fn check(args: &StressArgs, o: &StressOutcome) -> Result<()> {
    if !o.host_errors.is_empty() {
        bail!("host actions failed: {}", o.host_errors.join("; "));
    }
    let s = summarize(&o.files)?;
    if o.exit_status != 0 || !s.verdict.starts_with("clean") {
        bail!("exit {}: verdict: {}", o.exit_status, s.verdict);
    }
    matches_plan(args, o, &s)
}

/// The populations (NVDIMM setup, and the report's) are the plan's new entries, each
/// paired (nokaslr: the plan assumes the fixed region bases).
pub fn matches_plan(args: &StressArgs, o: &StressOutcome, s: &Summary) -> Result<()> {
    let (want_setup, want) = expected(&layout_of(args, o), &args.paths);
    let got_setup = setup_populations(&o.output);
    let fmt = |v: &[(String, u64, String)]| {
        v.iter()
            .map(|(r, n, v)| format!("{r} {n} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let slots = |v: &[(String, u64, String)]| v.iter().map(|x| x.1).collect::<BTreeSet<_>>();
    let want_slots = |w: &BTreeSet<(&str, u64)>| w.iter().map(|x| x.1).collect::<BTreeSet<_>>();
    if slots(&got_setup) != want_slots(&want_setup) || got_setup.len() != want_setup.len() {
        bail!(
            "NVDIMM setup populated [{}], the plan says {want_setup:?}",
            fmt(&got_setup)
        );
    }
    if s.populations != want.len() as u64 || slots(&s.slots) != want_slots(&want) {
        bail!(
            "{} populations in the report ([{}]), the plan creates {want:?}",
            s.populations,
            fmt(&s.slots)
        );
    }
    if let Some(x) = got_setup.iter().chain(&s.slots).find(|x| x.2 != "paired") {
        bail!("slot {} ({}) is {}, not paired", x.1, x.0, x.2);
    }
    Ok(())
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
    }
    match &s {
        Ok(s) => {
            println!("xtask stress: report slots {:?}", s.slots);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_crosses_the_boundaries() {
        let all = [
            HotplugPath::Dimm,
            HotplugPath::VirtioMem,
            HotplugPath::Nvdimm,
        ];
        let (setup, during) = expected(&Layout::nokaslr(4), &all);
        assert_eq!(
            setup,
            [("direct_map", 337), ("vmemmap", 469)]
                .into_iter()
                .collect()
        );
        assert_eq!(
            during,
            [
                ("direct_map", 274),
                ("direct_map", 275),
                ("direct_map", 338)
            ]
            .into_iter()
            .collect()
        );
        // Without the NVDIMM the DIMM at 32.5 TiB opens the vmemmap entry.
        let (_, d) = expected(&Layout::nokaslr(4), &[HotplugPath::Dimm]);
        assert!(d.contains(&("vmemmap", 469)) && d.len() == 3);
        // 5-level: all inside the boot entries.
        let (s5, d5) = expected(&Layout::nokaslr(5), &all);
        assert!(s5.is_empty() && d5.is_empty());
        // KASLR: the bases and present slots of the record (a 6.12 guest's).
        let rec = r#"{"event":"layout","paging":"4","page_offset_base":"0xffff8e6e40000000","vmemmap_base":"0xfffff95740000000","present":[284,426,498,511]}"#;
        let l = Layout::from_records(rec).unwrap();
        let (s, d) = expected(&l, &all);
        assert_eq!(
            s,
            [("direct_map", 348), ("vmemmap", 499)]
                .into_iter()
                .collect()
        );
        assert_eq!(
            d,
            [
                ("direct_map", 285),
                ("direct_map", 286),
                ("direct_map", 349)
            ]
            .into_iter()
            .collect()
        );
    }

    #[test]
    fn decodes_base64() {
        assert_eq!(
            base64_decode("aGVsbG8g\nd29ybGQ=\n").unwrap(),
            b"hello world"
        );
    }
}
