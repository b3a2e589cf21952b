//! The real bug on a real kernel: Debian's 6.1 built with the fix of
//! "mm: introduce and use {pgd,p4d}_populate_kernel()" taken out
//! (6.1-reverted), where compound devmap (the device-dax path) populates
//! vmemmap slot 469 without a sync and the kernel oopses on it.

use anyhow::{ensure, Context as _, Result};
use sync_trace_common::Region;

use super::output::Output;

/// 4-level, no KASLR: the vmemmap slot of struct pages at 32 TiB.
const SLOT_VMEMMAP_32T: usize = 469;

pub fn check_devmap_bug(o: &Output) -> Result<()> {
    let oops = o
        .oops
        .as_deref()
        .context("the kernel did not oops: was the sync really taken out?")?;
    ensure!(
        oops.contains("unable to handle page fault") && oops.contains("PGD 0"),
        "the oops is not the missing-sync fault (`PGD 0` on a vmemmap address):\n{oops}"
    );
    o.expect_exit("run", 0)?;
    let unsynced = o.unsynced("run")?;
    let u = unsynced
        .iter()
        .find(|u| u.pop.slot == SLOT_VMEMMAP_32T)
        .with_context(|| format!("no unsynced record for vmemmap slot 469: {unsynced:?}"))?;
    ensure!(
        u.pop.region == Region::Vmemmap && u.confirmed && u.pgds_missing > 0 && u.walk_complete,
        "unsynced of slot 469 without PGDs missing it: {u:?}"
    );
    let paired = o.paired("run")?;
    ensure!(
        !paired.iter().any(|p| p.pop.slot == SLOT_VMEMMAP_32T),
        "slot 469 paired on a kernel that never syncs it: {paired:?}"
    );
    let helper = o.syncs("run")?.into_iter().find(|s| s.helper);
    ensure!(
        helper.is_none(),
        "a helper sync on a kernel without it: {helper:?}"
    );
    o.expect_exit("audit", 3)
}
