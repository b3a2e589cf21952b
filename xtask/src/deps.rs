//! Host tool prerequisites: Debian packages checked with `dpkg-query`, installed with apt.

use crate::cmd;
use crate::install_plan::{self, Plan};
use anyhow::{bail, Context, Result};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// The names of every package dpkg has installed (status `install ok installed`).
pub fn installed_packages() -> Result<std::collections::BTreeSet<String>> {
    let out = cmd::output(
        Command::new("dpkg-query").args(["-W", "-f=${Package}:${Architecture} ${Status}\n"]),
    )
    .context("dpkg-query cannot list the installed packages")?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.ends_with(" install ok installed"))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect())
}

/// Fails naming every package of `before` that is no longer installed.
pub fn check_none_removed(before: &std::collections::BTreeSet<String>) -> Result<()> {
    let now = installed_packages()?;
    let gone: Vec<&str> = before.difference(&now).map(String::as_str).collect();
    if !gone.is_empty() {
        bail!("host packages removed during the run: {}", gone.join(" "));
    }
    Ok(())
}

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
        run_apt(&[], &["update"])
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

fn run_apt(opts: &[String], args: &[&str]) -> Result<()> {
    cmd::status(
        Command::new("apt-get")
            .args(opts)
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
    .context("apt-get failed (is this a Debian host? run it by hand to see why)")
}

/// Set by `cargo xtask --yes`: install missing packages without asking.
static ASSUME_YES: AtomicBool = AtomicBool::new(false);

pub fn assume_yes() {
    ASSUME_YES.store(true, Ordering::Relaxed);
}

/// Whether to ask before installing: on a terminal, unless `--yes` or `CI` is set.
fn should_ask() -> bool {
    use std::io::IsTerminal;
    !ASSUME_YES.load(Ordering::Relaxed)
        && std::env::var_os("CI").is_none()
        && std::io::stdin().is_terminal()
        && std::io::stderr().is_terminal()
}

/// `apt-get -s install` of `pkgs` with the extra options `opts`: what it would do.
fn simulate(opts: &[String], pkgs: &[&str]) -> Result<Plan> {
    let out = cmd::output(
        Command::new("apt-get")
            .args(opts)
            .args(["-s", "install", "--no-install-recommends"])
            .args(pkgs),
    )
    .with_context(|| format!("apt-get cannot plan installing {}", pkgs.join(" ")))?;
    Ok(Plan::parse(&String::from_utf8_lossy(&out.stdout)))
}

/// The options and target release that install `pkgs` without removing a host package:
/// the host's sources, else the host's sources plus backports when what apt would remove
/// came from backports. Fails naming the removals and the command to review otherwise.
fn plan_without_removals(pkgs: &[&str]) -> Result<(Vec<String>, Plan)> {
    let plan = simulate(&[], pkgs)?;
    if plan.removals.is_empty() {
        return Ok((Vec::new(), plan));
    }
    let by_hand = format!("apt-get install --no-install-recommends {}", pkgs.join(" "));
    let codename = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| install_plan::host_codename(&t));
    if let (true, Some(codename)) = (plan.removes_a_backport(), codename) {
        eprintln!(
            "xtask: installing {} from {codename} would remove {}; trying {codename}-backports, \
             where that package came from",
            pkgs.join(" "),
            plan.removal_list()
        );
        let mut opts = install_plan::backports_sources(
            &crate::kernels::cache_dir().join("apt-backports"),
            &codename,
        )?;
        run_apt(&opts, &["update"])?;
        opts.extend(["-t".to_string(), format!("{codename}-backports")]);
        let again = simulate(&opts, pkgs)?;
        if again.removals.is_empty() {
            return Ok((opts, again));
        }
    }
    bail!(
        "installing {} would remove host packages ({}); xtask never removes a package: \
         review and run `{by_hand}` yourself, then run xtask again",
        pkgs.join(" "),
        plan.removal_list()
    )
}

/// Installs the missing ones of `pkgs` (after one `apt-get update`): lists what apt will
/// install, asks on a terminal unless `--yes` or `CI` is set, and installs with
/// `--no-remove`, so a host package is never removed (see `install_plan`). Needs root when
/// something is missing; does nothing when all are installed.
pub fn ensure_host_packages(pkgs: &[&str]) -> Result<()> {
    let missing: Vec<&str> = pkgs.iter().copied().filter(|p| !is_installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    apt_update_once()?;
    let (opts, plan) = plan_without_removals(&missing)?;
    eprintln!(
        "xtask: installing host packages {}; apt will install: {}",
        missing.join(" "),
        plan.installs.join(", ")
    );
    if should_ask() {
        eprint!("xtask: install them with apt-get now? [Y/n] ");
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if matches!(answer.trim(), "n" | "N" | "no" | "No") {
            bail!(
                "not installing {}: install them yourself, or pass --yes",
                missing.join(" ")
            );
        }
    }
    let mut args = vec!["install", "-y", "--no-install-recommends", "--no-remove"];
    args.extend(&missing);
    run_apt(&opts, &args).with_context(|| {
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
