//! The `6.1-reverted` guest kernel: Debian's `linux-source-6.1` with the vmemmap sync of
//! upstream f2d2f9598ebb taken out (`xtask/patches/`), configured from a minimal fragment
//! (`xtask/kconfig/`), built once and cached. It shows what sync-trace reports on a kernel
//! that really misses the sync.
//!
//! Cache layout (under `cache/kernels/`):
//! ```text
//! 6.1-reverted-<key>/         key: source version, patch, fragment and recipe, hashed
//!   linux/                    the built tree: bzImage, vmlinux, and the kbuild for `make M=`
//!   lib/modules/<release>/    `modules_install` output (modules.dep)
//!   build.log                 make's output
//!   .configured               the tree is unpacked, patched and configured
//!   .build-done               `<release> <build seconds>`, written last
//! 6.1-reverted-<key>.lock     held while one process builds
//! ```
//! The tree is built where it stays (kbuild and objtool record absolute paths); a folder
//! with `.configured` but no `.build-done` is an interrupted build and `make` goes on from
//! where it stopped; a folder without `.configured` is started over.

use crate::apt::{unpack_deb, Apt};
use crate::kernels::{cache_dir, Kernel, KernelId};
use crate::{cmd, deps};
use anyhow::{bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

const SOURCE_PACKAGE: &str = "linux-source-6.1";
const PATCH: &str = include_str!("../patches/6.1-revert-populate-kernel-sync.patch");
const KCONFIG: &str = include_str!("../kconfig/6.1-reverted.config");
/// Part of the cache key: change it when the steps below change what gets built.
const RECIPE: &str = "allnoconfig + KCONFIG_ALLCONFIG fragment; make bzImage modules; v1";
/// Calls whose presence in `mm/sparse-vmemmap.c` means the patch did not take.
const FIXED_CALLS: [&str; 2] = ["p4d_populate_kernel(", "pgd_populate_kernel("];

/// Builds the kernel unless it is cached; a cached one costs an apt-cache lookup.
pub fn fetch_reverted_kernel() -> Result<Kernel> {
    let apt = Apt::host();
    let version = match apt.candidate_version(SOURCE_PACKAGE) {
        Ok(v) => v,
        // Fresh host lists may predate the package: update once and retry.
        Err(_) => {
            apt.update()?;
            apt.candidate_version(SOURCE_PACKAGE)?
        }
    };
    let dir = cache_dir()
        .join("kernels")
        .join(format!("6.1-reverted-{}", cache_key(&version)?));
    if !dir.join(".build-done").exists() {
        // Two runs at once (two test suites, two work trees) build it once: the second
        // waits on the lock and then finds `.build-done`.
        fs::create_dir_all(dir.parent().context("the build folder has a parent")?)?;
        let lock_path = PathBuf::from(format!("{}.lock", dir.display()));
        let lock = fs::File::create(&lock_path)?;
        lock.lock()
            .with_context(|| format!("cannot lock {}", lock_path.display()))?;
        if !dir.join(".build-done").exists() {
            build(&apt, &version, &dir)?;
        }
    }
    let done = fs::read_to_string(dir.join(".build-done"))?;
    let release = done
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    let tree = dir.join("linux");
    Ok(Kernel {
        id: KernelId::V6_1Reverted,
        abi: version,
        vmlinuz: tree.join("arch/x86/boot/bzImage"),
        modules_dir: dir.join("lib/modules").join(&release),
        kbuild: Some(tree),
        version: release,
        root: dir,
    })
}

/// First 16 hex digits of the SHA-256 of everything that decides the build's result.
fn cache_key(version: &str) -> Result<String> {
    let input = format!("{SOURCE_PACKAGE} {version}\n{RECIPE}\n{PATCH}\n{KCONFIG}");
    let out = cmd::output_with_input(&mut Command::new("sha256sum"), Some(input.as_bytes()))?;
    let hex = String::from_utf8_lossy(&out.stdout);
    match hex.get(..16) {
        Some(k) => Ok(k.to_string()),
        None => bail!("sha256sum printed no hash: {hex}"),
    }
}

/// Unpacks, patches, configures and builds. A configured tree (`.configured`) left by an
/// interrupted build is built on from where `make` stopped; anything less is started over.
fn build(apt: &Apt, version: &str, dir: &Path) -> Result<()> {
    deps::ensure_host_packages(deps::KERNEL_BUILD_PACKAGES)?;
    let configured = dir.join(".configured");
    let tree = dir.join("linux");
    if !configured.exists() {
        if dir.exists() {
            fs::remove_dir_all(dir)?;
        }
        fs::create_dir_all(dir)?;
        let unpacked = unpack_source(apt, version, dir)?;
        apply_patch(&unpacked)?;
        configure(&unpacked, dir)?;
        fs::write(&configured, "")?;
    } else {
        eprintln!(
            "xtask: resuming the interrupted 6.1-reverted build in {}",
            dir.display()
        );
    }
    eprintln!(
        "xtask: building the 6.1-reverted kernel in {} (log: build.log there); this takes minutes",
        dir.display()
    );
    let t0 = Instant::now();
    let log = dir.join("build.log");
    make(&tree, &log, &["bzImage", "modules"], true)?;
    let install = format!("INSTALL_MOD_PATH={}", dir.display());
    make(&tree, &log, &["modules_install", &install], false)?;
    let secs = t0.elapsed().as_secs();
    let release = kernel_release(&tree)?;
    eprintln!(
        "xtask: built {release} in {} min {} s",
        secs / 60,
        secs % 60
    );
    fs::write(dir.join(".build-done"), format!("{release} {secs}\n"))?;
    Ok(())
}

/// `apt-get download` of the source package (kept in `cache/debs`), then its tarball
/// unpacked as `work/linux`.
fn unpack_source(apt: &Apt, version: &str, work: &Path) -> Result<PathBuf> {
    let debs = cache_dir().join("debs");
    let deb = debs.join(format!("{SOURCE_PACKAGE}_{version}_all.deb"));
    if !deb.exists() {
        apt.download(&[SOURCE_PACKAGE.to_string()], &debs)?;
    }
    if !deb.exists() {
        bail!(
            "apt-get download {SOURCE_PACKAGE} left no {}",
            deb.display()
        );
    }
    let pkg = work.join("pkg");
    unpack_deb(&deb, &pkg)?;
    let tarball = pkg.join(format!("usr/src/{SOURCE_PACKAGE}.tar.xz"));
    run(
        Command::new("tar")
            .arg("-xJf")
            .arg(&tarball)
            .arg("-C")
            .arg(work),
        "unpack the kernel source",
    )?;
    fs::remove_dir_all(&pkg)?;
    let tree = work.join("linux");
    fs::rename(work.join(SOURCE_PACKAGE), &tree)
        .with_context(|| format!("{} holds no {SOURCE_PACKAGE}/", tarball.display()))?;
    Ok(tree)
}

/// Applies the patch exactly (no fuzz) and checks the fixed calls are gone.
fn apply_patch(tree: &Path) -> Result<()> {
    let out = cmd::output_any(
        Command::new("patch")
            .args(["-p1", "--forward", "--batch", "--fuzz=0"])
            .current_dir(tree),
        Some(PATCH.as_bytes()),
    )
    .context("install the patch package")?;
    if !out.status.success() {
        bail!(
            "xtask/patches/6.1-revert-populate-kernel-sync.patch does not apply to {SOURCE_PACKAGE}: {}; Debian's source changed, update the patch",
            String::from_utf8_lossy(&out.stdout).trim().replace('\n', " | ")
        );
    }
    let src = fs::read_to_string(tree.join("mm/sparse-vmemmap.c"))?;
    if let Some(call) = FIXED_CALLS.iter().find(|c| src.contains(*c)) {
        bail!("mm/sparse-vmemmap.c still calls {call}...) after the patch: update the patch");
    }
    Ok(())
}

/// `allnoconfig` with the fragment, then a check that every line of the fragment survived:
/// Kconfig silently drops a symbol whose dependencies are off.
fn configure(tree: &Path, work: &Path) -> Result<()> {
    let fragment = work.join("kconfig.fragment");
    fs::write(&fragment, KCONFIG)?;
    let allconfig = format!("KCONFIG_ALLCONFIG={}", fragment.display());
    make(
        tree,
        &work.join("config.log"),
        &[&allconfig, "allnoconfig"],
        false,
    )?;
    let config = fs::read_to_string(tree.join(".config"))?;
    let missing: Vec<&str> = settings(KCONFIG)
        .into_iter()
        .filter(|l| !holds(l, &config))
        .collect();
    if !missing.is_empty() {
        bail!(
            "the kernel config lost {} (a dependency is off): fix xtask/kconfig/6.1-reverted.config",
            missing.join(", ")
        );
    }
    Ok(())
}

/// The setting lines of a config fragment, as they appear in `.config`.
fn settings(fragment: &str) -> Vec<&str> {
    fragment
        .lines()
        .filter(|l| {
            l.starts_with("CONFIG_") || (l.starts_with("# CONFIG_") && l.ends_with(" is not set"))
        })
        .collect()
}

/// Whether `.config` text has `setting`; `# CONFIG_X is not set` also holds when X has no
/// value at all (its menu is off, so Kconfig does not even list it).
fn holds(setting: &str, config: &str) -> bool {
    match setting
        .strip_prefix("# ")
        .and_then(|r| r.strip_suffix(" is not set"))
    {
        Some(name) => !config.lines().any(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('='))
        }),
        None => config.lines().any(|l| l == setting),
    }
}

