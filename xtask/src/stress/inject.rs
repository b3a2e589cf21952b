//! Checks of the faults `--inject` adds (stress.sh's INJECT): a never-synced population
//! must be the report's finding, and a failed write mid-cycle must leave everything as
//! found.

use super::guest::StressOutcome;
use super::plan::expected;
use super::report::{layout_of, setup_populations, summarize};
use super::{Inject, StressArgs};
use anyhow::{bail, Context, Result};
use std::collections::BTreeSet;

/// The slot st_populate wrote, from the `never-sync: mode=never … slot=N …` line.
pub fn never_sync_slot(output: &str) -> Option<u64> {
    let line = output
        .lines()
        .find_map(|l| l.strip_prefix("never-sync: "))?;
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix("slot="))
        .and_then(|n| n.parse().ok())
}

/// `(K, exit, injected count, same)` of every `restore K: exit=E injected=N same|DIFFERS`.
pub fn restore_lines(output: &str) -> Vec<(u64, i32, u32, bool, String)> {
    output
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("restore ")?;
            let (k, rest) = rest.split_once(": ")?;
            let mut w = rest.split_whitespace();
            let exit = w.next()?.strip_prefix("exit=")?.parse().ok()?;
            let n = w.next()?.strip_prefix("injected=")?.parse().ok()?;
            let same = w.next()? == "same";
            Some((k.parse().ok()?, exit, n, same, l.to_string()))
        })
        .collect()
}

/// The `killed: exit=E mode=M same|DIFFERS …` line of the stress killed mid-switch.
pub fn killed_line(output: &str) -> Option<(i32, String, bool, String)> {
    let l = output.lines().find(|l| l.starts_with("killed: "))?;
    let mut w = l.strip_prefix("killed: ")?.split_whitespace();
    let exit = w.next()?.strip_prefix("exit=")?.parse().ok()?;
    let mode = w.next()?.strip_prefix("mode=")?.to_string();
    let same = w.next()? == "same";
    Some((exit, mode, same, l.to_string()))
}

/// A run with `args.inject`: the plan's populations all paired, the injected one
/// unsynced with verdict 3; each forced error exits 1 and restores everything.
pub fn check(args: &StressArgs, o: &StressOutcome) -> Result<()> {
    if !o.host_errors.is_empty() {
        bail!("host actions failed: {}", o.host_errors.join("; "));
    }
    let s = summarize(&o.files)?;
    let (_, want) = expected(&layout_of(args, o), &args.paths);
    let want: BTreeSet<u64> = want.iter().map(|x| x.1).collect();
    if let Some(x) = setup_populations(&o.output)
        .iter()
        .find(|x| x.2 != "paired")
    {
        bail!(
            "NVDIMM setup: slot {} ({}) is {}, not paired",
            x.1,
            x.0,
            x.2
        );
    }
    if args.inject.contains(&Inject::NeverSync) {
        let slot = never_sync_slot(&o.output)
            .context("the guest printed no `never-sync: … slot=N` line (st_populate never)")?;
        if o.exit_status != 3 || !s.verdict.starts_with("FOUND") {
            bail!(
                "a never-synced population: exit {} (want 3), verdict: {}",
                o.exit_status,
                s.verdict
            );
        }
        let injected = s.slots.iter().find(|x| x.1 == slot);
        match injected {
            Some(x) if x.2.starts_with("unsynced:") => {}
            other => bail!("the module's slot {slot} in the report: {other:?}, want unsynced"),
        }
        if s.populations != want.len() as u64 + 1 {
            bail!(
                "{} populations in the report, want the plan's {} and the module's",
                s.populations,
                want.len()
            );
        }
        if let Some(x) = s.slots.iter().find(|x| x.1 != slot && x.2 != "paired") {
            bail!("slot {} ({}) is {}, not paired", x.1, x.0, x.2);
        }
    } else if o.exit_status != 0 {
        bail!("exit {}: verdict: {}", o.exit_status, s.verdict);
    }
    if args.inject.contains(&Inject::CycleError) {
        let r = restore_lines(&o.output);
        if r.len() != 2 {
            bail!(
                "{} `restore K:` lines from the forced errors, want 2",
                r.len()
            );
        }
        for (k, exit, n, same, line) in r {
            if exit != 1 || n == 0 || !same {
                bail!("forced error at write {k}: want exit 1, the injected failure named, every block and device as before: {line}");
            }
        }
        // SIGKILL (exit 128 + 9) with dax0.0 in system-ram: restored by the watcher.
        let (exit, mode, same, line) = killed_line(&o.output)
            .context("the guest printed no `killed:` line (stress killed mid-switch)")?;
        if exit != 137 || mode != "kmem" || !same {
            bail!("stress killed with dax0.0 in system-ram: want exit 137, mode kmem, every block and device restored: {line}");
        }
        if let Some(l) = o.output.lines().find(|l| l.starts_with("journal left: ")) {
            bail!("after the killed stress was restored: {l}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_guest_lines() {
        let out = "x\nnever-sync: mode=never level=pgd slot=509 addr=0xfffffe8000000000 ts_ns=1 sync_ts_ns=0\nrestore 5: exit=1 injected=1 same before=[a] after=[a]\nrestore 18: exit=0 injected=0 DIFFERS before=[a] after=[b]\n";
        assert_eq!(never_sync_slot(out), Some(509));
        let r = restore_lines(out);
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].0, r[0].1, r[0].2, r[0].3), (5, 1, 1, true));
        assert_eq!((r[1].0, r[1].1, r[1].2, r[1].3), (18, 0, 0, false));
        assert_eq!(never_sync_slot("never-sync: mode=never"), None);
        let k = killed_line("killed: exit=137 mode=kmem same before=[a] after=[a]\n").unwrap();
        assert_eq!((k.0, k.1.as_str(), k.2), (137, "kmem", true));
        assert!(
            !killed_line("killed: exit=137 mode=device_dax DIFFERS x")
                .unwrap()
                .2
        );
    }
}
