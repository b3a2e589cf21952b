//! What `run` keeps after attaching, as the module scenario's `privileges` step reads it
//! from /proc/PID/status in the guest.

use anyhow::{ensure, Result};

use super::output::Output;

/// After attaching, `run` is user nobody (65534) with CAP_BPF alone in
/// every thread (effective, permitted and bounding; nothing inheritable or
/// ambient; no new privileges), and still serves metrics, which saw the
/// never-synced population found after the drop.
pub fn check_privileges(o: &Output) -> Result<()> {
    /// CAP_BPF (39) alone, as /proc/PID/status prints a capability set.
    const BPF_ONLY: &str = "0000008000000000";
    let lines = o.lines_of("privileges")?;
    let want: [(&str, &str); 8] = [
        ("Uid", "65534 65534 65534 65534"),
        ("Gid", "65534 65534 65534 65534"),
        ("CapInh", "0000000000000000"),
        ("CapPrm", BPF_ONLY),
        ("CapEff", BPF_ONLY),
        ("CapBnd", BPF_ONLY),
        ("CapAmb", "0000000000000000"),
        ("NoNewPrivs", "1"),
    ];
    for (key, value) in want {
        let seen: Vec<&str> = lines
            .iter()
            .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(str::trim)
            .collect();
        ensure!(
            !seen.is_empty() && seen.iter().all(|v| *v == value),
            "run after attaching: {key} is {seen:?} in its threads, expected {value}"
        );
    }
    let metrics: u64 = o.value("privileges", "metrics_lines")?.parse()?;
    ensure!(metrics >= 10, "run as nobody served {metrics} metric lines");
    let unsynced: u64 = o.value("run", "metrics_unsynced")?.parse()?;
    ensure!(
        unsynced >= 1,
        "the metrics of run as nobody do not count the never-synced population"
    );
    Ok(())
}