/// `make -C tree ARGS` with its output appended to `log` (niced and parallel when `heavy`).
fn make(tree: &Path, log: &Path, args: &[&str], heavy: bool) -> Result<()> {
    let out = fs::OpenOptions::new().create(true).append(true).open(log)?;
    let mut make = if heavy {
        let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut c = Command::new("nice");
        c.args(["-n", "10", "make", &format!("-j{jobs}")]);
        c
    } else {
        Command::new("make")
    };
    let status = cmd::status(
        make.arg("-C")
            .arg(tree)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out),
    );
    if status.is_err() {
        let text = fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let errors: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| l.contains("error") || l.contains("Error"))
            .take(8)
            .collect();
        let shown = if errors.is_empty() {
            lines[lines.len().saturating_sub(8)..].to_vec()
        } else {
            errors
        };
        bail!(
            "make {} for the 6.1-reverted kernel failed ({}):\n{}",
            args.join(" "),
            log.display(),
            shown.join("\n")
        );
    }
    Ok(())
}

fn kernel_release(tree: &Path) -> Result<String> {
    let out = cmd::output(
        Command::new("make")
            .args(["-s", "--no-print-directory", "-C"])
            .arg(tree)
            .arg("kernelrelease"),
    )?;
    let release = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if release.is_empty() {
        bail!("make kernelrelease printed nothing");
    }
    Ok(release)
}

