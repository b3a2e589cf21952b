//! `cargo xtask image`: the container image for the DaemonSet, written as an OCI image layout
//! (`oci-layout`, `index.json`, `blobs/sha256/…`) without a container daemon, buildah or root.
//!
//! The image holds one gzip'd layer with the static `sync-trace` binary at [`BIN_PATH`] (and
//! its two parent directories), nothing else: no libc, no shell, no CA certificates.
//!
//! The JSON documents use `oci-spec`'s schema types. No crate writes the layout itself: the
//! few crates that build images carry registry clients and async runtimes, while the layout
//! is three small files beside content-addressed blobs, done here with `tar`, `flate2` and
//! `sha2`. Push it with `skopeo copy oci:DIR:TAG docker://…` (docs/deploy.md).
//!
//! Reproducible: the binary is built with `--remap-path-prefix` for the checkout and the cargo
//! home; tar entries are in a fixed order with uid/gid 0, fixed modes and an mtime of
//! `SOURCE_DATE_EPOCH` (else the HEAD commit's time); gzip's header has mtime 0; the JSON
//! has sorted keys. The same commit built from the same toolchain gives the same digest.
//!
//! - [`build`]: the static binary;
//! - [`layout`]: writing the layout (layer, config, manifest, index);
//! - [`verify`]: reading a layout back, checking it, unpacking its layer;
//! - [`check`]: the host check `host/image`.

mod build;
mod check;
mod layout;
mod verify;

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap::Args;

use crate::guest_binary::{target_dir, workspace_root};

pub use build::{build_static_binary, is_static_elf};
pub use check::check;
pub use layout::{layer_tar, write_layout, Meta, Written};
pub use verify::{unpack_layer, validate, Validated};

/// Where the binary is in the image; the DaemonSet's `command` and the Dockerfile use it too.
pub const BIN_PATH: &str = "/usr/bin/sync-trace";
/// The workspace version, the default tag.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, Args)]
pub struct ImageArgs {
    /// The OCI layout directory (created; an existing layout gets this tag added or replaced).
    /// Default: target/image/sync-trace.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The image tag (`org.opencontainers.image.ref.name`). Default: the workspace version.
    #[arg(long, default_value = VERSION)]
    pub tag: String,
}

pub fn run(args: ImageArgs) -> Result<i32> {
    let root = workspace_root();
    let out = match args.out {
        Some(out) => out,
        None => target_dir(&root)?.join("image/sync-trace"),
    };
    let bin = build_static_binary(&root)?;
    let image = write_layout(&bin, &out, &args.tag, &Meta::from_git(&root))?;
    println!(
        "{}:{} manifest {} ({} bytes compressed)",
        out.display(),
        args.tag,
        image.manifest_digest,
        image.total_size
    );
    println!(
        "push: skopeo copy oci:{}:{} docker://ghcr.io/OWNER/sync-trace:{}",
        out.display(),
        args.tag,
        args.tag
    );
    Ok(0)
}

/// A fresh directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    #[cfg(test)]
    fn new(what: &str) -> Result<TempDir> {
        TempDir::new_in(&std::env::temp_dir(), what)
    }

    fn new_in(base: &Path, what: &str) -> Result<TempDir> {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = base.join(format!("sync-trace-{what}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).with_context(|| format!("cannot create {}", p.display()))?;
        Ok(TempDir(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// For the unit tests: a layout tagged `1.2.3` around a stand-in binary (validation does not
/// run it), in `tmp/layout`, the binary at `tmp/bin`.
#[cfg(test)]
fn sample_layout(tmp: &TempDir) -> PathBuf {
    let bin = tmp.0.join("bin");
    fs::write(&bin, b"\x7fELF stand-in").unwrap();
    let out = tmp.0.join("layout");
    write_layout(&bin, &out, "1.2.3", &sample_meta()).unwrap();
    out
}

/// For the unit tests: the [`Meta`] of [`sample_layout`].
#[cfg(test)]
fn sample_meta() -> Meta {
    Meta {
        epoch: 1_700_000_000,
        revision: Some("0123".into()),
    }
}
