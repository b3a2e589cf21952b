//! Records and cycle events as the report sees them.

use crate::cmd::stress::{
    cycle::{self, CycleEvent, Op, Outcome, Plan},
    observer::StressObserver,
    report::ReportBuilder,
};
use crate::record::Record;

pub(super) fn rec(json: &str) -> Record {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"))
}

pub(super) fn populate(ts: u64, slot: usize, region: &str) -> Record {
    rec(&format!(
        r#"{{"event":"populate","ts_ns":{ts},"not_before_ns":{ts},"cpu":null,"pid":null,"comm":null,"level":"p4d","slot":{slot},"addr":"0xffffea0000000000","region":"{region}","source":"helper","stack":[]}}"#
    ))
}

pub(super) fn paired(ts: u64, slot: usize, latency: u64) -> Record {
    rec(&format!(
        r#"{{"event":"paired","ts_ns":{},"cpu":1,"pid":9,"comm":"k","level":"p4d","slot":{slot},"addr":"0xffffea0000000000","region":"vmemmap","source":"helper","populated_ns":{ts},"latency_ns":{latency},"latency_kind":"exact","sync_function":"sync_global_pgds","sync_start":"0xffffea0000000000","sync_end":"0xffffea0000000000","late":false}}"#,
        ts + latency
    ))
}

pub(super) fn sync(ts: u64, dur: u64) -> Record {
    rec(&format!(
        r#"{{"event":"sync","ts_ns":{ts},"end_ns":{},"duration_ns":{dur},"cpu":1,"pid":9,"tid":9,"comm":"k","function":"sync_global_pgds","start":"0xffffea0000000000","end":"0xffffea0000000000","slot_first":468,"slot_last":468,"helper":true,"caller":"populate_helper","method":"fentry","entry_seen":true,"stack":[]}}"#,
        ts + dur
    ))
}

pub(super) fn unsynced(ts: u64, slot: usize, confirmed: bool) -> Record {
    rec(&format!(
        r#"{{"event":"unsynced","ts_ns":{},"cpu":null,"pid":null,"comm":null,"level":"p4d","slot":{slot},"addr":"0xfffffd0000000000","region":"other","source":"effect","populated_ns":{ts},"grace_ns":100000000,"pgds_missing":{},"pgds_total":5,"walk_complete":true,"confirmed":{confirmed},"stack":[]}}"#,
        ts + 100_000_000,
        if confirmed { 4 } else { 0 }
    ))
}

pub(super) fn verify(ts: u64, missing_slot: Option<usize>) -> Record {
    let missing = missing_slot.map_or(String::new(), |s| {
        format!(r#"{{"slot":{s},"addr":"0xfffffd0000000000","region":"other","pgds":4}}"#)
    });
    rec(&format!(
        r#"{{"event":"verify","ts_ns":{ts},"trigger":"sync","level":"p4d","pgds_total":5,"slots_checked":70,"complete":true,"ok":{},"missing":[{missing}],"mismatched":[]}}"#,
        missing_slot.is_none()
    ))
}

pub(super) fn action(
    ts: u64,
    target: &str,
    op: Op,
    outcome: Outcome,
    blocks: Vec<u64>,
) -> CycleEvent {
    CycleEvent::Action(cycle::Action {
        ts_ns: ts,
        end_ns: ts + 10,
        target: target.into(),
        op,
        outcome,
        blocks,
    })
}

pub(super) fn empty_plan() -> Plan {
    Plan {
        blocks: vec![],
        dax: vec![],
        skipped: vec![],
        cycles: Some(2),
        duration: None,
        fail_at_step: None,
    }
}

/// Two cycles: the first clean, the second with an unsynced population.
pub(super) fn two_cycles(found: bool) -> ReportBuilder {
    let mut b = ReportBuilder::default();
    let s = 1_000_000_000u64;
    b.record(&rec(
        r#"{"event":"layout","ts_ns":1,"kernel":"6.12.0-test","paging":"4","page_offset_base":"0xffff888000000000","vmalloc_base":"0xffffc90000000000","vmemmap_base":"0xffffea0000000000","kernel_boundary":273,"present":[273]}"#,
    ));
    b.record(&sync(s / 2, 1_000)); // before the first cycle
    b.cycle_event(&CycleEvent::Start {
        index: 1,
        of: Some(2),
        ts_ns: s,
    });
    b.cycle_event(&action(s + 1, "memory32", Op::Offline, Outcome::Ok, vec![]));
    b.cycle_event(&action(
        s + 2,
        "memory33",
        Op::Offline,
        Outcome::Busy,
        vec![],
    ));
    b.cycle_event(&action(s + 3, "memory32", Op::Online, Outcome::Ok, vec![]));
    b.cycle_event(&action(
        s + 4,
        "dax0.0",
        Op::ToSystemRam,
        Outcome::Ok,
        vec![16, 17],
    ));
    b.cycle_event(&action(
        s + 5,
        "dax0.0",
        Op::ToDevdax,
        Outcome::Ok,
        vec![16, 17],
    ));
    for i in 0..100u64 {
        let t = s + 10 + i * 1000;
        b.record(&sync(t, 2_000 + i));
        b.record(&populate(t, 468, "vmemmap"));
        b.record(&paired(t, 468, (i + 1) * 1_000));
    }
    b.record(&verify(s + 500_000, None));
    b.cycle_event(&CycleEvent::End {
        index: 1,
        ts_ns: 2 * s,
    });
    b.cycle_event(&CycleEvent::Start {
        index: 2,
        of: Some(2),
        ts_ns: 3 * s,
    });
    b.record(&populate(3 * s + 10, 337, "direct_map"));
    b.record(&sync(3 * s + 20, 5_000));
    b.record(&paired(3 * s + 10, 337, 7_000));
    if found {
        b.record(&populate(3 * s + 30, 506, "other"));
        b.record(&unsynced(3 * s + 30, 506, true));
        b.record(&verify(3 * s + 200_000_000, Some(506)));
    }
    b.record(&rec(
        r#"{"event":"lost","what":"events","count":3,"total":3,"ts_ns":3000000100,"since_ns":3000000000}"#,
    ));
    b.cycle_event(&CycleEvent::End {
        index: 2,
        ts_ns: 4 * s,
    });
    b.cycle_event(&CycleEvent::Restored { failures: vec![] });
    b.cycle_event(&CycleEvent::Done(Ok(())));
    b
}
