//! The sync-trace binary that runs inside the guest.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The host target; there is no musl target installed here, so the guest binary is a static
/// glibc build of the normal target (`+crt-static`), which runs in a busybox-only initramfs.
pub const GUEST_TARGET: &str = "x86_64-unknown-linux-gnu";

/// Builds `sync-trace` statically (release) and returns the binary's path.
pub fn build_guest_sync_trace(workspace_root: &Path) -> Result<PathBuf> {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(workspace_root)
        .args([
            "build",
            "--release",
            "-p",
            "sync-trace",
            "--target",
            GUEST_TARGET,
        ])
        // An explicit --target keeps these RUSTFLAGS away from build scripts and proc macros
        // (which cannot be linked statically).
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("building the guest sync-trace failed ({status}): fix the build or pass --guest-bin");
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|d| {
            if d.is_absolute() {
                d
            } else {
                workspace_root.join(d)
            }
        })
        .unwrap_or_else(|| workspace_root.join("target"));
    let bin = target_dir
        .join(GUEST_TARGET)
        .join("release")
        .join("sync-trace");
    if !bin.is_file() {
        bail!("cargo succeeded but {} is missing", bin.display());
    }
    Ok(bin)
}

/// The workspace root (parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}
