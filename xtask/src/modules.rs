//! Kernel modules: test modules built from source, and the NIC modules from the image.

use crate::apt::last_line;
use crate::deps;
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
    deps::ensure_host_packages(deps::MODULE_BUILD_PACKAGES)?;
    let headers = match &kernel.kbuild {
        Some(tree) => tree.clone(),
        None => fetch_headers(kernel)?,
    };
    let scratch = cache_dir()
        .join("builds")
        .join(&kernel.version)
        .join(scratch_name(dir, &name)?);
    copy_dir(dir, &scratch)?;
    let out = Command::new("make")
        .arg("-C")
        .arg(&headers)
        .arg(format!("M={}", scratch.display()))
        .arg(format!(
            "-j{}",
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        ))
        .arg("modules")
        .output()
        .context("cannot run make")?;
    check_build(&out, dir, kernel)?;
    find_kos(&scratch)
}

pub fn check_build(out: &std::process::Output, dir: &Path, kernel: &Kernel) -> Result<()> {
    if !out.status.success() {
        let log = String::from_utf8_lossy(&out.stderr);
        let errors: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("error"))
            .take(5)
            .collect();
        bail!(
            "module build of {} for {} failed: {}",
            dir.display(),
            kernel.version,
            if errors.is_empty() {
                last_line(&out.stderr)
            } else {
                errors.join(" | ")
            }
        );
    }
    Ok(())
}

/// The build folder of a module source: its name and a hash of its files,
/// so that runs building different versions of it at once (two work trees,
/// two test runs) never build in, or load from, each other's folder.
pub fn scratch_name(dir: &Path, name: &str) -> Result<String> {
    use std::hash::{Hash, Hasher};
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for f in &files {
        f.file_name().hash(&mut h);
        fs::read(f)
            .with_context(|| format!("cannot read {}", f.display()))?
            .hash(&mut h);
    }
    Ok(format!("{name}-{:016x}", h.finish()))
}

/// Replaces `to` with a copy of `from`.
pub fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    if to.exists() {
        fs::remove_dir_all(to)?;
    }
    fs::create_dir_all(to)?;
    let st = Command::new("cp")
        .arg("-a")
        .arg(from.join("."))
        .arg(to)
        .status()?;
    if !st.success() {
        bail!("cannot copy {} to {}", from.display(), to.display());
    }
    Ok(())
}

pub fn find_kos(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut kos: Vec<PathBuf> = fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "ko"))
        .collect();
    kos.sort();
    if kos.is_empty() {
        bail!(
            "the build in {} produced no .ko: check its Kbuild obj-m line",
            dir.display()
        );
    }
    Ok(kos)
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
        Some(t) => {
            let out = Command::new(t)
                .arg("-dc")
                .arg(path)
                .output()
                .with_context(|| format!("cannot run {t}"))?;
            if !out.status.success() {
                bail!(
                    "{t} -dc {} failed: {}",
                    path.display(),
                    last_line(&out.stderr)
                );
            }
            Ok(out.stdout)
        }
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
