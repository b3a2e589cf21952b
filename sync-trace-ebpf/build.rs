//! Compiles the C eBPF programs (`src/bpf/*.bpf.c`) with clang into BPF
//! objects in OUT_DIR, which `src/lib.rs` embeds with `include_bytes_aligned!`.
//!
//! The programs are C because Rust eBPF needs nightly `-Z build-std` with the
//! `rust-src` component, which this toolchain does not have. Debian's clang
//! and libbpf headers (`apt-get install clang libbpf-dev`) are required;
//! `cargo xtask test` installs them.

use std::{env, path::PathBuf, process::Command};

use anyhow::{bail, Context as _, Result};

/// Every object: (source under src/bpf, object name in OUT_DIR). The last is
/// not a program: its BTF describes every type of events.h for
/// tests/contract.rs, and nothing embeds it.
const PROGRAMS: &[(&str, &str)] = &[
    ("sync_trace.bpf.c", "sync_trace.bpf.o"),
    ("pgtable_scan.bpf.c", "pgtable_scan.bpf.o"),
    ("ksym_lookup.bpf.c", "ksym_lookup.bpf.o"),
    ("contract.bpf.c", "contract.bpf.o"),
];

/// Headers the programs include; a change rebuilds them.
const HEADERS: &[&str] = &[
    "batch.h",
    "events.h",
    "ksym_lookup.h",
    "pgtable_kernel.h",
    "scan_counts.h",
    "sweep_timer.h",
];

fn main() -> Result<()> {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let out = PathBuf::from(env::var("OUT_DIR")?);
    let src = manifest.join("src/bpf");
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".into());
    println!("cargo:rerun-if-env-changed=CLANG");
    for h in HEADERS {
        println!("cargo:rerun-if-changed={}", src.join(h).display());
    }
    for (source, object) in PROGRAMS {
        let input = src.join(source);
        println!("cargo:rerun-if-changed={}", input.display());
        let output = Command::new(&clang)
            .args(["-g", "-O2", "-target", "bpfel", "-Wall", "-Werror"])
            // The checkout's path stays out of the objects' DWARF and BTF (so out of the
            // binary that embeds them): the same commit builds the same image anywhere.
            .arg(format!(
                "-ffile-prefix-map={}=/sync-trace/sync-trace-ebpf",
                manifest.display()
            ))
            // Selects x86_64 register names in libbpf's bpf_tracing.h.
            .arg("-D__TARGET_ARCH_x86")
            // linux/types.h includes asm/types.h, which Debian keeps per architecture.
            .arg("-I/usr/include/x86_64-linux-gnu")
            .arg("-I")
            .arg(&src)
            .arg("-c")
            .arg(&input)
            .arg("-o")
            .arg(out.join(object))
            .output()
            .with_context(|| {
                format!("cannot run `{clang}` to compile {source}: install Debian's clang and libbpf-dev (apt-get install clang libbpf-dev), or set CLANG")
            })?;
        if !output.status.success() {
            bail!(
                "clang failed on {}:\n{}",
                input.display(),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
    Ok(())
}
