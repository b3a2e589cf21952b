//! The sync-trace binary that runs inside the guest.

use crate::cmd;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The host target; there is no musl target installed here, so the guest binary is a static
/// glibc build of the normal target (`+crt-static`), which runs in a busybox-only initramfs.
pub const GUEST_TARGET: &str = "x86_64-unknown-linux-gnu";

/// Builds `sync-trace` statically (release) and returns the binary's path: the image's
/// reproducible build (`image::build_static_binary`), so the guests run the very binary the
/// image ships and the suite builds it once.
pub fn build_guest_sync_trace(workspace_root: &Path) -> Result<PathBuf> {
    crate::image::build_static_binary(workspace_root)
        .context("building the guest sync-trace failed: fix the build or pass --guest-bin")
}

/// `cargo`: the one running this (`$CARGO`), else the one on the PATH.
pub fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// The workspace's target directory as cargo sees it (`CARGO_TARGET_DIR`, `build.target-dir`
/// in a config file, or `target/`), from `cargo metadata`.
pub fn target_dir(workspace_root: &Path) -> Result<PathBuf> {
    let out = cmd::output(cargo().current_dir(workspace_root).args([
        "metadata",
        "--format-version",
        "1",
        "--no-deps",
    ]))?;
    target_dir_of(&out.stdout)
}

fn target_dir_of(metadata: &[u8]) -> Result<PathBuf> {
    let v: serde_json::Value =
        serde_json::from_slice(metadata).context("cargo metadata printed no JSON")?;
    v["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("cargo metadata names no target_directory")
}

/// The workspace root (parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_target_directory() {
        let json = br#"{"packages":[],"target_directory":"/x/target","version":1}"#;
        assert_eq!(target_dir_of(json).unwrap(), PathBuf::from("/x/target"));
        assert!(target_dir_of(b"{}").is_err());
    }
}
