//! This process's memory, from /proc/self/status.

use anyhow::{anyhow, Context as _};

fn status_kib(field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")
        .context("cannot read /proc/self/status (RSS is read from there; Linux only)")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow!("/proc/self/status has no {field} line"))
}

/// Resident set size now, KiB.
pub fn rss_kib() -> anyhow::Result<u64> {
    status_kib("VmRSS:")
}

/// Peak resident set size since the last [`reset_peak`], KiB.
pub fn peak_kib() -> anyhow::Result<u64> {
    status_kib("VmHWM:")
}

/// Starts a new peak: writing 5 to /proc/self/clear_refs resets VmHWM to
/// the current RSS (Linux 4.0 and later).
pub fn reset_peak() -> anyhow::Result<()> {
    std::fs::write("/proc/self/clear_refs", "5")
        .context("cannot reset the peak RSS through /proc/self/clear_refs")
}
