//! Guest kernels: which Debian package, where it is cached, unpacking.
//!
//! Cache layout (`${SYNC_TRACE_CACHE:-$HOME/.cache/sync-trace}`):
//! ```text
//! debs/<pkg>_<ver>_amd64.deb    downloaded packages
//! apt-sid/                      private apt configuration for Debian unstable
//! kernels/<uname -r>/           unpacked image (+ headers); `.image-done`, `.headers-done` markers
//! kernels/6.1-reverted-<key>/   a kernel built from source (reverted_kernel.rs)
//! sid-root/                     Debian unstable build root for `newest` modules (modules.rs)
//! runs/                         console logs of VM runs
//! ```

use crate::apt::{unpack_deb, Apt};
use anyhow::{bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelId {
    /// Debian 12's kernel (`linux-image-cloud-amd64`).
    V6_1,
    /// Debian 12's backport from bookworm-security (`linux-image-6.12-cloud-amd64`).
    V6_12,
    /// Debian unstable's cloud kernel.
    Newest,
    /// Debian's 6.1 source without the vmemmap sync fix, built here (reverted_kernel.rs).
    V6_1Reverted,
}

impl FromStr for KernelId {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "6.1" => Ok(KernelId::V6_1),
            "6.12" => Ok(KernelId::V6_12),
            "newest" => Ok(KernelId::Newest),
            "6.1-reverted" => Ok(KernelId::V6_1Reverted),
            _ => bail!("unknown kernel {s:?}: use 6.1, 6.12, newest or 6.1-reverted"),
        }
    }
}

impl std::fmt::Display for KernelId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KernelId::V6_1 => "6.1",
            KernelId::V6_12 => "6.12",
            KernelId::Newest => "newest",
            KernelId::V6_1Reverted => "6.1-reverted",
        })
    }
}

/// An unpacked kernel.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub id: KernelId,
    /// Debian ABI name, e.g. `6.1.0-56`, `6.12.117+deb12`.
    pub abi: String,
    /// `uname -r`, e.g. `6.1.0-56-cloud-amd64`.
    pub version: String,
    /// `cache/kernels/<version>`: root of the unpacked packages.
    pub root: PathBuf,
    pub vmlinuz: PathBuf,
    /// The unpacked `lib/modules/<version>` directory.
    pub modules_dir: PathBuf,
    /// A kept build tree to build modules against (`make -C kbuild M=…`), for kernels built
    /// here; `None`: the headers packages are fetched instead.
    pub kbuild: Option<PathBuf>,
}

const FLAVOUR: &str = "cloud-amd64";

pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("SYNC_TRACE_CACHE") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/root".into());
    home.join(".cache/sync-trace")
}

/// The apt configuration that knows `id`'s packages.
pub fn apt_for(id: KernelId) -> Result<Apt> {
    match id {
        KernelId::V6_1 | KernelId::V6_12 | KernelId::V6_1Reverted => Ok(Apt::host()),
        KernelId::Newest => Apt::private(&cache_dir().join("apt-sid"), "sid"),
    }
}

/// The metapackage whose `linux-image-<abi>-cloud-amd64` dependency names the current ABI.
fn metapackage(id: KernelId) -> &'static str {
    match id {
        KernelId::V6_1 | KernelId::Newest | KernelId::V6_1Reverted => "linux-image-cloud-amd64",
        KernelId::V6_12 => "linux-image-6.12-cloud-amd64",
    }
}

/// Resolves the current ABI (e.g. `6.1.0-56`) from the metapackage, so the harness follows
/// Debian's point releases.
pub fn resolve_abi(id: KernelId, apt: &Apt) -> Result<String> {
    let meta = metapackage(id);
    let deps = match apt.depends(meta) {
        Ok(d) => d,
        // The host lists may predate the package (fresh container): update once and retry.
        Err(_) if matches!(id, KernelId::V6_1 | KernelId::V6_12) => {
            apt.update()?;
            apt.depends(meta)?
        }
        Err(e) => return Err(e),
    };
    let suffix = format!("-{FLAVOUR}");
    deps.iter()
        .filter_map(|d| d.strip_prefix("linux-image-")?.strip_suffix(&suffix))
        .find(|abi| abi.starts_with(|c: char| c.is_ascii_digit()))
        .map(str::to_string)
        .with_context(|| format!("{meta} depends on no linux-image-<abi>-{FLAVOUR} ({deps:?}): Debian's packaging changed"))
}

fn kernel_root(version: &str) -> PathBuf {
    cache_dir().join("kernels").join(version)
}

