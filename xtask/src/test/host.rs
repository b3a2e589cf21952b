//! Checks that need no guest: formatting, lints and unit tests.

use std::process::Command;

use anyhow::{bail, Context as _, Result};

use crate::guest_binary::workspace_root;

fn cargo(args: &[&str]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .current_dir(workspace_root())
        .args(args)
        .status()
        .with_context(|| format!("cannot run {cargo}"))?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

/// (name, cargo arguments) of every host check.
pub const HOST_CHECKS: [(&str, &[&str]); 3] = [
    ("fmt", &["fmt", "--all", "--check"]),
    (
        "clippy",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    ),
    ("unit", &["test", "--workspace"]),
];

pub fn run(args: &[&str]) -> Result<()> {
    cargo(args)
}

/// Without privilege, `probe` exits 1 with one line naming what is missing.
pub fn unprivileged(bin: &std::path::Path) -> Result<()> {
    // setpriv (util-linux) drops to nobody with no capabilities.
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(bin)
        .arg("probe")
        .output()
        .context("cannot run setpriv")?;
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.code() != Some(1) {
        bail!(
            "unprivileged probe exited {:?}, expected 1: {err}",
            out.status.code()
        );
    }
    let lines: Vec<&str> = err.lines().collect();
    if lines.len() != 1 || !lines[0].contains("CAP_BPF") || !lines[0].contains("CAP_PERFMON") {
        bail!("unprivileged probe did not name the missing capabilities in one line: {err}");
    }
    Ok(())
}

/// deploy/test.sh: promtool rules tests, dashboard, systemd unit and
/// Kubernetes manifest schema checks.
pub fn deploy() -> Result<()> {
    let status = Command::new("bash")
        .arg(workspace_root().join("deploy/test.sh"))
        .status()
        .context("cannot run bash deploy/test.sh")?;
    if !status.success() {
        bail!("deploy/test.sh failed ({status})");
    }
    Ok(())
}
