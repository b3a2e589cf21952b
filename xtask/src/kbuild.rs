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

/// Runs `build` in `scratch` unless an earlier one finished there, holding an exclusive lock
/// (`<scratch>.lock`, flock) so that runs building the same source for the same kernel at
/// once (two test runs, two work trees) wait for each other instead of copying into or
/// deleting each other's folder. A finished folder (`.build-done`) is never touched again:
/// its name already says what it holds (see [`scratch_name`]).
pub fn build_once(scratch: &Path, build: impl FnOnce() -> Result<()>) -> Result<()> {
    let parent = scratch.parent().context("a build folder has a parent")?;
    fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let mut lock_name = scratch.file_name().unwrap_or_default().to_os_string();
    lock_name.push(".lock");
    let lock_path = parent.join(lock_name);
    let lock = fs::File::create(&lock_path)
        .with_context(|| format!("cannot create {}", lock_path.display()))?;
    lock.lock()
        .with_context(|| format!("cannot lock {}", lock_path.display()))?;
    let done = scratch.join(".build-done");
    if !done.exists() {
        build()?;
        fs::write(&done, "")?;
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
