//! A Debian-unstable build root for modules of the `newest` kernel.
//!
//! Unstable's headers need gcc-16, which needs unstable's glibc, so the build runs in a
//! `debootstrap --variant=minbase sid` root (cached in `cache/sid-root`) entered with chroot.
//! The headers are installed there with apt (inside the root only, never on the host), so
//! their absolute `/usr/src/...` include paths hold as they are.

use crate::apt::{DEBIAN_KEYRING, DEBIAN_MIRROR};
use crate::kbuild::{build_once, check_build, copy_dir, find_kos, scratch_name};
use crate::kernels::{cache_dir, Kernel};
use crate::{cmd, deps};
use anyhow::{Context, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root_dir() -> PathBuf {
    cache_dir().join("sid-root")
}

fn run(c: &mut Command, what: &str) -> Result<()> {
    cmd::output(c).with_context(|| format!("{what} failed"))?;
    Ok(())
}

fn chroot(root: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("chroot");
    c.arg(root)
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    c
}

/// /proc mounted inside the root for the lifetime of the guard (7.x's objtool reads it).
struct ProcMount(PathBuf);
impl ProcMount {
    fn new(root: &Path) -> Result<ProcMount> {
        let p = root.join("proc");
        fs::create_dir_all(&p)?;
        run(
            Command::new("mount").args(["-t", "proc", "proc"]).arg(&p),
            "mount proc in the sid root",
        )?;
        Ok(ProcMount(p))
    }
}
impl Drop for ProcMount {
    fn drop(&mut self) {
        let _ = cmd::output(Command::new("umount").arg(&self.0));
    }
}

/// Makes (once) the unstable root and installs the headers of `kernel` into it.
pub fn ensure_root(kernel: &Kernel) -> Result<PathBuf> {
    let root = root_dir();
    if !root.join(".debootstrap-done").exists() {
        deps::ensure_host_packages(deps::SID_ROOT_PACKAGES)?;
        if root.exists() {
            fs::remove_dir_all(&root)
                .with_context(|| format!("cannot remove half-made {}", root.display()))?;
        }
        eprintln!(
            "xtask: debootstrap sid into {} (a few minutes, once)",
            root.display()
        );
        run(
            Command::new("debootstrap")
                .args([
                    "--variant=minbase",
                    &format!("--keyring={DEBIAN_KEYRING}"),
                    "sid",
                ])
                .arg(&root)
                .arg(DEBIAN_MIRROR),
            "debootstrap sid",
        )?;
        fs::write(root.join(".debootstrap-done"), "")?;
    }
    let marker = root.join(format!(".headers-{}", kernel.version));
    if !marker.exists() {
        let _proc = ProcMount::new(&root)?;
        let headers = format!("linux-headers-{}", kernel.version);
        eprintln!("xtask: installing {headers}, gcc and make in the sid root");
        // The mirror may be a frozen snapshot whose Release files are past Valid-Until (the
        // host's apt is configured the same way, /etc/apt/apt.conf.d/99artifact-registry here).
        fs::write(
            root.join("etc/apt/apt.conf.d/99xtask-no-valid-until"),
            "Acquire::Check-Valid-Until \"false\";\n",
        )?;
        run(
            &mut chroot(&root, &["apt-get", "update"]),
            "apt-get update in the sid root",
        )?;
        run(
            &mut chroot(
                &root,
                &[
                    "apt-get",
                    "install",
                    "-y",
                    "--no-install-recommends",
                    &headers,
                    "make",
                ],
            ),
            &format!("apt-get install {headers} in the sid root"),
        )?;
        fs::write(&marker, "")?;
    }
    Ok(root)
}

pub fn build_module(kernel: &Kernel, dir: &Path, name: &str) -> Result<Vec<PathBuf>> {
    let root = ensure_root(kernel)?;
    let inside = format!("/build/{}/{}", kernel.version, scratch_name(dir, name)?);
    let scratch = root.join(inside.trim_start_matches('/'));
    build_once(&scratch, || {
        copy_dir(dir, &scratch)?;
        let _proc = ProcMount::new(&root)?;
        let kdir = format!("/usr/src/linux-headers-{}", kernel.version);
        let out = cmd::output_any(
            &mut chroot(
                &root,
                &["make", "-C", &kdir, &format!("M={inside}"), "modules"],
            ),
            None,
        )?;
        check_build(&out, dir, kernel)
    })?;
    find_kos(&scratch)
}
