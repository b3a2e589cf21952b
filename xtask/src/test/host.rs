//! Checks that need no guest: formatting, lints and unit tests.

use std::process::Command;

use anyhow::{bail, Result};

use crate::{cmd, guest_binary::workspace_root};

fn cargo(args: &[&str]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    cmd::status(
        Command::new(&cargo)
            .current_dir(workspace_root())
            .args(args),
    )
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

/// Without privilege, `probe`, `run`, `audit` and `stress` exit 1 with one
/// line naming the missing capabilities.
pub fn unprivileged(bin: &std::path::Path) -> Result<()> {
    let cases: [(&[&str], &[&str]); 4] = [
        (&["probe"], &["CAP_BPF", "CAP_PERFMON"]),
        (&["run", "--duration", "1s"], &["CAP_BPF", "CAP_PERFMON"]),
        (&["audit"], &["CAP_BPF", "CAP_PERFMON"]),
        (&["stress", "--cycles", "1"], &["CAP_SYS_ADMIN"]),
    ];
    for (args, caps) in cases {
        // setpriv (util-linux) drops to nobody with no capabilities.
        let out = cmd::output_any(
            Command::new("setpriv")
                .args([
                    "--reuid=65534",
                    "--regid=65534",
                    "--clear-groups",
                    "--inh-caps=-all",
                ])
                .arg(bin)
                .args(args),
            None,
        )?;
        let what = args.join(" ");
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(1) {
            bail!(
                "unprivileged `{what}` exited {:?}, expected 1: {err}",
                out.status.code()
            );
        }
        let lines: Vec<&str> = err.lines().collect();
        if lines.len() != 1 || !caps.iter().all(|c| lines[0].contains(c)) || !out.stdout.is_empty()
        {
            bail!("unprivileged `{what}` did not name {caps:?} in one line on stderr (and nothing on stdout): {err}");
        }
    }
    Ok(())
}

/// deploy/test.sh: promtool rules tests, dashboard, systemd unit and
/// Kubernetes manifest schema checks.
pub fn deploy() -> Result<()> {
    cmd::status(Command::new("bash").arg(workspace_root().join("deploy/test.sh")))
}
