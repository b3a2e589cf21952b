//! Traced acts that name a kernel top-level slot, and the rule that times
//! and attributes a population from them.
//!
//! A population of slot S happened after the last scan that saw S empty
//! (`empty_ns`) and before the scan that saw it present (`seen_ns`). The
//! acts that can tell more:
//! - a helper-shaped sync, `arch_sync_kernel_mappings(a, a)` (or the
//!   `sync_global_pgds(a, a)` it tail-calls) over S: the kernel issues it
//!   right after `p4d_populate_kernel()`/`pgd_populate_kernel()` wrote the
//!   entry, and only then (docs/kernel.md). Its entry is the population's
//!   time, exactly. It can arrive after the scan that saw the entry: the
//!   scan may run between the write and the call.
//! - a traced populate function over S (`vmemmap_p4d_populate`, …) or an
//!   `init_memory_mapping()` whose range covers S: each *could* have made
//!   the entry. If the one that did is traced, the population came after
//!   the first of them that started after `empty_ns`; and if one of them was
//!   already running at `empty_ns`, nothing better than `empty_ns` is known.
//!
//! Memory is bounded per slot without dropping anything that could change a
//! verdict: beyond [`MAX_ACTS`] the two closest acts of a slot merge into one
//! span (first entry, last exit), which can only make a bound looser.

use sync_trace_common::raw::PTRS;

use crate::record::Stack;

use crate::record::{LatencyKind, Source, Task};

/// Acts kept per slot and kind before neighbours merge.
const MAX_ACTS: usize = 32;

/// What kind of act it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActKind {
    /// `arch_sync_kernel_mappings(a, a)` / `sync_global_pgds(a, a)`.
    HelperSync,
    /// A populate function (`vmemmap_p4d_populate`, …) over the slot.
    PopulateCall,
    /// `init_memory_mapping()` over the slot (the direct map).
    Mapping,
}

#[derive(Clone, Debug)]
pub struct Act {
    pub kind: ActKind,
    pub entry_ns: u64,
    /// `u64::MAX` while the call is still running.
    pub exit_ns: u64,
    pub task: Option<Task>,
    pub stack: Stack,
}

/// When and by what a population happened, as far as the acts tell.
#[derive(Clone, Debug, PartialEq)]
pub struct Attribution {
    pub source: Source,
    pub latency: LatencyKind,
    /// Helper: the helper sync's entry; otherwise when the scan saw it.
    pub ts_ns: u64,
    /// The population came after this.
    pub not_before_ns: u64,
    pub task: Option<Task>,
    pub stack: Stack,
}

pub struct Evidence {
    /// Per slot, helper syncs and calls, each sorted by entry.
    helpers: Vec<Vec<Act>>,
    calls: Vec<Vec<Act>>,
}

impl Default for Evidence {
    fn default() -> Self {
        Self {
            helpers: vec![Vec::new(); PTRS],
            calls: vec![Vec::new(); PTRS],
        }
    }
}

impl Evidence {
    /// Records an act over slots `first..=last`. An act seen while running
    /// and again at its exit is kept once, with the exit.
    pub fn add(&mut self, first: usize, last: usize, act: Act) {
        for slot in first..=last.min(PTRS - 1) {
            let list = match act.kind {
                ActKind::HelperSync => &mut self.helpers[slot],
                _ => &mut self.calls[slot],
            };
            if let Some(a) = list
                .iter_mut()
                .find(|a| a.entry_ns == act.entry_ns && a.kind == act.kind)
            {
                a.exit_ns = a.exit_ns.min(act.exit_ns);
                if a.task.is_none() {
                    a.task = act.task.clone();
                    a.stack = act.stack.clone();
                }
                continue;
            }
            let at = list.partition_point(|a| a.entry_ns <= act.entry_ns);
            list.insert(at, act.clone());
            if list.len() > MAX_ACTS {
                merge_closest(list);
            }
        }
    }

