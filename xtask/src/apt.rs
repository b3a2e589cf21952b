//! apt queries and downloads, against the host's configuration or a private one.
//!
//! The private configuration (Debian unstable) lives entirely in the cache folder: its own
//! sources.list, lists, package cache and an empty dpkg status, passed with `-o` options. The
//! host's apt sources and state are never touched.

use crate::{cmd, deps};
use anyhow::{bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

/// The host keyring; Debian 12's copy carries the trixie keys, which also sign unstable
/// (checked: `apt-get update` against sid verifies with it).
pub const DEBIAN_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
pub const DEBIAN_MIRROR: &str = "http://deb.debian.org/debian";

/// Private lists older than this are refreshed (the cached kernels stay valid either way).
const LIST_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// One apt configuration: the host's (`opts` empty) or a private one.
#[derive(Debug, Clone)]
pub struct Apt {
    name: String,
    opts: Vec<String>,
    private_lists: Option<PathBuf>,
}

impl Apt {
    /// The host's apt (bookworm + bookworm-security here).
    pub fn host() -> Apt {
        Apt {
            name: "host".into(),
            opts: Vec::new(),
            private_lists: None,
        }
    }

    /// A private apt configuration for Debian `suite` kept in `dir`; runs `apt-get update`
    /// when its lists are missing or old.
    pub fn private(dir: &Path, suite: &str) -> Result<Apt> {
        let lists = dir.join("lists");
        for d in [
            lists.join("partial"),
            dir.join("cache/archives/partial"),
            dir.join("etc"),
        ] {
            fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
        }
        let sources = dir.join("etc/sources.list");
        fs::write(
            &sources,
            format!("deb [signed-by={DEBIAN_KEYRING}] {DEBIAN_MIRROR} {suite} main\n"),
        )?;
        let status = dir.join("etc/status");
        if !status.exists() {
            fs::write(&status, "")?;
        }
        let d = |p: &Path| p.display().to_string();
        let opts = [
            format!("Dir::Etc::SourceList={}", d(&sources)),
            "Dir::Etc::SourceParts=-".to_string(),
            format!("Dir::State::Lists={}", d(&lists)),
            format!("Dir::Cache={}", d(&dir.join("cache"))),
            // An empty dpkg status: nothing of the host counts as installed for this config.
            format!("Dir::State::status={}", d(&status)),
            "APT::Architecture=amd64".to_string(),
            // The host's appstream hook would fetch DEP-11 metadata we never use.
            "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false".to_string(),
        ]
        .into_iter()
        .flat_map(|o| ["-o".to_string(), o])
        .collect();
        let apt = Apt {
            name: suite.to_string(),
            opts,
            private_lists: Some(lists),
        };
        if apt.lists_stale() {
            if let Err(e) = apt.update() {
                if apt.has_lists() {
                    eprintln!("xtask: warning: {e:#}; using the old {suite} lists");
                } else {
                    return Err(e);
                }
            }
        }
        Ok(apt)
    }

    fn has_lists(&self) -> bool {
        self.list_files().next().is_some()
    }

    fn list_files(&self) -> impl Iterator<Item = PathBuf> {
        let dir = self.private_lists.clone().unwrap_or_default();
        fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().contains("_Packages"))
            })
    }

    fn lists_stale(&self) -> bool {
        let newest = self
            .list_files()
            .filter_map(|p| p.metadata().ok()?.modified().ok())
            .max();
        match newest {
            None => true,
            Some(t) => SystemTime::now().duration_since(t).unwrap_or_default() > LIST_MAX_AGE,
        }
    }

    /// `apt-get update` for this configuration (the host's at most once per process).
    pub fn update(&self) -> Result<()> {
        if self.private_lists.is_none() {
            return deps::apt_update_once();
        }
        eprintln!("xtask: apt-get update ({})", self.name);
        cmd::output(self.cmd("apt-get").arg("update")).with_context(|| {
            format!(
                "apt-get update for {} failed; check network access to {DEBIAN_MIRROR}",
                self.name
            )
        })?;
        Ok(())
    }

    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.args(&self.opts);
        // As root, apt otherwise drops to `_apt` for downloads, which cannot write to a cache
        // folder under $HOME.
        c.args(["-o", "APT::Sandbox::User=root"]);
        c.env("DEBIAN_FRONTEND", "noninteractive");
        c
    }

    /// The `Depends:` package names of `pkg` (candidate version; alternatives included).
    pub fn depends(&self, pkg: &str) -> Result<Vec<String>> {
        let out = cmd::output_any(self.cmd("apt-cache").args(["depends", pkg]), None)?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || !text.contains("Depends:") {
            bail!(
                "apt ({}) does not know package {pkg}: {}",
                self.name,
                last_line(&out.stderr)
            );
        }
        Ok(text
            .lines()
            .filter_map(|l| {
                l.trim_start()
                    .trim_start_matches('|')
                    .strip_prefix("Depends: ")
            })
            .map(|s| s.trim().trim_matches(|c| c == '<' || c == '>').to_string())
            .collect())
    }

    /// Whether `pkg` has a candidate version.
    pub fn exists(&self, pkg: &str) -> bool {
        cmd::output(
            self.cmd("apt-cache")
                .args(["show", "--no-all-versions", pkg]),
        )
        .is_ok_and(|o| !o.stdout.is_empty())
    }

    /// The candidate version of `pkg` (e.g. `6.1.192-3`), from the package lists only.
    pub fn candidate_version(&self, pkg: &str) -> Result<String> {
        let out = cmd::output_any(
            self.cmd("apt-cache")
                .args(["show", "--no-all-versions", pkg]),
            None,
        )?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("Version: "))
            .map(|v| v.trim().to_string())
            .with_context(|| format!("apt ({}) has no candidate for {pkg}", self.name))
    }

    /// `apt-get download` of `pkgs` into `dest`; returns the .deb paths.
    pub fn download(&self, pkgs: &[String], dest: &Path) -> Result<Vec<PathBuf>> {
        fs::create_dir_all(dest)?;
        eprintln!("xtask: downloading {}", pkgs.join(" "));
        cmd::output(
            self.cmd("apt-get")
                .arg("download")
                .args(pkgs)
                .current_dir(dest),
        )?;
        pkgs.iter()
            .map(|p| {
                fs::read_dir(dest)?
                    .flatten()
                    .map(|e| e.path())
                    .find(|f| {
                        f.file_name().is_some_and(|n| {
                            let n = n.to_string_lossy();
                            n.starts_with(&format!("{p}_")) && n.ends_with(".deb")
                        })
                    })
                    .with_context(|| {
                        format!(
                            "apt-get download left no .deb for {p} in {}",
                            dest.display()
                        )
                    })
            })
            .collect()
    }
}

/// `dpkg-deb -x deb dest`.
pub fn unpack_deb(deb: &Path, dest: &Path) -> Result<()> {
    fs::create_dir_all(dest)?;
    cmd::output(Command::new("dpkg-deb").arg("-x").arg(deb).arg(dest))?;
    Ok(())
}

/// Kept here for callers that predate [`crate::cmd`].
pub use crate::cmd::last_line;
