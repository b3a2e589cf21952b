//! Host tool prerequisites: Debian packages checked with `dpkg-query`, installed with apt.

use crate::cmd;
use anyhow::{Context, Result};
use std::process::Command;
use std::sync::Mutex;

/// Packages every VM run needs on the host.
pub const VM_PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "busybox-static",
    "cpio",
    "zstd",
    "xz-utils",
    // depmod, to make modules.dep for the unpacked images (Debian makes it at install time)
    "kmod",
];

/// Packages needed to build out-of-tree modules against the 6.1 / 6.12 headers with the
/// host's gcc-12 (`dwarves` gives `pahole`, which 6.12 wants for module BTF).
pub const MODULE_BUILD_PACKAGES: &[&str] = &[
    "gcc",
    "make",
    "bc",
    "flex",
    "bison",
    "libelf-dev",
    "dwarves",
];

/// Packages needed to build the `6.1-reverted` kernel from Debian's source package: the
/// compiler and kbuild's host tools, libelf for objtool (ORC), libssl for the certificate
/// tools, `dwarves` for pahole (BTF), `xz-utils` for the source tarball, `patch`, and `kmod`
/// for depmod at `modules_install`.
pub const KERNEL_BUILD_PACKAGES: &[&str] = &[
    "gcc",
    "libc6-dev",
    "make",
    "bc",
    "flex",
    "bison",
    "libelf-dev",
    "libssl-dev",
    "dwarves",
    "xz-utils",
    "patch",
    "kmod",
];

/// Packages needed to make the Debian-unstable build root for `newest` modules.
pub const SID_ROOT_PACKAGES: &[&str] = &["debootstrap"];

/// Whether the host's `apt-get update` has succeeded in this process.
static APT_UPDATED: Mutex<bool> = Mutex::new(false);

/// True if `pkg` is installed (dpkg status `install ok installed`).
pub fn is_installed(pkg: &str) -> bool {
    cmd::output(Command::new("dpkg-query").args(["-W", "-f=${Status}", pkg]))
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

/// Runs the host's `apt-get update` until it succeeds once per process: a failed update is
/// not remembered, so the next caller tries again.
pub fn apt_update_once() -> Result<()> {
    until_success(&APT_UPDATED, || {
        eprintln!("xtask: apt-get update");
        run_apt(&["update"])
    })
}

/// Runs `f` unless an earlier call under `done` succeeded; only a success is remembered.
fn until_success(done: &Mutex<bool>, f: impl FnOnce() -> Result<()>) -> Result<()> {
    let mut done = done.lock().unwrap_or_else(|e| e.into_inner());
    if !*done {
        f()?;
        *done = true;
    }
    Ok(())
}

fn run_apt(args: &[&str]) -> Result<()> {
    cmd::status(
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
    .context("apt-get failed (is this a Debian host? run it by hand to see why)")
}

/// Installs the missing ones of `pkgs` with `apt-get install -y` (after one `apt-get update`).
/// Needs root when something is missing; does nothing when all are installed.
pub fn ensure_host_packages(pkgs: &[&str]) -> Result<()> {
    let missing: Vec<&str> = pkgs.iter().copied().filter(|p| !is_installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing host packages: {}", missing.join(" "));
    apt_update_once()?;
    let mut args = vec!["install", "-y", "--no-install-recommends"];
    args.extend(&missing);
    run_apt(&args).with_context(|| {
        format!(
            "cannot install {}: install them as root (`apt-get install {}`)",
            missing.join(" "),
            missing.join(" ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_update_is_tried_again() {
        let done = Mutex::new(false);
        let mut calls = 0;
        assert!(until_success(&done, || {
            calls += 1;
            anyhow::bail!("network down")
        })
        .is_err());
        until_success(&done, || {
            calls += 1;
            Ok(())
        })
        .unwrap();
        until_success(&done, || {
            calls += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(calls, 2);
    }
}
