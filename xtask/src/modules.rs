//! Kernel modules: test modules built from source, and the NIC modules from the image.

use crate::cmd;
use crate::deps;
use crate::kbuild::{build_once, check_build, copy_dir, find_kos, scratch_name};
use crate::kernels::{cache_dir, fetch_headers, Kernel, KernelId};
use crate::sid_root;
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds the out-of-tree (Kbuild) module in `dir` for `kernel`; returns the `.ko` paths.
/// `dir` is copied to `cache/builds/<version>/<name>-<hash of its files>` first, so the
/// source stays clean.
pub fn build_module(kernel: &Kernel, dir: &Path) -> Result<Vec<PathBuf>> {
    let name = dir
        .canonicalize()
        .with_context(|| format!("module directory {} does not exist", dir.display()))?
        .file_name()
        .context("module directory has no name")?
        .to_string_lossy()
        .to_string();
    if kernel.id == KernelId::Newest {
        // Unstable's headers want gcc-16 (and unstable's glibc for kbuild's tools): build in
        // a Debian-unstable root instead of on the host.
        return sid_root::build_module(kernel, dir, &name);
    }
    let headers = match &kernel.kbuild {
        Some(tree) => tree.clone(),
        None if kernel.id == KernelId::Local => bail!(
            "building {name} needs the headers of the local kernel {}: pass --kernel-headers DIR (its build tree)",
            kernel.version
        ),
        None => fetch_headers(kernel)?,
    };
    deps::ensure_host_packages(deps::MODULE_BUILD_PACKAGES)?;
    let scratch = cache_dir()
        .join("builds")
        .join(&kernel.version)
        .join(format!(
            "{}-{:016x}",
            scratch_name(dir, &name)?,
            headers_key(&headers)
        ));
    build_once(&scratch, || {
        copy_dir(dir, &scratch)?;
        let out = cmd::output_any(
            Command::new("make")
                .arg("-C")
                .arg(&headers)
                .arg(format!("M={}", scratch.display()))
                .arg(format!(
                    "-j{}",
                    std::thread::available_parallelism()
                        .map(|n| n.get())
                        .unwrap_or(1)
                ))
                .arg("modules"),
            None,
        )?;
        check_build(&out, dir, kernel)
    })?;
    find_kos(&scratch)
}

/// Which kernel build a module is built against: the headers' path and `.config`, so a
/// rebuilt kernel of the same release (the `6.1-reverted` one with another configuration)
/// never loads a module built for the other.
fn headers_key(headers: &Path) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    headers.hash(&mut h);
    fs::read(headers.join(".config"))
        .unwrap_or_default()
        .hash(&mut h);
    h.finish()
}

/// `modules.dep`: module name → (path relative to the modules dir, dependency names).
fn parse_modules_dep(modules_dir: &Path) -> Result<HashMap<String, (String, Vec<String>)>> {
    let text = fs::read_to_string(modules_dir.join("modules.dep"))?;
    let name_of = |p: &str| {
        p.rsplit('/')
            .next()
            .unwrap_or(p)
            .split(".ko")
            .next()
            .unwrap_or(p)
            .replace('-', "_")
    };
    Ok(text
        .lines()
        .filter_map(|l| {
            let (m, deps) = l.split_once(':')?;
            Some((
                name_of(m),
                (
                    m.to_string(),
                    deps.split_whitespace().map(name_of).collect(),
                ),
            ))
        })
        .collect())
}

/// Reads a module, decompressing `.ko.xz` / `.ko.zst` / `.ko.gz` (busybox insmod may not).
fn read_module(path: &Path) -> Result<Vec<u8>> {
    let s = path.to_string_lossy();
    let tool = if s.ends_with(".xz") {
        Some("xz")
    } else if s.ends_with(".zst") {
        Some("zstd")
    } else if s.ends_with(".gz") {
        Some("gzip")
    } else {
        None
    };
    match tool {
        None => fs::read(path).with_context(|| format!("cannot read {}", path.display())),
        Some(t) => Ok(cmd::output(Command::new(t).arg("-dc").arg(path))?.stdout),
    }
}

/// The modules, in load order and decompressed, that give the guest a virtio NIC:
/// `virtio_net` everywhere, `virtio_pci` where it is a module (6.1).
pub fn nic_modules(kernel: &Kernel) -> Result<Vec<(String, Vec<u8>)>> {
    // virtio_pci first: it creates the device virtio_net binds to.
    in_load_order(kernel, &["virtio_pci", "virtio_net"])
        .context("port forwarding needs a virtio NIC in the guest")
}

/// `names` (as in `modules.dep`, `_` for `-`) and their dependencies from the kernel image's
/// `modules.dep`, each after its dependencies, as `(NAME.ko, decompressed contents)`.
/// Built-in ones (in `modules.builtin`) are left out; a name that is neither is an error.
pub fn in_load_order(kernel: &Kernel, names: &[&str]) -> Result<Vec<(String, Vec<u8>)>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    if kernel.id == KernelId::Local && !kernel.modules_dir.join("modules.dep").is_file() {
        eprintln!(
            "xtask: {} has no modules.dep: assuming {} built in",
            kernel.modules_dir.display(),
            names.join(", ")
        );
        return Ok(Vec::new());
    }
    let dep = parse_modules_dep(&kernel.modules_dir)?;
    // Unstable's packages ship only modules.builtin.bin: without the text list, trust that a
    // name missing from modules.dep is built in.
    if let Ok(builtin) = fs::read_to_string(kernel.modules_dir.join("modules.builtin")) {
        for n in names {
            if !dep.contains_key(*n) && !builtin.contains(&format!("/{n}.ko")) {
                bail!("{} has no module {n}, not even built in", kernel.version);
            }
        }
    }
    let mut order: Vec<String> = Vec::new();
    fn visit(name: &str, dep: &HashMap<String, (String, Vec<String>)>, order: &mut Vec<String>) {
        let Some((_, deps)) = dep.get(name) else {
            return;
        };
        if order.iter().any(|n| n == name) {
            return;
        }
        for d in deps.iter().rev() {
            visit(d, dep, order);
        }
        order.push(name.to_string());
    }
    for m in names {
        visit(m, &dep, &mut order);
    }
    order
        .iter()
        .map(|n| {
            let path = kernel.modules_dir.join(&dep[n].0);
            Ok((format!("{n}.ko"), read_module(&path)?))
        })
        .collect()
}
