//! The anchor of the startup figures: Debian's bpftrace for the host's release (bookworm:
//! 0.17), downloaded with the host's apt and put in the guest with every shared library it
//! loads. The guest has only busybox, so the libraries come along: those of packages the
//! host has installed from the host's own /lib (same release, same files), the others
//! (LLVM, clang, bcc...) unpacked from their .debs. `ldd` of the unpacked binary, with the
//! unpacked library folders first on LD_LIBRARY_PATH, names the file of every library.

use crate::apt::{unpack_deb, Apt};
use crate::{cmd, deps, kernels};
use anyhow::{bail, Context, Result};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The multiarch library folder, on the host and in the guest.
const LIBDIR: &str = "/usr/lib/x86_64-linux-gnu";
/// The ELF interpreter bpftrace names (PT_INTERP).
const LOADER: &str = "/lib64/ld-linux-x86-64.so.2";

/// bpftrace and its libraries as (host file, guest path), and its version.
pub struct Bpftrace {
    pub files: Vec<(PathBuf, String)>,
    pub version: String,
}

/// The packages to unpack: bpftrace and, through `Depends:`, every package the host lacks.
fn closure(apt: &Apt) -> Result<Vec<String>> {
    let mut todo = vec!["bpftrace".to_string()];
    let mut seen = BTreeSet::new();
    while let Some(p) = todo.pop() {
        if !seen.insert(p.clone()) {
            continue;
        }
        for d in apt.depends(&p)? {
            // Installed packages' files are taken from the host; virtual names are skipped.
            if !seen.contains(&d) && !deps::is_installed(&d) && apt.exists(&d) {
                todo.push(d);
            }
        }
    }
    Ok(seen.into_iter().collect())
}

/// Downloads (once; kept in the cache) and resolves bpftrace.
pub fn fetch() -> Result<Bpftrace> {
    let apt = Apt::host();
    let version = apt.candidate_version("bpftrace").context(
        "the host's apt has no bpftrace: the bench's anchor needs Debian's bpftrace package (bookworm or later)",
    )?;
    let dir = kernels::cache_dir().join(format!("bpftrace-{version}"));
    let root = dir.join("root");
    let done = dir.join("unpacked");
    if !done.exists() {
        let pkgs = closure(&apt)?;
        let debs = apt
            .download(&pkgs, &dir.join("debs"))
            .context("cannot download bpftrace and its libraries")?;
        for d in &debs {
            unpack_deb(d, &root)?;
        }
        fs::write(&done, pkgs.join("\n"))?;
    }
    let bin = root.join("usr/bin/bpftrace");
    if !bin.is_file() {
        bail!(
            "{} is missing: remove {} to unpack bpftrace again",
            bin.display(),
            done.display()
        );
    }
    let libs = resolve(&bin, &root)?;
    let mut files = vec![(bin, "/usr/bin/bpftrace".to_string())];
    files.extend(libs);
    Ok(Bpftrace { files, version })
}

/// `ldd BIN` with the unpacked folders first: each library as (host file, guest path).
fn resolve(bin: &Path, root: &Path) -> Result<Vec<(PathBuf, String)>> {
    let path = [
        root.join(LIBDIR.trim_start_matches('/')),
        root.join("lib/x86_64-linux-gnu"),
    ]
    .iter()
    .map(|p| p.display().to_string())
    .collect::<Vec<_>>()
    .join(":");
    let out = cmd::output(Command::new("ldd").arg(bin).env("LD_LIBRARY_PATH", &path))
        .with_context(|| format!("ldd {} failed", bin.display()))?;
    parse_ldd(&String::from_utf8_lossy(&out.stdout))
}

/// The libraries of `ldd` output: `name => /path (0x...)` go to LIBDIR under their name,
/// the interpreter to its own path; a `not found` is an error naming it.
fn parse_ldd(text: &str) -> Result<Vec<(PathBuf, String)>> {
    let mut v = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some((name, rest)) = line.split_once(" => ") {
            if rest.starts_with("not found") {
                bail!(
                    "bpftrace needs {name}, which neither the host nor the unpacked packages have"
                );
            }
            let file = rest.split(" (").next().unwrap_or(rest).trim();
            v.push((PathBuf::from(file), format!("{LIBDIR}/{name}")));
        } else if line.starts_with(LOADER) {
            v.push((PathBuf::from(LOADER), LOADER.to_string()));
        }
    }
    if !v.iter().any(|(_, g)| g == LOADER) {
        bail!("ldd named no {LOADER} for bpftrace: is it an x86_64 glibc binary?");
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ldd() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibLLVM-14.so.1 => /c/root/usr/lib/x86_64-linux-gnu/libLLVM-14.so.1 (0x00007f)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        let v = parse_ldd(out).unwrap();
        assert_eq!(
            v,
            [
                (
                    PathBuf::from("/c/root/usr/lib/x86_64-linux-gnu/libLLVM-14.so.1"),
                    format!("{LIBDIR}/libLLVM-14.so.1")
                ),
                (
                    PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                    format!("{LIBDIR}/libc.so.6")
                ),
                (PathBuf::from(LOADER), LOADER.to_string()),
            ]
        );
        let e = parse_ldd("\tlibbcc.so.0 => not found\n").unwrap_err();
        assert!(e.to_string().contains("libbcc.so.0"), "{e}");
    }
}
