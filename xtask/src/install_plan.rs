//! What `apt-get install` would do to the host, read from its simulation (`-s`) before
//! anything is changed, and the one way out xtask takes when apt would remove a package.
//!
//! apt removes an installed package when a new one breaks it. Seen on Debian 12 machines:
//! `qemu-utils` from bookworm-backports (10.0) declares `Breaks: qemu-system-common (<< 8.0)`,
//! so installing bookworm's `qemu-system-x86` (7.2) removes it. When a package apt would
//! remove came from backports (its version carries `~bpoNN`), the same installation is tried
//! from `<codename>-backports` (a source passed with `-o`, /etc/apt is not edited), which
//! brings the matching version instead. When that still removes something, xtask stops and
//! names the command a person should review and run.

use anyhow::{Context, Result};
use std::path::Path;

/// One simulated installation.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// `name (version)` of every package installed or upgraded.
    pub installs: Vec<String>,
    /// `(name, installed version)` of every package removed.
    pub removals: Vec<(String, String)>,
}

impl Plan {
    /// Parses `apt-get -s install` output: `Inst pkg [old] (new …)` and `Remv pkg [old]`.
    pub fn parse(simulation: &str) -> Plan {
        let mut plan = Plan::default();
        for line in simulation.lines() {
            let mut words = line.split_whitespace();
            let (Some(verb), Some(name)) = (words.next(), words.next()) else {
                continue;
            };
            let rest: Vec<&str> = words.collect();
            match verb {
                "Inst" => {
                    // The new version is the first word in parentheses (an upgrade has
                    // `[old]` before it).
                    let new = rest.iter().find_map(|w| w.strip_prefix('(')).unwrap_or("?");
                    plan.installs.push(format!("{name} ({new})"));
                }
                "Remv" => {
                    let old = rest
                        .first()
                        .map(|w| w.trim_matches(|c| c == '[' || c == ']'))
                        .unwrap_or("?");
                    plan.removals.push((name.to_string(), old.to_string()));
                }
                _ => {}
            }
        }
        plan
    }

    /// Whether a package apt would remove came from Debian backports.
    pub fn removes_a_backport(&self) -> bool {
        self.removals.iter().any(|(_, v)| is_backport_version(v))
    }

    /// `name version` of the removals, for messages.
    pub fn removal_list(&self) -> String {
        let names: Vec<String> = self
            .removals
            .iter()
            .map(|(n, v)| format!("{n} {v}"))
            .collect();
        names.join(", ")
    }
}

/// Debian backports versions end in `~bpoNN+M` (NN: the release's number).
fn is_backport_version(version: &str) -> bool {
    version.contains("~bpo")
}

/// The host's release codename (`VERSION_CODENAME` in /etc/os-release).
pub fn host_codename(os_release: &str) -> Option<String> {
    os_release.lines().find_map(|l| {
        l.strip_prefix("VERSION_CODENAME=")
            .map(|v| v.trim_matches('"').to_string())
            .filter(|v| !v.is_empty())
    })
}

/// A sources.list holding the host's own `/etc/apt/sources.list` (if any) plus
/// `<codename>-backports`, written to `dir`; the host's `sources.list.d` still applies.
/// Returns the `-o` options that select it.
pub fn backports_sources(dir: &Path, codename: &str) -> Result<Vec<String>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let file = dir.join("sources.list");
    let mut text = std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default();
    text.push_str(&format!(
        "\ndeb [signed-by={}] {} {codename}-backports main\n",
        crate::apt::DEBIAN_KEYRING,
        crate::apt::DEBIAN_MIRROR
    ));
    std::fs::write(&file, text).with_context(|| format!("cannot write {}", file.display()))?;
    Ok(vec![
        "-o".into(),
        format!("Dir::Etc::SourceList={}", file.display()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    // Trimmed from `apt-get install -s --no-install-recommends qemu-system-x86` on a Debian 12
    // machine with qemu-utils from bookworm-backports.
    const REMOVES: &str = "\
NOTE: This is only a simulation!
The following packages will be REMOVED:
  qemu-utils
Remv qemu-utils [1:10.0.2+ds-2+deb13u1~bpo12+1]
Inst libzstd1 [1.5.4+dfsg2-5] (1.5.4+dfsg2-5+deb12u1 Debian-Security:12/oldstable-security [amd64])
Inst qemu-system-x86 (1:7.2+dfsg-7+deb12u18+b2 Debian:12.14/oldstable [amd64])
Conf qemu-system-x86 (1:7.2+dfsg-7+deb12u18+b2 Debian:12.14/oldstable [amd64])
";

    #[test]
    fn a_simulation_names_installs_and_removals() {
        let plan = Plan::parse(REMOVES);
        assert_eq!(
            plan.removals,
            vec![(
                "qemu-utils".to_string(),
                "1:10.0.2+ds-2+deb13u1~bpo12+1".to_string()
            )]
        );
        assert_eq!(
            plan.installs,
            vec![
                "libzstd1 (1.5.4+dfsg2-5+deb12u1)",
                "qemu-system-x86 (1:7.2+dfsg-7+deb12u18+b2)"
            ]
        );
        assert!(plan.removes_a_backport());
        assert_eq!(
            plan.removal_list(),
            "qemu-utils 1:10.0.2+ds-2+deb13u1~bpo12+1"
        );
    }

    #[test]
    fn a_plain_install_removes_nothing() {
        let plan = Plan::parse("Inst cpio (2.13+dfsg-7.1 Debian:12.15/oldstable [amd64])\n");
        assert!(plan.removals.is_empty());
        assert!(!plan.removes_a_backport());
    }

    #[test]
    fn the_codename_comes_from_os_release() {
        let os = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_CODENAME=bookworm\n";
        assert_eq!(host_codename(os).as_deref(), Some("bookworm"));
        assert_eq!(host_codename("ID=debian\n"), None);
    }
}