    /// Times and attributes the population of `slot` that a scan saw at
    /// `seen_ns`, the previous scan having seen it empty at `empty_ns`.
    pub fn attribute(&self, slot: usize, empty_ns: u64, seen_ns: u64) -> Attribution {
        let calls = &self.calls[slot];
        // A call already running when the slot was last seen empty may be
        // the one that filled it: then only `empty_ns` bounds it.
        let overlapping = calls
            .iter()
            .any(|a| a.entry_ns < empty_ns && a.exit_ns >= empty_ns);
        let first_call = calls
            .iter()
            .find(|a| a.entry_ns >= empty_ns && a.entry_ns <= seen_ns);
        let (not_before_ns, bound) = match (overlapping, first_call) {
            (false, Some(a)) => (a.entry_ns, Some(a)),
            _ => (empty_ns, None),
        };
        if let Some(h) = self.helpers[slot].iter().find(|a| a.entry_ns >= empty_ns) {
            return Attribution {
                source: Source::Helper,
                latency: LatencyKind::Exact,
                ts_ns: h.entry_ns,
                not_before_ns: not_before_ns.min(h.entry_ns),
                task: h.task.clone(),
                stack: h.stack.clone(),
            };
        }
        let traced_call = bound.filter(|a| a.kind == ActKind::PopulateCall);
        Attribution {
            source: if traced_call.is_some() {
                Source::Call
            } else {
                Source::Effect
            },
            latency: LatencyKind::UpperBound,
            ts_ns: seen_ns,
            not_before_ns,
            task: traced_call.and_then(|a| a.task.clone()),
            stack: traced_call.map(|a| a.stack.clone()).unwrap_or_default(),
        }
    }

    /// Drops the acts of `slot` that ended by `ns`: a later population of
    /// the slot comes after a scan that sees it empty again, so after `ns`.
    pub fn forget(&mut self, slot: usize, ns: u64) {
        self.helpers[slot].retain(|a| a.exit_ns > ns);
        self.calls[slot].retain(|a| a.exit_ns > ns);
    }
}

/// Merges the two neighbouring acts whose gap is smallest into one span:
/// the first entry and the last exit, attributed to the earlier act.
fn merge_closest(list: &mut Vec<Act>) {
    let Some(i) =
        (0..list.len() - 1).min_by_key(|&i| list[i + 1].entry_ns.saturating_sub(list[i].entry_ns))
    else {
        return;
    };
    let next = list.remove(i + 1);
    let a = &mut list[i];
    a.exit_ns = a.exit_ns.max(next.exit_ns);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn act(kind: ActKind, entry: u64, exit: u64) -> Act {
        Act {
            kind,
            entry_ns: entry,
            exit_ns: exit,
            task: Some(Task::default()),
            stack: Stack::default(),
        }
    }

    #[test]
    fn a_helper_sync_after_the_scan_still_times_the_population() {
        let mut e = Evidence::default();
        e.add(469, 469, act(ActKind::HelperSync, 2_500, 2_600));
        let a = e.attribute(469, 1_000, 2_000);
        assert_eq!(
            (a.source, a.latency, a.ts_ns),
            (Source::Helper, LatencyKind::Exact, 2_500)
        );
    }

    #[test]
    fn the_first_call_after_the_empty_scan_bounds_it_not_the_last() {
        let mut e = Evidence::default();
        for t in [900, 1_200, 1_500, 1_900] {
            e.add(469, 469, act(ActKind::PopulateCall, t, t + 10));
        }
        let a = e.attribute(469, 1_000, 2_000);
        assert_eq!(
            (a.source, a.latency),
            (Source::Call, LatencyKind::UpperBound)
        );
        assert_eq!((a.not_before_ns, a.ts_ns), (1_200, 2_000));
    }

    #[test]
    fn a_call_running_at_the_empty_scan_leaves_only_the_scan_as_bound() {
        let mut e = Evidence::default();
        e.add(274, 274, act(ActKind::Mapping, 900, 1_100));
        e.add(274, 274, act(ActKind::Mapping, 1_500, 1_600));
        let a = e.attribute(274, 1_000, 2_000);
        assert_eq!((a.source, a.not_before_ns), (Source::Effect, 1_000));
    }

    #[test]
    fn merging_keeps_the_first_entry_and_only_loosens() {
        let mut e = Evidence::default();
        for t in 0..200u64 {
            e.add(
                469,
                469,
                act(ActKind::PopulateCall, 1_000 + t * 10, 1_000 + t * 10 + 5),
            );
        }
        assert!(e.calls[469].len() <= MAX_ACTS);
        assert_eq!(e.calls[469][0].entry_ns, 1_000);
        // A bound never later than the true first call after the empty scan.
        let a = e.attribute(469, 1_503, 5_000);
        assert!(a.not_before_ns <= 1_510, "{a:?}");
    }

    #[test]
    fn a_running_call_seen_again_at_exit_is_one_act() {
        let mut e = Evidence::default();
        e.add(274, 275, act(ActKind::Mapping, 1_500, u64::MAX));
        e.add(274, 275, act(ActKind::Mapping, 1_500, 1_700));
        assert_eq!(e.calls[274].len(), 1);
        assert_eq!(e.calls[274][0].exit_ns, 1_700);
        e.forget(274, 1_700);
        assert!(e.calls[274].is_empty() && e.calls[275].len() == 1);
    }
}
