//! Host tool prerequisites: Debian packages checked with `dpkg-query`, installed with apt.

use anyhow::{bail, Context, Result};
use std::process::Command;
use std::sync::Once;

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

static APT_UPDATE: Once = Once::new();

/// True if `pkg` is installed (dpkg status `install ok installed`).
pub fn is_installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout).contains("install ok installed")
        })
        .unwrap_or(false)
}

/// Runs the host's `apt-get update` at most once per process.
pub fn apt_update_once() -> Result<()> {
    let mut result = Ok(());
    APT_UPDATE.call_once(|| {
        eprintln!("xtask: apt-get update");
        result = run_apt(&["update"]);
    });
    result
}

fn run_apt(args: &[&str]) -> Result<()> {
    let status = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("cannot run apt-get: is this a Debian host?")?;
    if !status.success() {
        bail!(
            "`apt-get {}` failed ({status}): run it by hand to see why",
            args.join(" ")
        );
    }
    Ok(())
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