/// Downloads (once) and unpacks the kernel image and modules of `id` (builds it, for
/// `6.1-reverted`). A second call costs only the apt-cache lookup: no network, no unpacking.
pub fn fetch_kernel(id: KernelId) -> Result<Kernel> {
    if id == KernelId::V6_1Reverted {
        return crate::reverted_kernel::fetch_reverted_kernel();
    }
    let apt = apt_for(id)?;
    let abi = resolve_abi(id, &apt)?;
    let version = format!("{abi}-{FLAVOUR}");
    let root = kernel_root(&version);
    let marker = root.join(".image-done");
    if !marker.exists() {
        // 6.1/6.12: one package with /boot/vmlinuz-* and /lib/modules. Unstable (7.x) split it:
        // `linux-binary-unsigned-*` (usr/lib/modules/<ver>/vmlinuz.unsigned) + `linux-modules-*`.
        let split = format!("linux-binary-unsigned-{version}");
        let pkgs = if apt.exists(&split) {
            vec![split, format!("linux-modules-{version}")]
        } else {
            vec![format!("linux-image-{version}-unsigned")]
        };
        let debs = apt.download(&pkgs, &cache_dir().join("debs"))?;
        for deb in &debs {
            unpack_deb(deb, &root)?;
        }
        fs::write(&marker, pkgs.join("\n"))?;
    }
    if !root
        .join("lib/modules")
        .join(&version)
        .join("modules.dep")
        .exists()
    {
        depmod(&root, &version)?;
    }
    let modules_dir = ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|d| root.join(d).join(&version))
        .find(|d| d.join("modules.dep").exists())
        .with_context(|| {
            format!(
                "no lib/modules/{version}/modules.dep under {}: delete it and retry",
                root.display()
            )
        })?;
    let vmlinuz = [
        root.join(format!("boot/vmlinuz-{version}")),
        modules_dir.join("vmlinuz.unsigned"),
        modules_dir.join("vmlinuz"),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .with_context(|| format!("no vmlinuz under {}: delete it and retry", root.display()))?;
    Ok(Kernel {
        id,
        abi,
        version,
        root,
        vmlinuz,
        modules_dir,
        kbuild: None,
    })
}

/// Debian ships no `modules.dep` (depmod runs at install time): make it with the host's
/// depmod, which wants `<root>/lib/modules/<version>`.
fn depmod(root: &Path, version: &str) -> Result<()> {
    if !root.join("lib").exists() && root.join("usr/lib/modules").exists() {
        std::os::unix::fs::symlink("usr/lib", root.join("lib"))?;
    }
    crate::cmd::output(
        std::process::Command::new("depmod")
            .arg("-b")
            .arg(root)
            .arg(version),
    )
    .with_context(|| format!("depmod for {version} failed (is kmod installed?)"))?;
    Ok(())
}

/// The header packages of `kernel`: `linux-headers-<ver>` plus its `linux-headers-*-common`
/// and `linux-kbuild-*` dependencies (never the image or compiler packages).
pub fn header_packages(kernel: &Kernel, apt: &Apt) -> Result<Vec<String>> {
    let main = format!("linux-headers-{}", kernel.version);
    let mut pkgs = vec![main.clone()];
    for d in apt.depends(&main)? {
        let wanted = (d.starts_with("linux-headers-") && d.ends_with("-common"))
            || d.starts_with("linux-kbuild-");
        if wanted && !pkgs.contains(&d) {
            pkgs.push(d);
        }
    }
    Ok(pkgs)
}

/// Downloads and unpacks the headers next to the image; returns the kbuild directory
/// (`<root>/usr/src/linux-headers-<ver>`), usable with `make -C`.
pub fn fetch_headers(kernel: &Kernel) -> Result<PathBuf> {
    let build = kernel
        .root
        .join("usr/src")
        .join(format!("linux-headers-{}", kernel.version));
    let marker = kernel.root.join(".headers-done");
    if marker.exists() {
        return Ok(build);
    }
    let apt = apt_for(kernel.id)?;
    let pkgs = header_packages(kernel, &apt)?;
    for deb in apt.download(&pkgs, &cache_dir().join("debs"))? {
        unpack_deb(&deb, &kernel.root)?;
    }
    relocate_headers(&kernel.root, &build)?;
    fs::write(&marker, pkgs.join("\n"))?;
    Ok(build)
}

/// Debian's per-flavour header tree includes the `-common` tree by absolute path
/// (`include /usr/src/linux-headers-<abi>-common/Makefile`) and may hold absolute symlinks
/// into /usr: point both at the unpacked copy under `root`.
fn relocate_headers(root: &Path, build: &Path) -> Result<()> {
    let makefile = build.join("Makefile");
    let text = fs::read_to_string(&makefile)
        .with_context(|| format!("headers lack {}", makefile.display()))?;
    let prefix = root.display().to_string();
    let fixed: String = text
        .lines()
        .map(|l| match l.strip_prefix("include /usr/") {
            Some(rest) => format!("include {prefix}/usr/{rest}\n"),
            None => format!("{l}\n"),
        })
        .collect();
    fs::write(&makefile, fixed)?;
    for entry in fs::read_dir(build)?.flatten() {
        let p = entry.path();
        if let Ok(target) = fs::read_link(&p) {
            if let Ok(rel) = target.strip_prefix("/") {
                fs::remove_file(&p)?;
                std::os::unix::fs::symlink(root.join(rel), &p)?;
            }
        }
    }
    Ok(())
}
