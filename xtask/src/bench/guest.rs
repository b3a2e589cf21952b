//! One guest boot of the bench: its spec (bench.sh, the test module, bpftrace, the hot-add
//! ranges) and the host's half of its hot-add checkpoints (QMP).

use super::BenchArgs;
use crate::initramfs::CHECKPOINT;
use crate::qmp::Qmp;
use crate::test::output::Output;
use crate::test::scenarios::with_lib;
use crate::vm::{run_vm_with, HotAdd, KernelId, VmSpec};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;
/// One top-level entry of the direct map covers 512 GiB with 4-level paging: a DIMM at
/// 32 TiB + k × 512 GiB needs a new one in each cycle (32 TiB: above what QEMU's default
/// window and the boot RAM ever reach, as in the hot-add scenarios).
const STRIDE: u64 = 512 * GIB;
const FIRST: u64 = 32 * TIB;
/// 128 MiB: one memory block of x86_64 (the smallest DIMM the kernel onlines whole).
const DIMM_SIZE: u64 = 128 << 20;
/// The devmap cycles' ranges (the module's 128 MiB each): 40 TiB + k × 512 GiB, a new
/// top-level entry of the direct map each, clear of the DIMMs' (32 TiB + k × 512 GiB, at most
/// a few TiB); their struct pages share one vmemmap top-level entry (512 GiB of vmemmap
/// describes 32 TiB), populated by the warm-up cycle.
const DEVMAP_FIRST: u64 = 40 * TIB;
const DEVMAP_SIZE: u64 = 128 << 20;
/// RAM of the guest: 10,000 idle processes need about 2 GiB (as in the scale scenario), and
/// bpftrace's libraries (LLVM, clang: ~150 MiB) sit in the initramfs.
const RAM_MIB: u32 = 3072;

/// The sizes of one bench boot.
#[derive(Debug, Clone)]
pub struct Plan {
    pub runs: u32,
    /// Syncs per `lossy` storm side (the module's `storm` parameter).
    pub storm: u32,
    /// The run's ring in bytes during the storms: large enough for every record.
    pub ring: u32,
    pub idle_secs: u32,
    pub few: u32,
    pub many: u32,
    /// Hot-add cycles, and devmap cycles (untraced and traced alternate in each).
    pub cycles: u32,
    /// bench.sh's steps to run, by name.
    pub steps: Vec<&'static str>,
}

impl Plan {
    pub fn of(args: &BenchArgs) -> Plan {
        if args.quick {
            Plan {
                runs: 1,
                storm: 2000,
                ring: 16 << 20,
                idle_secs: 10,
                few: 10,
                many: 1000,
                cycles: 2,
                steps: args.steps().iter().map(|s| s.name()).collect(),
            }
        } else {
            Plan {
                runs: args.runs,
                storm: 10_000,
                ring: 64 << 20,
                idle_secs: 60,
                few: 10,
                many: 10_000,
                cycles: 2 * args.runs,
                steps: args.steps().iter().map(|s| s.name()).collect(),
            }
        }
    }

    /// A warm-up range, then one per devmap cycle.
    fn devmaps(&self) -> Vec<HotAdd> {
        (0..=u64::from(self.cycles))
            .map(|k| HotAdd {
                addr: DEVMAP_FIRST + k * STRIDE,
                size: DEVMAP_SIZE,
            })
            .collect()
    }

    fn dimms(&self) -> Vec<HotAdd> {
        (0..u64::from(self.cycles))
            .map(|k| HotAdd {
                addr: FIRST + k * STRIDE,
                size: DIMM_SIZE,
            })
            .collect()
    }
}

