//! Checks of the livepatch scenario (scripts/livepatch.sh): arch_sync_kernel_mappings replaced
//! by the test livepatch (tests/modules/st_livepatch) before a run starts and while one traces.
//! Every synced population stays paired and its arch_sync_kernel_mappings call is traced; the
//! patch's own function is what ran (a trampoline that bypasses it would leave its count at 0);
//! the kernel warns about nothing.

use anyhow::{bail, ensure, Context as _, Result};
use sync_trace::record::{PairedRecord, UnsyncedRecord};
use sync_trace_common::{Method, Target};

use super::output::{of_kind, Output};

/// The test livepatch's name (its module's).
const PATCH: &str = "st_livepatch";
/// Syncs each step makes while the patch is enabled.
const PATCHED_SYNCS: u64 = 2;

pub fn check_livepatch(o: &Output) -> Result<()> {
    check_probe(o)?;
    // Patched before the run: the kprobes attach and the attach line names the patch.
    check_step(
        o,
        "patched-first",
        &format!("attached arch_sync_kernel_mappings via kprobe (livepatched by {PATCH}:"),
        true,
    )?;
    // `--attach fentry` refuses the patched function, naming the patch; sync_global_pgds
    // (not patched) still pairs every population.
    check_step(
        o,
        "patched-first-fentry",
        &format!(
            "not attached arch_sync_kernel_mappings: refused: fentry: not tried: livepatched by {PATCH} ("
        ),
        false,
    )?;
    // Patched while a run traces: the probes attached before stay and see every call.
    check_step(
        o,
        "traced-first",
        "attached arch_sync_kernel_mappings via fentry",
        true,
    )?;
    check_step(
        o,
        "traced-first-kprobe",
        "attached arch_sync_kernel_mappings via kprobe",
        true,
    )
}

/// `probe` with the patch enabled: the patched target by kprobe, the patch named; the others
/// not named.
fn check_probe(o: &Output) -> Result<()> {
    const STEP: &str = "probe-patched";
    o.expect_exit(STEP, 0)?;
    let report = o.probe(STEP)?;
    let name = Target::ArchSyncKernelMappings.symbol();
    let t = report
        .target(name)
        .with_context(|| format!("step {STEP}: no {name} in the report"))?;
    ensure!(
        t.attached && t.method == Some(Method::Kprobe) && t.livepatched_by == [PATCH],
        "step {STEP}: {name} not attached by kprobe with {PATCH} named: {t:?}"
    );
    for other in report.targets.iter().filter(|t| t.symbol != name) {
        ensure!(
            other.livepatched_by.is_empty(),
            "step {STEP}: {} reported livepatched: {other:?}",
            other.symbol
        );
    }
    Ok(())
}

/// One run's step: the attach line `attach` (the whole line must start so; a line that names
/// the patch where none was loaded at attach fails), the patch enabled, run `PATCHED_SYNCS`
/// times and removed, every synced population paired and never unsynced, and with `traced`
/// each one's arch_sync_kernel_mappings call in a `sync` record.
fn check_step(o: &Output, step: &str, attach: &str, traced: bool) -> Result<()> {
    let lines = o.lines_of(step)?;
    o.expect_exit(step, 0)?;
    let line = lines
        .iter()
        .filter_map(|l| l.strip_prefix("log: "))
        .filter_map(|l| l.split_once("] ").map(|(_, msg)| msg))
        .find(|msg| msg.contains(" arch_sync_kernel_mappings"))
        .with_context(|| format!("step {step}: no attach line of arch_sync_kernel_mappings"))?;
    ensure!(
        line.starts_with(attach) && (attach.contains(PATCH) || !line.contains("livepatch")),
        "step {step}: attach line `{line}`, expected `{attach}…`"
    );
    for (key, want) in [
        ("patch_enabled", "1 transition=0".into()),
        ("patch_calls", PATCHED_SYNCS.to_string()),
        ("patch_removed", "0".into()),
        ("kernel_warnings", "0".into()),
    ] {
        let got = o.value(step, key)?;
        ensure!(got == want, "step {step}: {key}={got}, expected {want}");
    }

    let recs = o.records(step)?;
    let slots = sync_slots(lines)?;
    ensure!(!slots.is_empty(), "step {step}: the module made no sync");
    let paired = of_kind::<PairedRecord>(&recs);
    let unsynced = of_kind::<UnsyncedRecord>(&recs);
    let syncs = o.syncs(step)?;
    for slot in slots {
        ensure!(
            paired.iter().any(|p| p.pop.slot == slot),
            "step {step}: slot {slot} never paired"
        );
        if let Some(u) = unsynced.iter().find(|u| u.pop.slot == slot) {
            bail!("step {step}: slot {slot} reported unsynced: {u:?}");
        }
        let arch = syncs.iter().any(|s| {
            s.function == Target::ArchSyncKernelMappings && s.entry_seen && s.covers(slot)
        });
        ensure!(
            arch == traced,
            "step {step}: slot {slot}'s arch_sync_kernel_mappings call traced: {arch}, expected {traced}"
        );
    }
    Ok(())
}

/// The slots of the module's `sync` actions in a step (its `last` lines, `mode=sync … slot=N`).
fn sync_slots(lines: &[String]) -> Result<Vec<usize>> {
    lines
        .iter()
        .filter(|l| l.starts_with("mode=sync "))
        .map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("slot="))
                .and_then(|s| s.parse().ok())
                .with_context(|| format!("no slot in `{l}`"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_slots_of_the_sync_actions() {
        let lines: Vec<String> = [
            "mode=sync level=p4d slot=507 addr=0xfffffd8000000000 ts_ns=1 sync_ts_ns=2",
            "mode=never level=p4d slot=506 addr=0xfffffd0000000000 ts_ns=3 sync_ts_ns=0",
            "mode=sync level=pgd slot=505 addr=0xfffffc8000000000 ts_ns=4 sync_ts_ns=5",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(sync_slots(&lines).unwrap(), [507, 505]);
        assert!(sync_slots(&["mode=sync level=p4d".to_string()]).is_err());
    }
}
