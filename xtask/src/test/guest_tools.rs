//! Host tools copied into a guest with the shared libraries they load: the guest is a busybox
//! initramfs with no libc of its own.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context as _, Result};

/// Debian's bpftool (package `bpftool`).
const BPFTOOL: &str = "/usr/sbin/bpftool";

/// util-linux's setpriv (package `util-linux`): runs a command with capabilities dropped.
const SETPRIV: &str = "/usr/bin/setpriv";

/// `/usr/bin/setpriv` and its libraries (libcap-ng, libc), as [`bpftool_files`].
pub fn setpriv_files() -> Result<Vec<(PathBuf, String)>> {
    with_libraries(Path::new(SETPRIV))
}

/// `/usr/sbin/bpftool` and every library `ldd` resolves for it, each at the path the dynamic
/// loader looks for it in the guest (the same as on the host).
pub fn bpftool_files() -> Result<Vec<(PathBuf, String)>> {
    with_libraries(Path::new(BPFTOOL))
}

fn with_libraries(bin: &Path) -> Result<Vec<(PathBuf, String)>> {
    if !bin.exists() {
        let package = bin.file_name().map_or("", |n| match n.to_str() {
            Some("setpriv") => "util-linux",
            _ => "bpftool",
        });
        bail!(
            "{} is missing: install Debian's `{package}` package",
            bin.display()
        );
    }
    let out = Command::new("ldd")
        .arg(bin)
        .output()
        .context("cannot run ldd")?;
    if !out.status.success() {
        bail!(
            "ldd {}: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let mut files = vec![(bin.to_path_buf(), bin.display().to_string())];
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // `libelf.so.1 => /lib/x86_64-linux-gnu/libelf.so.1 (0x…)`, or the loader itself:
        // `/lib64/ld-linux-x86-64.so.2 (0x…)`; vdso lines have no path.
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            files.push((PathBuf::from(p), p.to_string()));
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_tool_names_its_package() {
        let e = with_libraries(Path::new("/nonexistent/bpftool")).unwrap_err();
        assert!(e.to_string().contains("`bpftool` package"), "{e}");
    }

    #[test]
    fn a_dynamic_binary_comes_with_its_loader_and_libc() {
        let files = with_libraries(Path::new("/bin/ls")).unwrap();
        assert!(
            files.iter().any(|(_, g)| g.contains("ld-linux")),
            "{files:?}"
        );
        assert!(
            files.iter().any(|(_, g)| g.contains("libc.so")),
            "{files:?}"
        );
    }
}
