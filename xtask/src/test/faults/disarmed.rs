//! The faults scenario's `kprobes-disarmed` step: kprobes disarmed globally
//! (debugfs `kprobes/enabled` = 0) while `run --attach kprobe` traces.

use std::collections::BTreeSet;

use anyhow::{ensure, Result};
use sync_trace::record::DetachedRecord;

use super::stderr;
use crate::test::output::Output;

/// Every target attached by kprobe gets exactly one `detached` record with reason
/// `disarmed` and one `probe detached:` line; the run goes on to a normal exit.
pub(super) fn check_disarmed(o: &Output) -> Result<()> {
    let step = "kprobes-disarmed";
    o.expect_exit(step, 0)?;
    let attached: BTreeSet<String> = o
        .lines_of(step)?
        .iter()
        .filter_map(|l| l.strip_prefix("log: "))
        .filter_map(|l| l.split_once("attached ")?.1.split_once(" via kprobe"))
        .map(|(sym, _)| sym.to_string())
        .collect();
    ensure!(
        !attached.is_empty(),
        "{step}: no target attached by kprobe (the run's log has no `attached … via kprobe`)"
    );
    let detached = o.events::<DetachedRecord>(step)?;
    let named: BTreeSet<String> = detached.iter().map(|d| d.symbol.clone()).collect();
    ensure!(
        detached.len() == attached.len() && named == attached,
        "{step}: kprobe targets {attached:?}, `detached` records for {:?}",
        detached.iter().map(|d| &d.symbol).collect::<Vec<_>>()
    );
    ensure!(
        detached.iter().all(|d| d.reason == "disarmed"),
        "{step}: reasons {:?}, expected `disarmed`",
        detached.iter().map(|d| &d.reason).collect::<Vec<_>>()
    );
    let lines = stderr(o, step)?
        .into_iter()
        .filter(|l| l.contains("probe detached:") && l.contains("kprobes/enabled is 0"))
        .count();
    ensure!(
        lines == attached.len(),
        "{step}: {lines} `probe detached:` lines for {} kprobe targets",
        attached.len()
    );
    println!(
        "faults: kprobes disarmed globally: {} detached ({})",
        attached.len(),
        attached.iter().cloned().collect::<Vec<_>>().join(", ")
    );
    Ok(())
}