fn run(c: &mut Command, what: &str) -> Result<()> {
    cmd::output(c).with_context(|| format!("cannot {what}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragment_is_settings_and_comments() {
        let n = settings(KCONFIG).len();
        assert!(n > 40, "only {n} settings");
        for l in KCONFIG.lines() {
            let comment = l.is_empty() || (l.starts_with("# ") && !l.starts_with("# CONFIG_"));
            assert!(comment || settings(l).len() == 1, "odd fragment line {l:?}");
        }
        for needed in [
            "CONFIG_DEBUG_INFO_BTF=y",
            "CONFIG_ZONE_DEVICE=y",
            "CONFIG_MODULES=y",
        ] {
            assert!(settings(KCONFIG).contains(&needed), "{needed} missing");
        }
    }

    #[test]
    fn patch_only_drops_the_syncing_helpers() {
        let removed: Vec<&str> = PATCH.lines().filter(|l| l.starts_with("-\t")).collect();
        let added: Vec<&str> = PATCH.lines().filter(|l| l.starts_with("+\t")).collect();
        assert_eq!(removed.len(), 2);
        for (call, line) in FIXED_CALLS.iter().zip(&removed) {
            assert!(line.contains(call), "{line:?}");
        }
        assert!(added.iter().all(|l| l.contains("_populate(&init_mm, ")));
        assert!(!added.iter().any(|l| l.contains("sync")));
    }

    #[test]
    fn config_check() {
        let config = "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_AB=y\n";
        assert!(holds("CONFIG_A=y", config));
        assert!(!holds("CONFIG_C=y", config));
        assert!(holds("# CONFIG_B is not set", config));
        assert!(holds("# CONFIG_C is not set", config));
        assert!(!holds("# CONFIG_AB is not set", config));
    }

    #[test]
    fn kernel_id_round_trips() {
        let id: KernelId = "6.1-reverted".parse().unwrap();
        assert_eq!(id, KernelId::V6_1Reverted);
        assert_eq!(id.to_string(), "6.1-reverted");
    }
}
