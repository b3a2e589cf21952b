//! The image's binary: `sync-trace` built as a static glibc executable, reproducibly.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context as _, Result};

use crate::cmd;
use crate::guest_binary::{cargo, target_dir, GUEST_TARGET};

/// Builds `sync-trace` (release) as a static glibc binary in its own target directory,
/// `target/static`: its RUSTFLAGS differ from every other build's, so sharing a directory
/// would rebuild one or the other each time. The image ships it and the guests run it.
/// Returns the binary, checked to be static.
pub fn build_static_binary(root: &Path) -> Result<PathBuf> {
    let dir = target_dir(root)?.join("static");
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    // No musl target is installed: `+crt-static` links glibc statically. The remaps keep the
    // checkout and cargo-home paths out of the binary (panic locations), for reproducibility.
    let mut flags = vec![
        "-C".to_string(),
        "target-feature=+crt-static".to_string(),
        format!("--remap-path-prefix={}=/sync-trace", root.display()),
    ];
    if let Some(home) = cargo_home {
        flags.push(format!("--remap-path-prefix={}=/cargo", home.display()));
    }
    cmd::status(
        cargo()
            .current_dir(root)
            .args([
                "build",
                "--release",
                "-p",
                "sync-trace",
                "--target",
                GUEST_TARGET,
            ])
            .env("CARGO_TARGET_DIR", &dir)
            // An explicit --target keeps these flags away from build scripts and proc macros.
            .env("CARGO_ENCODED_RUSTFLAGS", flags.join("\x1f"))
            .env_remove("RUSTFLAGS"),
    )
    .context("building the static sync-trace failed")?;
    let bin = dir.join(GUEST_TARGET).join("release/sync-trace");
    let elf = fs::read(&bin)
        .with_context(|| format!("cargo succeeded but {} is missing", bin.display()))?;
    ensure!(
        is_static_elf(&elf)?,
        "{} has an ELF interpreter: it is not statically linked",
        bin.display()
    );
    Ok(bin)
}

/// True if `elf` (ELF64 little-endian) has no PT_INTERP program header, i.e. needs no dynamic
/// loader and no shared library at run time.
pub fn is_static_elf(elf: &[u8]) -> Result<bool> {
    ensure!(
        elf.len() >= 64 && elf[..4] == *b"\x7fELF" && elf[4] == 2 && elf[5] == 1,
        "not an ELF64 little-endian file"
    );
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into()?) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    for i in 0..phnum {
        let o = phoff + i * phentsize;
        let p_type = elf
            .get(o..o + 4)
            .context("program header outside the file")?;
        if u32::from_le_bytes(p_type.try_into()?) == 3 {
            return Ok(false); // PT_INTERP
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_binaries_are_told_apart() {
        // This test binary is dynamically linked (no crt-static in `cargo test`).
        let me = fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(!is_static_elf(&me).unwrap());
        assert!(is_static_elf(b"not an elf").is_err());
    }
}
