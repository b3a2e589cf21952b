//! Out-of-tree (Kbuild) module builds: the scratch copy of the source, the check of `make`'s
//! result and the `.ko` files it left. Shared by host builds (modules.rs) and builds in the
//! Debian-unstable root (sid_root.rs).

use crate::cmd::{self, last_line};
use crate::kernels::Kernel;
use anyhow::{bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

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
    cmd::output(Command::new("cp").arg("-a").arg(from.join(".")).arg(to))
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
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
