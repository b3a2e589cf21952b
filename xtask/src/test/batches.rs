//! The kernel's batches of populate calls (events.h, "Batches"): a hot-add or
//! a devmap makes one `vmemmap_pgd_populate()`/`vmemmap_p4d_populate()` call
//! per page or PMD of its memory map; where those functions are traced
//! (6.11 and later), the calls over an already present top-level entry must
//! reach userspace as a few `call` records that count them, with no ring
//! buffer record lost.

use anyhow::{ensure, Result};
use sync_trace::record::{CallRecord, LostRecord, Record};
use sync_trace_common::Target;

use super::output::{of_kind, Output};
use crate::vm::KernelId;

/// Populate calls counted per `call` record at least, over a step.
const MIN_CALLS_PER_RECORD: u64 = 4;

/// No ring record lost in `step`, and (where the vmemmap populate functions
/// are traced) their calls batched: at least `min_calls` counted, in at most
/// one record per [`MIN_CALLS_PER_RECORD`] calls. Returns (calls, records).
pub fn check_batched(
    o: &Output,
    step: &str,
    kernel: KernelId,
    min_calls: u64,
) -> Result<(u64, u64)> {
    let recs = o.records(step)?;
    check_records(&recs, kernel != KernelId::V6_1, min_calls)
}

fn check_records(recs: &[Record], traced: bool, min_calls: u64) -> Result<(u64, u64)> {
    let lost: Vec<LostRecord> = of_kind(recs);
    ensure!(
        lost.iter().all(|l| l.what != "events"),
        "ring buffer records lost: {lost:?}"
    );
    let populate: Vec<CallRecord> = of_kind::<CallRecord>(recs)
        .into_iter()
        .filter(|c| {
            matches!(
                c.function,
                Target::VmemmapPgdPopulate | Target::VmemmapP4dPopulate
            )
        })
        .collect();
    let calls: u64 = populate.iter().map(CallRecord::calls).sum();
    let records = populate.len() as u64;
    if traced {
        ensure!(
            calls >= min_calls,
            "{calls} vmemmap populate calls counted in {records} records, expected at least {min_calls}"
        );
        ensure!(
            records * MIN_CALLS_PER_RECORD <= calls,
            "{calls} vmemmap populate calls took {records} records: not batched"
        );
    }
    Ok((calls, records))
}

#[cfg(test)]
mod tests {
    use sync_trace::record::{Hex, Task};
    use sync_trace_common::Method;

    use super::*;

    fn call(calls: Option<u32>) -> Record {
        Record::Call(CallRecord {
            ts_ns: 1,
            end_ns: 2,
            duration_ns: 1,
            task: Task::default(),
            function: Target::VmemmapP4dPopulate,
            addr: Hex(0xffffea8000000000),
            end: None,
            method: Method::Fentry,
            entry_seen: true,
            stack: Default::default(),
            calls,
            addr_last: calls.map(|_| Hex(0xffffea8000001000)),
        })
    }

    #[test]
    fn batched_calls_pass_and_call_by_call_fails() {
        let batched = vec![call(None), call(Some(600)), call(Some(400))];
        assert_eq!(check_records(&batched, true, 512).unwrap(), (1001, 3));
        let single: Vec<Record> = (0..600).map(|_| call(None)).collect();
        assert!(check_records(&single, true, 512).is_err());
        // Untraced (6.1): only losses count.
        assert!(check_records(&single, false, 512).is_ok());
        assert!(check_records(&batched[..1], true, 512).is_err());
    }

    #[test]
    fn a_lost_event_fails() {
        let mut recs = vec![call(Some(600))];
        recs.push(Record::Lost(LostRecord {
            what: "events".into(),
            count: 3,
            total: 3,
            ts_ns: 5,
            since_ns: 1,
        }));
        assert!(check_records(&recs, true, 1).is_err());
    }
}
