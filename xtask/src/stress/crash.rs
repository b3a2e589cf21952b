//! `--setup-under-stress`: the NVDIMM switched to device-dax by a child process while
//! `sync-trace stress` cycles the virtio-mem blocks. On the `6.1-reverted` kernel (no
//! vmemmap sync) that child oopses on the new struct pages; the check is that the tracer
//! reports it: verdict 3, the NVDIMM's vmemmap slot `unsynced` with PGDs missing, and the
//! report file written at the finding, while the run still went on, already showing that
//! slot. When the oops leaves memory hotplug wedged (a block write that never returns), the
//! check also wants `stress` to have given up on that write (`hung_write` in its report)
//! and ended by itself, with exit 3.

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
    if !early.contains("Written during the run") {
        bail!("stress-early.html is not marked as written during the run");
    }
    match early_row(&early, vmemmap).as_deref().and_then(pgds_missing) {
        Some((m, t)) if m > 0 && t >= m => {}
        _ => bail!(
            "the report written during the run does not show vmemmap slot {vmemmap} unsynced with PGDs missing"
        ),
    }
    wedge(o)
}

/// The verdict cell of `slot`'s row in the page's slot table (`html.rs`).
fn early_row(page: &str, slot: u64) -> Option<String> {
    let start = page.find(&format!("<tr><td>{slot}</td>"))?;
    let row = &page[start..start + page[start..].find("</tr>")?];
    if !row.contains(">vmemmap<") {
        return None;
    }
    let cell = row.rsplit("<td class=\"l\">").next()?;
    Some(cell.trim_end_matches("</td>").to_string())
}

/// How `stress` ended after the oops: it gave up on a block write that did not return
/// (memory hotplug wedged: the oopsed task's pages pinned in a block it offlines), said
/// so, and ended by itself; or it went on cycling (nothing wedged) and the script stopped
/// it. Which one depends on where the oopsed task's pages were: both are right, a report
/// that says neither is not.
fn wedge(o: &StressOutcome) -> Result<()> {
    let json = o
        .files
        .iter()
        .find(|(n, _)| n == "stress.json")
        .context("the guest sent no stress.json")?;
    let r: serde_json::Value = serde_json::from_slice(&json.1).context("stress.json")?;
    let by_itself = o.output.contains("stress ended by itself: yes");
    let interrupted = r["interrupted"] == serde_json::Value::Bool(true);
    let hung = &r["hung_write"];
    if hung.is_null() {
        if by_itself || !interrupted {
            bail!("stress ended by itself, with no hung write in its report");
        }
        println!(
            "xtask stress: stress went on cycling after the oops (nothing wedged) and was stopped"
        );
        return Ok(());
    }
    let path = hung["path"].as_str().unwrap_or("");
    if !path.starts_with("/sys/devices/system/memory/memory") {
        bail!("stress's report names a hung write that is not a block's: {hung}");
    }
    if !by_itself || interrupted {
        bail!("stress gave up on a write ({hung}) but did not end by itself");
    }
    if !o.output.contains("memory hotplug looks wedged") {
        bail!("stress's stderr has no line saying memory hotplug looks wedged");
    }
    println!("xtask stress: memory hotplug wedged after the oops; stress gave up on {hung} and ended by itself");
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

    #[test]
    fn reads_a_slot_row_of_the_page() {
        let page = "<table><tr><td>337</td><td class=\"l\">0xffffa88000000000</td><td class=\"l\">direct_map</td><td class=\"l\">effect</td><td>4/4</td><td class=\"l\">paired</td></tr><tr><td>469</td><td class=\"l\">0xffffea8000000000</td><td class=\"l\">vmemmap</td><td class=\"l\">helper</td><td>1/5</td><td class=\"l\">unsynced: 4 of 5 PGDs lacked the entry</td></tr></table>";
        assert_eq!(
            early_row(page, 469).as_deref().and_then(pgds_missing),
            Some((4, 5))
        );
        assert_eq!(early_row(page, 337).as_deref(), None);
        assert_eq!(early_row(page, 468), None);
    }
}
