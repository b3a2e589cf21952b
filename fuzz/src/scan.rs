//! The SCAN map as the daemon reads it: `struct st_scan` values of any
//! content, taken as snapshots, checked for a plausible CO-RE layout,
//! merged by the two-walk verification, and fed to the model as the
//! baseline and later scans.

use std::mem::size_of;

use sync_trace::{
    kernel::{
        core_facts::{implausible_layout, missing_core},
        scan_stats::ScanStats,
        snapshot::Snapshot,
        verified_walk::verify_walks,
    },
    model::Model,
    record::Trigger,
};
use sync_trace_common::raw::{RawScan, KERNEL_HALF, PTRS};

use crate::{assert_error_line, input::Input, ring::round_trip};

/// Scans per input at most.
const MAX_SCANS: usize = 16;

const TRIGGERS: [Trigger; 4] = [
    Trigger::Sync,
    Trigger::Sweep,
    Trigger::Deadline,
    Trigger::Audit,
];

/// A `RawScan` from `bytes` (zero-padded): every bit pattern is valid.
fn scan_of(bytes: &[u8]) -> RawScan {
    let mut r = RawScan::zeroed();
    // SAFETY: RawScan is repr(C) plain old data (integers and arrays of
    // integers): any bytes are a valid value; at most its size is copied.
    unsafe {
        std::ptr::copy_nonoverlapping(
            bytes.as_ptr(),
            (&mut r as *mut RawScan).cast::<u8>(),
            bytes.len().min(size_of::<RawScan>()),
        );
    }
    r
}

pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let kasan = input.bool();
    let mut snaps = Vec::new();
    while !input.is_empty() && snaps.len() < MAX_SCANS {
        // A short chunk leaves the rest of the scan zero: inputs need not
        // be 8 KiB to reach the header fields.
        let len = usize::from(input.u16()) % (size_of::<RawScan>() + 1);
        snaps.push(Snapshot {
            raw: scan_of(input.bytes(len)),
        });
    }
    let mut stats = ScanStats::default();
    for s in &snaps {
        let r = &s.raw;
        stats.table(r);
        stats.walk_run(r.max_run_ns);
        stats.walk(r);
        if let Some(why) = implausible_layout(r) {
            assert_error_line(&why, &["struct page layout"]);
        }
        let _ = missing_core(r.core);
        let _ = s.layout();
        assert!(s.present_kernel_slots().all(|slot| slot < PTRS));
        for slot in KERNEL_HALF..PTRS {
            if s.missing(slot) > 0 || s.mismatch(slot) > 0 {
                assert!(
                    s.complete() && s.checked(slot),
                    "a count from an incomplete walk"
                );
            }
        }
        let _ = s.has_disagreement();
        let u = s.unconfirmed();
        assert!(!u.has_disagreement(), "an unconfirmed walk with counts");
    }
    let _ = stats.to_string();
    let _ = stats.median_walk_run_ns();
    for pair in snaps.windows(2) {
        let c = pair[0].confirmed_by(&pair[1]);
        for slot in KERNEL_HALF..PTRS {
            assert!(
                c.missing(slot) <= pair[0].missing(slot).max(pair[1].missing(slot)),
                "confirmation raised a count"
            );
        }
    }
    let mut walks = snaps.iter().copied();
    let _ = verify_walks(|| walks.next().ok_or_else(|| anyhow::anyhow!("no more walks")));
    // The model: the first scan is the baseline, the others live scans.
    let Some((first, rest)) = snaps.split_first() else {
        return;
    };
    let mut model = Model::new(100_000_000);
    let mut out = Vec::new();
    model.baseline(first, kasan);
    for (i, s) in rest.iter().enumerate() {
        model.on_scan(s, TRIGGERS[i % TRIGGERS.len()], &mut out);
    }
    model.finish(&mut out);
    round_trip(&out);
}
