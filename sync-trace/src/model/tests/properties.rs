//! The verdicts over every order the kernel and the event loop can produce.

use proptest::prelude::*;

use super::sim::*;
use crate::record::{LatencyKind, PopulateRecord, Record, Source};

fn follow() -> impl Strategy<Value = Follow> {
    prop_oneof![
        (0..200 * US, 1..500 * US).prop_map(|(delay, dur)| Follow::Helper { delay, dur }),
        (0..30 * MS, 1..2 * MS).prop_map(|(delay, dur)| Follow::Range { delay, dur }),
        Just(Follow::Never),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn verdicts_follow_the_kernel(
        t in MS..80 * MS,
        follow in follow(),
        calls in prop::collection::vec((0..40 * MS, 1..200 * US), 0..60),
        noise in prop::collection::vec(0..300 * MS, 0..5),
        first_scan in 0..50 * MS,
        period in MS..50 * MS,
        early in 0usize..4,
        loss in prop::option::of((0..100 * MS, 0..5 * MS)),
    ) {
        let (recs, synced) = kernel(t, follow, &calls, &noise);
        // Records lost right when the population happened, or long after
        // every verdict.
        let loss_holds_t = loss.map(|(_, width)| width % 2 == 0);
        let loss_at = loss.map(|(after, width)| {
            if width % 2 == 0 { t } else { t + 2 * GRACE + 10 * period + after }
        });
        let out = simulate(&recs, t, synced, first_scan, period, early, loss_at);
        let pops: Vec<&PopulateRecord> = out.iter().filter_map(|r| match r {
            Record::Populate(p) => Some(p),
            _ => None,
        }).collect();
        prop_assert_eq!(pops.len(), 1, "{:?}", out);
        let pop = pops[0];
        prop_assert_eq!(pop.pop.slot, SLOT);
        // The bounds are true: it happened after not_before and by ts.
        prop_assert!(pop.not_before_ns <= t, "not_before {} after the population {}", pop.not_before_ns, t);
        prop_assert!(pop.ts_ns >= t, "ts {} before the population {}", pop.ts_ns, t);
        let paired: Vec<_> = out.iter().filter_map(|r| match r {
            Record::Paired(p) => Some(p),
            _ => None,
        }).collect();
        let unsynced: Vec<_> = out.iter().filter_map(|r| match r {
            Record::Unsynced(u) => Some(u),
            _ => None,
        }).collect();
        match (follow, synced) {
            (Follow::Never, _) => {
                prop_assert!(paired.is_empty(), "{:?}", paired);
                prop_assert_eq!(unsynced.len(), 1, "{:?}", out);
                prop_assert!(unsynced[0].confirmed && unsynced[0].pgds_missing == PGDS);
            }
            (_, Some(end)) => {
                // Every sync here ends well within the grace window.
                prop_assert!(unsynced.is_empty(), "false unsynced: {:?}", out);
                prop_assert_eq!(paired.len(), 1, "{:?}", out);
                let p = paired[0];
                prop_assert!(p.ts_ns >= t && p.ts_ns <= end + 3 * US, "{:?}", p);
                prop_assert!(p.latency_ns >= p.ts_ns - pop.ts_ns.min(p.ts_ns) || p.latency_kind == LatencyKind::UpperBound);
                if let Follow::Helper { .. } = follow {
                    prop_assert_eq!(pop.pop.source, Source::Helper);
                    prop_assert_eq!(p.latency_kind, LatencyKind::Exact);
                    prop_assert!(p.latency_ns <= end - t, "{:?}", p);
                } else {
                    prop_assert_eq!(p.latency_kind, LatencyKind::UpperBound);
                    prop_assert!(p.latency_ns >= p.ts_ns - t, "an upper bound below the truth: {:?}", p);
                }
            }
            (_, None) => unreachable!(),
        }
        let verdicts: Vec<bool> = out.iter().filter_map(|r| match r {
            Record::Paired(p) => Some(p.uncertain),
            Record::Unsynced(u) => Some(u.uncertain),
            _ => None,
        }).collect();
        match loss_holds_t {
            Some(true) => prop_assert!(verdicts.iter().all(|&u| u), "loss around the population, verdict certain: {:?}", out),
            _ => prop_assert!(verdicts.iter().all(|&u| !u), "no loss in the window, verdict uncertain: {:?}", out),
        }
        let Some(Record::Summary(s)) = out.last() else { panic!("no summary") };
        prop_assert_eq!(s.paired + s.unsynced + s.uncertain, 1);
    }
}
