//! The guest side of a stress run: its VM spec, the host's actions at its checkpoints
//! (QMP), and the files it sends back.

use super::plan::{DIMMS, NVDIMM, VMEM};
use super::{HotplugPath, Inject, StressArgs};
use crate::guest_binary::workspace_root;
use crate::initramfs::CHECKPOINT;
use crate::mem::VirtioMem;
use crate::qmp::Qmp;
use crate::test::scenarios::with_lib;
use crate::vm::{run_vm_with, VmSpec};
use anyhow::{bail, Context, Result};
use base64::Engine;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The guest spec of a stress run; `qmp` is where QEMU serves the host's monitor socket.
pub fn spec(args: &StressArgs, qmp: &Path) -> VmSpec {
    let has = |p| args.paths.contains(&p);
    let dimms: String = DIMMS
        .iter()
        .map(|d| format!("{}:{}", d.addr, d.size))
        .collect::<Vec<_>>()
        .join(" ");
    let paths: Vec<&str> = args.paths.iter().map(|p| p.name()).collect();
    let inject: Vec<&str> = args.inject.iter().map(|i| i.name()).collect();
    let vars = format!(
        "CYCLES={} SETUP_UNDER_STRESS={} PATHS='{}' INJECT='{}' DIMMS='{dimms}' VMEM_ADDR={} VMEM_SIZE={} VMEM_REQ={} NV_ADDR={} NV_SIZE={}",
        args.cycles,
        u8::from(args.setup_under_stress),
        paths.join(" "),
        inject.join(" "),
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
    // The device-dax switch under stress is the writer that faults on a kernel missing the
    // vmemmap sync (6.1-reverted): its oops kills that child, not the kernel, and the run goes
    // on to report it.
    s.expect_oops = args.setup_under_stress;
    if args.inject.contains(&Inject::NeverSync) {
        s.module_dirs = vec![workspace_root().join("tests/modules/st_populate")];
    }
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

/// Base64 (RFC 4648, with padding), as busybox `base64` writes it; line breaks and
/// blanks skipped.
fn decode(text: &str) -> Result<Vec<u8>> {
    let t: String = text.split_ascii_whitespace().collect();
    Ok(base64::engine::general_purpose::STANDARD.decode(t)?)
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
                files.push((n.clone(), decode(&t).with_context(|| n.to_string())?));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_base64() {
        assert_eq!(decode("aGVsbG8g\nd29ybGQ=\n").unwrap(), b"hello world");
        assert!(decode("aGVsbG8*").is_err());
    }

    #[test]
    fn reads_the_file_sections() {
        let out = "boot\n=== file stress.json\neyJ2\nIjoxfQ==\n=== end\n=== file run.ndjson\n=== end\nexit=0\n";
        let f = files_of(out).unwrap();
        assert_eq!(
            f,
            [
                ("stress.json".to_string(), b"{\"v\":1}".to_vec()),
                ("run.ndjson".to_string(), Vec::new())
            ]
        );
    }
}