fn spec(kernel: KernelId, plan: &Plan, files: Vec<(PathBuf, String)>, qmp: &Path) -> VmSpec {
    let addrs: Vec<String> = plan
        .dimms()
        .iter()
        .map(|d| format!("{:#x}", d.addr))
        .collect();
    let devmaps: Vec<String> = plan
        .devmaps()
        .iter()
        .map(|d| format!("{:#x}", d.addr))
        .collect();
    let vars = format!(
        "STEPS='{}' RUNS={} STORM={} RING={} IDLE_SECS={} FEW={} MANY={} DIMM_ADDRS='{}' DIMM_SIZE={DIMM_SIZE} DEVMAP_ADDRS='{}'",
        plan.steps.join(" "),
        plan.runs,
        plan.storm,
        plan.ring,
        plan.idle_secs,
        plan.few,
        plan.many,
        addrs.join(" "),
        devmaps.join(" ")
    );
    let mut s = VmSpec::new(
        kernel,
        with_lib(&format!("{vars}\n{}", include_str!("bench.sh"))),
    );
    s.module_dirs = vec![crate::guest_binary::workspace_root().join("tests/modules/st_populate")];
    s.files = files;
    s.ram_mib = Some(RAM_MIB);
    // Not DIMMs of the spec: the host plugs them at the checkpoints; they shape maxmem and
    // phys-bits.
    s.device_ranges = plan.dimms();
    s.device_ranges.extend(plan.devmaps());
    s.qmp_socket = Some(qmp.to_path_buf());
    // Hot-added blocks stay offline until the script onlines them (movable, so they can be
    // offlined and the DIMM unplugged again): the kernel would otherwise online them into a
    // kernel zone, where they cannot go offline.
    s.extra_append.push("memhp_default_state=offline".into());
    // Startup runs, storms, the idle windows (two per run with few processes: the kernel's
    // sweep and the daemon's own; one with many), 10,000 spawns and the hot-add cycles
    // under TCG.
    let idle_windows = 2 * u64::from(plan.runs) + 1;
    // A devmap cycle: a module reload, and for the traced half a run's start (tens of
    // seconds under TCG on a loaded host).
    let devmap_cycles = u64::from(plan.cycles) + 1;
    s.timeout = Duration::from_secs(
        600 + u64::from(plan.runs) * 240
            + idle_windows * (u64::from(plan.idle_secs) + 30)
            + devmap_cycles * 30
            + 600,
    );
    s
}

struct Host {
    sock: PathBuf,
    qmp: Option<Qmp>,
    dimms: Vec<HotAdd>,
    errors: Vec<String>,
}

impl Host {
    fn act(&mut self, name: &str) -> Result<()> {
        let (what, n) = name.rsplit_once('-').context("unknown checkpoint")?;
        let k: usize = n.parse().context("checkpoint without a cycle number")?;
        let d = *self
            .dimms
            .get(k)
            .context("no DIMM planned for this cycle")?;
        if self.qmp.is_none() {
            self.qmp = Some(Qmp::connect(&self.sock, Duration::from_secs(20))?);
        }
        let q = self.qmp.as_mut().unwrap();
        let (mem, id) = (format!("bm{k}"), format!("bd{k}"));
        match what {
            "bench-add" => {
                q.execute(
                    "object-add",
                    json!({"qom-type": "memory-backend-ram", "id": mem, "size": d.size}),
                )?;
                q.execute(
                    "device_add",
                    json!({"driver": "pc-dimm", "id": id, "memdev": mem, "addr": d.addr}),
                )
                .with_context(|| format!("device_add of the DIMM at {:#x}", d.addr))?;
            }
            "bench-del" => {
                q.execute("device_del", json!({ "id": id }))?;
                // The guest ejects it (ACPI); QEMU reports DEVICE_DELETED then. Its slot
                // is free for the next cycle only after that.
                q.wait_event(
                    "DEVICE_DELETED",
                    |e| e.get("device").and_then(Value::as_str) == Some(id.as_str()),
                    Duration::from_secs(120),
                )?;
                q.execute("object-del", json!({ "id": mem }))?;
            }
            _ => bail!("unknown checkpoint"),
        }
        Ok(())
    }
}

/// What one boot gave.
pub struct Boot {
    pub output: Output,
    pub text: String,
    pub kernel_version: String,
    pub exit_status: i32,
    pub host_errors: Vec<String>,
}

/// Boots `kernel` with the bench script; the guest's lines are echoed with `verbose`.
pub fn run(
    kernel: KernelId,
    plan: &Plan,
    files: Vec<(PathBuf, String)>,
    guest_bin: &Path,
    verbose: bool,
) -> Result<Boot> {
    let dir = std::env::temp_dir().join(format!("sync-trace-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let sock = dir.join("qmp.sock");
    let spec = spec(kernel, plan, files, &sock);
    let mut host = Host {
        sock,
        qmp: None,
        dimms: plan.dimms(),
        errors: Vec::new(),
    };
    let out = run_vm_with(&spec, guest_bin, |line| {
        if verbose || line.starts_with("=== step") {
            println!("  {line}");
        }
        if let Some(name) = line.strip_prefix(CHECKPOINT) {
            if let Err(e) = host.act(name.trim()) {
                let msg = format!("{}: {e:#}", name.trim());
                eprintln!("xtask bench: {msg}");
                host.errors.push(msg);
            }
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
    let out = out?;
    Ok(Boot {
        output: Output::parse(&out.output),
        text: out.output,
        kernel_version: out.kernel_version,
        exit_status: out.exit_status,
        host_errors: host.errors,
    })
}
