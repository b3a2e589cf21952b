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

/// Set by `cargo xtask --yes`: install missing packages without asking.
static ASSUME_YES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn assume_yes() {
    ASSUME_YES.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// The `apt-get` arguments that install `pkgs` and never remove anything:
/// with `--no-remove` apt aborts, before changing anything, when the
/// installation would remove a package of the host (a QEMU from another
/// source, a conflicting `qemu-utils`, ...).
fn install_args<'a>(pkgs: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["install", "-y", "--no-install-recommends", "--no-remove"];
    args.extend(pkgs);
    args
}

/// Whether to ask before installing: on a terminal, unless `--yes` or `CI`.
fn should_ask() -> bool {
    use std::io::IsTerminal;
    !ASSUME_YES.load(std::sync::atomic::Ordering::Relaxed)
        && std::env::var_os("CI").is_none()
        && std::io::stdin().is_terminal()
        && std::io::stderr().is_terminal()
}

/// Installs the missing ones of `pkgs` with `apt-get install --no-remove` (after one `apt-get
/// update`), listing them first and asking on a terminal unless `--yes` or `CI` is set. Needs
/// root when something is missing; does nothing when all are installed. Never removes a host
/// package: when apt would, it fails and names the command to run by hand.
pub fn ensure_host_packages(pkgs: &[&str]) -> Result<()> {
    let missing: Vec<&str> = pkgs.iter().copied().filter(|p| !is_installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let by_hand = format!(
        "apt-get install --no-install-recommends {}",
        missing.join(" ")
    );
    eprintln!("xtask: will install host packages: {}", missing.join(" "));
    if should_ask() {
        eprint!("xtask: install them with apt-get now? [Y/n] ");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if matches!(answer.trim(), "n" | "N" | "no" | "No") {
            anyhow::bail!(
                "not installing {}: run `{by_hand}` yourself, or pass --yes",
                missing.join(" ")
            );
        }
    }
    apt_update_once()?;
    run_apt(&install_args(&missing)).with_context(|| {
        format!(
            "cannot install {} without removing a host package or as a non-root user: \
             run `{by_hand}` as root and review what apt proposes",
            missing.join(" ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installing_never_removes() {
        let a = install_args(&["qemu-system-x86"]);
        assert!(a.contains(&"--no-remove") && a.ends_with(&["qemu-system-x86"]));
    }

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
