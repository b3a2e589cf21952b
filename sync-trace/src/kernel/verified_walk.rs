//! Several walks of pgd_list turned into one verified result: a
//! disagreement is believed only when two complete walks see it.

use sync_trace_common::raw;

use super::snapshot::Snapshot;

/// Walks tried before a verified walk gives up (an invalid node ends a walk
/// early when the list changes under it; the program already restarts it a
/// few times itself).
pub const MAX_WALKS: usize = 4;

/// Turns walks into one verified result: the first complete walk when it
/// finds nothing; a disagreement only when a second complete walk confirms
/// it (per-slot minimum); never a count from a walk that ended early, and
/// never an incomplete walk merged with a complete one. `next` does one walk.
/// A truncated walk is not retried (the next one would stop at the same
/// bound).
pub fn verify_walks(
    mut next: impl FnMut() -> anyhow::Result<Snapshot>,
) -> anyhow::Result<Snapshot> {
    let mut first: Option<Snapshot> = None;
    let mut last: Option<Snapshot> = None;
    for _ in 0..MAX_WALKS {
        let mut w = next()?;
        if !w.complete() {
            w.clear_counts();
            let truncated = w.truncated();
            last = Some(w);
            if truncated {
                break;
            }
            continue;
        }
        match first {
            None if !w.has_disagreement() => return Ok(w),
            None => first = Some(w),
            Some(f) => return Ok(f.confirmed_by(&w)),
        }
    }
    match (first, last) {
        (Some(f), Some(l)) => {
            // The confirmation ended early: what stopped it is reported too.
            let mut u = f.unconfirmed();
            u.raw.status |= l.raw.status & (raw::SCAN_TRUNCATED | raw::SCAN_FAULT);
            Ok(u)
        }
        (Some(f), None) => Ok(f.unconfirmed()),
        (None, Some(l)) => Ok(l),
        (None, None) => Err(anyhow::anyhow!("no walk of pgd_list was made")),
    }
}

#[cfg(test)]
mod tests {
    use sync_trace_common::raw;

    use super::*;
    use crate::kernel::snapshot::tests::{complete, walk};

    #[test]
    fn a_clean_complete_walk_is_enough() {
        let mut n = 0;
        let v = verify_walks(|| {
            n += 1;
            Ok(complete(&[]))
        })
        .unwrap();
        assert_eq!(n, 1);
        assert!(v.complete() && !v.has_disagreement());
    }

    #[test]
    fn a_disagreement_needs_a_second_complete_walk() {
        let mut walks = vec![complete(&[(402, 5)]), complete(&[(402, 3), (468, 2)])].into_iter();
        let v = verify_walks(|| Ok(walks.next().unwrap())).unwrap();
        assert!(v.complete() && v.confirmed());
        assert_eq!((v.missing(402), v.missing(468)), (3, 0), "per-slot minimum");
    }

    #[test]
    fn an_incomplete_walk_is_never_merged() {
        // First incomplete with a (bogus) count, then two complete ones.
        let mut walks = vec![
            walk(&[(402, 99)], raw::SCAN_DONE | raw::SCAN_FAULT),
            complete(&[(402, 4)]),
            walk(&[(402, 99)], raw::SCAN_DONE | raw::SCAN_FAULT),
            complete(&[(402, 6)]),
        ]
        .into_iter();
        let v = verify_walks(|| Ok(walks.next().unwrap())).unwrap();
        assert!(v.complete() && v.confirmed());
        assert_eq!(v.missing(402), 4);
    }

    #[test]
    fn an_unconfirmed_disagreement_is_not_reported() {
        let mut walks = vec![complete(&[(402, 5)])]
            .into_iter()
            .chain(std::iter::repeat(walk(
                &[(402, 1)],
                raw::SCAN_DONE | raw::SCAN_FAULT,
            )));
        let v = verify_walks(|| Ok(walks.next().unwrap())).unwrap();
        assert!(!v.complete() && v.incomplete());
        assert_eq!(v.missing(402), 0);
        assert!(v.raw.status & raw::SCAN_FAULT != 0);
        assert!(v.raw.missing.iter().all(|&n| n == 0));
    }

    #[test]
    fn a_truncated_walk_is_not_retried_and_has_no_counts() {
        let mut n = 0;
        let v = verify_walks(|| {
            n += 1;
            Ok(walk(&[(402, 5)], raw::SCAN_DONE | raw::SCAN_TRUNCATED))
        })
        .unwrap();
        assert_eq!(n, 1);
        assert!(v.truncated() && !v.complete());
        assert!(v.raw.missing.iter().all(|&c| c == 0));
    }
}
