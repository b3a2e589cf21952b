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
