//! The host check `host/image`: the image built twice, read back, unpacked and run, and the
//! deploy files checked against it.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Context as _, Result};

use super::{
    build_static_binary, is_static_elf, unpack_layer, validate, write_layout, Meta, TempDir,
    BIN_PATH, VERSION,
};
use crate::cmd;
use crate::guest_binary::{target_dir, workspace_root};

/// Host check `host/image`: builds the image twice into fresh layouts (same digest), validates
/// the layout, unpacks the layer, checks the binary is static and that its `--version` is the
/// workspace version, and that the DaemonSet and the Dockerfile name this tag and binary.
pub fn check() -> Result<()> {
    let root = workspace_root();
    let bin = build_static_binary(&root)?;
    let meta = Meta::from_git(&root);
    // Under target/, not /tmp: the unpacked binary must be executable (/tmp may be noexec).
    let tmp = TempDir::new_in(&target_dir(&root)?, "image-check")?;
    let (a, b) = (tmp.0.join("a"), tmp.0.join("b"));
    let wa = write_layout(&bin, &a, VERSION, &meta)?;
    let wb = write_layout(&bin, &b, VERSION, &meta)?;
    ensure!(
        wa.manifest_digest == wb.manifest_digest,
        "two builds gave {} and {}",
        wa.manifest_digest,
        wb.manifest_digest
    );
    let v = validate(&a, VERSION)?;
    ensure!(
        v.manifest_digest == wa.manifest_digest,
        "index names another manifest"
    );
    let rootfs = tmp.0.join("rootfs");
    fs::create_dir(&rootfs)?;
    unpack_layer(&v.layer_tar, &rootfs)?;
    let unpacked = rootfs.join(BIN_PATH.trim_start_matches('/'));
    ensure!(
        is_static_elf(&fs::read(&unpacked)?)?,
        "{BIN_PATH} in the image is not static"
    );
    let out = cmd::output_any(Command::new(&unpacked).arg("--version").env_clear(), None)
        .with_context(|| format!("cannot run {}", unpacked.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success() && stdout.trim() == format!("sync-trace {VERSION}"),
        "`{BIN_PATH} --version` printed {stdout:?} ({}), expected \"sync-trace {VERSION}\"",
        out.status
    );
    deploy_files_agree(&root)?;
    println!(
        "image: {} bytes compressed (layer {}), manifest {}",
        wa.total_size, wa.layer_size, wa.manifest_digest
    );
    Ok(())
}

/// The DaemonSet and the Dockerfile agree with this image: the DaemonSet's `image:` ends in
/// `/sync-trace:<workspace version>` and its `command:` is the image's binary; the Dockerfile's
/// ENTRYPOINT is that binary and its VERSION the workspace version.
fn deploy_files_agree(root: &Path) -> Result<()> {
    let read = |rel: &str| {
        fs::read_to_string(root.join(rel)).with_context(|| format!("cannot read {rel}"))
    };
    let values = |text: &str, key: &str| {
        text.lines()
            .filter_map(|l| l.trim().strip_prefix(key))
            .map(|v| v.trim().to_string())
            .collect::<Vec<_>>()
    };
    let ds = read("deploy/kubernetes/daemonset.yaml")?;
    let images = values(&ds, "image:");
    let want = format!("/sync-trace:{VERSION}");
    ensure!(
        images.len() == 1 && images[0].ends_with(&want),
        "daemonset.yaml: image {images:?}, expected one ending in {want}"
    );
    let want = format!("[\"{BIN_PATH}\"]");
    let commands = values(&ds, "command:");
    ensure!(
        commands == [want.clone()],
        "daemonset.yaml: command {commands:?}, expected {want}"
    );
    let df = read("Dockerfile")?;
    let entry = values(&df, "ENTRYPOINT");
    ensure!(
        entry == [want.clone()],
        "Dockerfile: ENTRYPOINT {entry:?}, expected {want}"
    );
    let version = values(&df, "ARG VERSION=");
    ensure!(
        version == [VERSION],
        "Dockerfile: ARG VERSION={version:?}, expected {VERSION}"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `host/image` check alone: `cargo test -p xtask --lib host_image -- --ignored`.
    #[test]
    #[ignore = "builds the release binary; `cargo xtask test` runs it as host/image"]
    fn host_image() {
        check().unwrap();
    }

    #[test]
    fn the_deploy_files_name_this_image() {
        deploy_files_agree(&workspace_root()).unwrap();
    }
}
