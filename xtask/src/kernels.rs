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
    /// The user's own bzImage (`cargo xtask vm --kernel-image`): see [`LocalKernel`].
    Local,
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
            KernelId::Local => "local",
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
        KernelId::Local => bail!("a local kernel has no packages"),
    }
}

/// The metapackage whose `linux-image-<abi>-cloud-amd64` dependency names the current ABI.
fn metapackage(id: KernelId) -> &'static str {
    match id {
        KernelId::V6_1 | KernelId::Newest | KernelId::V6_1Reverted | KernelId::Local => {
            "linux-image-cloud-amd64"
        }
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
    match id {
        KernelId::V6_1Reverted => return crate::reverted_kernel::fetch_reverted_kernel(),
        KernelId::Local => bail!("the local kernel is not fetched: pass --kernel-image PATH"),
        _ => {}
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

/// A kernel the user built: a bzImage and, optionally, its build tree (or any kbuild headers
/// directory) to build test modules against.
#[derive(Debug, Clone)]
pub struct LocalKernel {
    pub image: PathBuf,
    /// `make -C` target for `--module` builds; `None`: module builds fail, saying to pass
    /// `--kernel-headers`.
    pub headers: Option<PathBuf>,
}

/// The [`Kernel`] of a local bzImage. Its release comes from the bzImage header (else from
/// the headers' `include/config/kernel.release`); modules of the image (`--image-module`,
/// the NIC of `--forward`) are looked up in the headers directory when it has a
/// `modules.dep` (a tree after `modules_install INSTALL_MOD_PATH=…` does not: then they must
/// be built in).
pub fn local_kernel(local: &LocalKernel) -> Result<Kernel> {
    let image = fs::canonicalize(&local.image)
        .with_context(|| format!("no kernel image {}", local.image.display()))?;
    let bytes = fs::read(&image).with_context(|| format!("cannot read {}", image.display()))?;
    let headers = match &local.headers {
        Some(h) => {
            let h = fs::canonicalize(h)
                .with_context(|| format!("no kernel headers directory {}", h.display()))?;
            if !h.join("Makefile").is_file() {
                bail!(
                    "{} has no Makefile: pass the kernel's build tree (or its headers) to --kernel-headers",
                    h.display()
                );
            }
            Some(h)
        }
        None => None,
    };
    let tree_release = headers.as_ref().and_then(|h| {
        fs::read_to_string(h.join("include/config/kernel.release"))
            .ok()
            .map(|s| s.trim().to_string())
    });
    let version = bzimage_release(&bytes)
        .or_else(|| tree_release.clone())
        .with_context(|| {
            format!(
                "{} is not a bzImage (no kernel version in its setup header)",
                image.display()
            )
        })?;
    if let Some(t) = tree_release.filter(|t| *t != version) {
        eprintln!(
            "xtask: warning: the image is {version} but the headers are {t}: modules built against them will not load"
        );
    }
    let root = headers.clone().unwrap_or_else(|| {
        image
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"))
    });
    Ok(Kernel {
        id: KernelId::Local,
        abi: version.clone(),
        modules_dir: root.clone(),
        version,
        root,
        vmlinuz: image,
        kbuild: headers,
    })
}

/// The release (`uname -r`) in a bzImage's setup header: `HdrS` at 0x202, and at 0x20e the
/// offset (from 0x200) of the NUL-terminated version string, e.g.
/// `6.12.117+deb12-cloud-amd64 (debian-kernel@…) #1 SMP …`.
pub fn bzimage_release(image: &[u8]) -> Option<String> {
    if image.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    let off = u16::from_le_bytes([*image.get(0x20e)?, *image.get(0x20f)?]) as usize + 0x200;
    let rest = image.get(off..)?;
    let end = rest.iter().take(256).position(|&b| b == 0)?;
    let text = std::str::from_utf8(&rest[..end]).ok()?;
    text.split_whitespace().next().map(str::to_string)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_release_of_a_bzimage() {
        let mut img = vec![0u8; 0x400];
        img[0x202..0x206].copy_from_slice(b"HdrS");
        img[0x20e..0x210].copy_from_slice(&0x100u16.to_le_bytes());
        let v = b"6.13.0-rc1-dirty (me@box) #3 SMP\0";
        img[0x300..0x300 + v.len()].copy_from_slice(v);
        assert_eq!(bzimage_release(&img).as_deref(), Some("6.13.0-rc1-dirty"));
        img[0x202] = b'X';
        assert_eq!(bzimage_release(&img), None);
        assert_eq!(bzimage_release(b"short"), None);
    }
}
