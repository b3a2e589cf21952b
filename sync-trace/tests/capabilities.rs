//! The deployments grant exactly what the daemon says it needs: the systemd
//! unit's CapabilityBoundingSet and the DaemonSet's `capabilities.add` are
//! `sync-trace capabilities`' `attach` plus `switch_user`, no more.

use std::{collections::BTreeSet, path::Path, process::Command};

fn deploy(file: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(file);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// What the binary reports it needs, as capability names.
fn needed() -> (BTreeSet<String>, Vec<String>) {
    let out = Command::new(env!("CARGO_BIN_EXE_sync-trace"))
        .args(["capabilities", "--json"])
        .output()
        .expect("sync-trace runs");
    assert!(out.status.success(), "capabilities exited {}", out.status);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let list = |k: &str| -> Vec<String> {
        v[k].as_array()
            .unwrap_or_else(|| panic!("no {k} list"))
            .iter()
            .map(|c| c.as_str().expect("a name").to_string())
            .collect()
    };
    let granted = list("attach")
        .into_iter()
        .chain(list("switch_user"))
        .collect();
    (granted, list("after_attach"))
}

#[test]
fn systemd_unit_grants_exactly_what_is_needed() {
    let (granted, after) = needed();
    let unit = deploy("systemd/sync-trace.service");
    let set: BTreeSet<String> = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("the unit sets CapabilityBoundingSet")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(set, granted, "the unit's bounding set");
    assert!(after.iter().all(|c| set.contains(c)));
    // Nothing handed to the process beyond its bounding set.
    assert!(unit.lines().any(|l| l.trim() == "AmbientCapabilities="));
}

#[test]
fn daemonset_grants_exactly_what_is_needed() {
    let (granted, _) = needed();
    let ds = deploy("kubernetes/daemonset.yaml");
    let lines: Vec<&str> = ds.lines().collect();
    let add = lines
        .iter()
        .position(|l| l.trim() == "add:")
        .expect("capabilities.add in the DaemonSet");
    assert!(
        lines[add - 1].trim() == "drop: [\"ALL\"]",
        "drop ALL before add"
    );
    let set: BTreeSet<String> = lines[add + 1..]
        .iter()
        .map_while(|l| l.trim().strip_prefix("- "))
        .map(|c| format!("CAP_{}", c.split_whitespace().next().unwrap_or("")))
        .collect();
    assert_eq!(set, granted, "the DaemonSet's capabilities.add");
}
