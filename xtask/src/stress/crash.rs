//! `--setup-under-stress`: the NVDIMM switched to device-dax by a child process while
//! `sync-trace stress` cycles the virtio-mem blocks. On the `6.1-reverted` kernel (no
//! vmemmap sync) that child oopses on the new struct pages; the check is that the tracer
//! reports it: verdict 3, the NVDIMM's vmemmap slot `unsynced` with PGDs missing, and the
//! report file written at the finding, while the run still went on.

use super::guest::StressOutcome;
use super::plan::{slots_of, NVDIMM};
use super::report::{layout_of, summarize};
use super::StressArgs;
use anyhow::{bail, Context, Result};

/// `(missing, total)` from a slot verdict `unsynced: M of T PGDs lacked the entry`.
pub fn pgds_missing(verdict: &str) -> Option<(u32, u32)> {
    let rest = verdict.strip_prefix("unsynced: ")?;
    let mut w = rest.split_whitespace();
    let m = w.next()?.parse().ok()?;
    (w.next()? == "of").then_some(())?;
    Some((m, w.next()?.parse().ok()?))
}

/// The run found the missed vmemmap sync of the device-dax switch.
pub fn check(args: &StressArgs, o: &StressOutcome) -> Result<()> {
    if !o.host_errors.is_empty() {
        bail!("host actions failed: {}", o.host_errors.join("; "));
    }
    let s = summarize(&o.files)?;
    if o.exit_status != 3 || !s.verdict.starts_with("FOUND") {
        bail!("exit {} (want 3), verdict: {}", o.exit_status, s.verdict);
    }
    let layout = layout_of(args, o);
    let vmemmap = slots_of(&layout, NVDIMM)
        .into_iter()
        .find(|x| x.0 == "vmemmap")
        .context("the plan has no vmemmap slot for the NVDIMM")?
        .1;
    let row = s
        .slots
        .iter()
        .find(|x| x.1 == vmemmap)
        .with_context(|| format!("the report has no row for vmemmap slot {vmemmap}"))?;
    match pgds_missing(&row.2) {
        Some((m, t)) if m > 0 && t >= m => {}
        _ => bail!(
            "vmemmap slot {vmemmap} is `{}`, want unsynced with PGDs missing",
            row.2
        ),
    }
    let early = o
        .files
        .iter()
        .find(|(n, _)| n == "stress-early.html")
        .map(|(_, b)| String::from_utf8_lossy(b).to_string())
        .context("no report file was written while the run went on (stress-early.html)")?;
    if !early.contains("Written during the run") || !early.contains("unsynced:") {
        bail!("the report written during the run does not show the unsynced slot");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_missing_pgds() {
        assert_eq!(
            pgds_missing("unsynced: 12 of 14 PGDs lacked the entry"),
            Some((12, 14))
        );
        assert_eq!(pgds_missing("paired"), None);
        assert_eq!(pgds_missing("unsynced, unconfirmed: no sync"), None);
    }
}
