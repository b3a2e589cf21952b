//! The walk that verifies syncs, held until their burst is over.
//!
//! A hot-add makes its syncs in a burst: the direct map's and the memory
//! map's of each section, milliseconds apart, with the kernel still adding
//! and onlining memory between and after them. Walking pgd_list at each
//! sync's wake-up put the daemon's walks beside the kernel's own work, on
//! its CPU as often as not (the ring wakes the daemon where the sync ran);
//! in a guest the traced hot-add then took twice the untraced one, while
//! the same probes with the daemon stopped cost nothing measurable. So the
//! covered slots are kept, and one walk verifies them all once no sync has
//! come for [`QUIET`], and never later than [`LONGEST`] after the first.
//! Verdicts do not wait for it: a population is paired by its covering sync,
//! and judged unsynced by the walk at its grace deadline.

use std::time::Duration;

use crate::kernel::slot_set::SlotSet;

/// No new sync for this long: the burst is over. Longer than the gaps
/// between the syncs of one hot-add (one section's syncs are microseconds
/// to a few milliseconds apart, its onlining a few milliseconds more).
pub const QUIET: Duration = Duration::from_millis(20);

/// The longest a sync waits for its walk, however long the burst: a storm
/// of syncs is still verified, at most this late.
pub const LONGEST: Duration = Duration::from_millis(50);

/// The slots that syncs covered and no walk has verified yet.
#[derive(Debug, Default)]
pub struct SyncWalks {
    pending: Option<Pending>,
}

#[derive(Debug)]
struct Pending {
    slots: SlotSet,
    first_ns: u64,
    last_ns: u64,
}

impl SyncWalks {
    /// Syncs read at `now_ns` covered `slots`.
    pub fn add(&mut self, slots: SlotSet, now_ns: u64) {
        if slots.is_empty() {
            return;
        }
        match &mut self.pending {
            Some(p) => {
                p.slots = p.slots.union(&slots);
                p.last_ns = p.last_ns.max(now_ns);
            }
            None => {
                self.pending = Some(Pending {
                    slots,
                    first_ns: now_ns,
                    last_ns: now_ns,
                })
            }
        }
    }

    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// How long from `now_ns` until the walk is due; `None` with nothing
    /// pending.
    pub fn wait(&self, now_ns: u64) -> Option<Duration> {
        let p = self.pending.as_ref()?;
        let due =
            (p.last_ns.saturating_add(nanos(QUIET))).min(p.first_ns.saturating_add(nanos(LONGEST)));
        Some(Duration::from_nanos(due.saturating_sub(now_ns)))
    }

    /// The slots to walk now, and nothing pending after.
    pub fn take(&mut self) -> Option<SlotSet> {
        self.pending.take().map(|p| p.slots)
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn slots(v: &[usize]) -> SlotSet {
        v.iter().copied().collect()
    }

    #[test]
    fn a_burst_is_walked_once_after_it_ends() {
        let mut w = SyncWalks::default();
        assert_eq!(w.wait(0), None);
        w.add(SlotSet::empty(), 0);
        assert!(
            !w.is_pending(),
            "a sync over no kernel slot waits for nothing"
        );
        w.add(slots(&[337]), 100 * MS);
        assert_eq!(w.wait(100 * MS), Some(QUIET));
        // Another sync 5 ms later: the quiet period starts again.
        w.add(slots(&[469]), 105 * MS);
        assert_eq!(w.wait(110 * MS), Some(Duration::from_millis(15)));
        assert_eq!(w.wait(200 * MS), Some(Duration::ZERO));
        assert_eq!(w.take(), Some(slots(&[337, 469])));
        assert!(!w.is_pending());
        assert_eq!(w.take(), None);
    }

    #[test]
    fn a_storm_is_walked_at_most_longest_after_its_first_sync() {
        let mut w = SyncWalks::default();
        for k in 0..100 {
            w.add(slots(&[300]), k * MS);
        }
        // Syncs every millisecond for 100 ms: due 50 ms after the first.
        assert_eq!(w.wait(40 * MS), Some(Duration::from_millis(10)));
        assert_eq!(w.wait(99 * MS), Some(Duration::ZERO));
    }
}
