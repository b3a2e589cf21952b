//! The recordings in `tests/fixtures/` must agree with what today's code
//! derives from their own raw data, so that they cannot go stale silently:
//! - every `sync` and `call` record is rebuilt from what the kernel reported
//!   (times, task, function, range, method, frames) by the tracer's own
//!   derivation: the helper form, caller class, slots and the stack without
//!   the probe's frames must come out identical;
//! - replaying the recording gives exactly the verdicts (`paired`,
//!   `unsynced`) the live run wrote, every field.
//!
//! When a change to the derivation makes this fail, record them again with
//! `cargo xtask fixtures` (guest runs) and review the diff.

use std::path::Path;

use sync_trace::{
    cmd::replay::{read_records, replay_records},
    record::{Batch, CallStack, CompletedCall, Record},
};
use sync_trace_common::Layout;

const FIXTURES: [&str; 3] = [
    "6.1-hotadd-32T.ndjson",
    "6.12-module.ndjson",
    "newest-hotadd-32T.ndjson",
];

/// The grace window the fixtures were recorded with (`run`'s default).
const GRACE_NS: u64 = 100_000_000;

fn load(name: &str) -> Vec<Record> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    read_records(&path).unwrap_or_else(|e| panic!("{e:#}"))
}

fn layout_of(name: &str, recs: &[Record]) -> Layout {
    match recs.first() {
        Some(Record::Layout(l)) => l.layout(),
        other => panic!("{name}: the first record is not `layout`: {other:?}"),
    }
}

/// The raw call behind a `sync` or `call` record.
fn raw_of(rec: &Record) -> Option<CompletedCall> {
    Some(match rec {
        Record::Sync(s) => CompletedCall {
            ts_ns: s.ts_ns,
            end_ns: s.end_ns,
            duration_ns: s.duration_ns,
            task: s.task.clone(),
            function: s.function,
            start: s.start.0,
            end: s.end.0,
            method: s.method,
            entry_seen: s.entry_seen,
            stack: CallStack::new(s.stack.to_vec()),
            batch: None,
        },
        Record::Call(c) => CompletedCall {
            ts_ns: c.ts_ns,
            end_ns: c.end_ns,
            duration_ns: c.duration_ns,
            task: c.task.clone(),
            function: c.function,
            start: c.addr.0,
            end: c.end.map_or(c.addr.0, |e| e.0),
            method: c.method,
            entry_seen: c.entry_seen,
            stack: CallStack::new(c.stack.to_vec()),
            batch: c.calls.map(|calls| Batch {
                calls,
                addr_last: c.addr_last.map_or(c.addr.0, |a| a.0),
            }),
        },
        _ => return None,
    })
}

#[test]
fn calls_derive_as_recorded() {
    for name in FIXTURES {
        let recs = load(name);
        let layout = layout_of(name, &recs);
        let mut calls = 0;
        for (i, rec) in recs.iter().enumerate() {
            let Some(raw) = raw_of(rec) else { continue };
            calls += 1;
            let derived = raw.into_record(&layout);
            assert_eq!(
                &derived,
                rec,
                "{name}:{}: today's code derives a different record from the same call; \
                 run `cargo xtask fixtures` and review the diff",
                i + 1
            );
        }
        assert!(calls > 0, "{name}: no sync or call record");
    }
}

fn verdicts(recs: &[Record]) -> Vec<&Record> {
    recs.iter()
        .filter(|r| matches!(r, Record::Paired(_) | Record::Unsynced(_)))
        .collect()
}

#[test]
fn replay_derives_the_recorded_verdicts() {
    for name in FIXTURES {
        let recs = load(name);
        let out = replay_records(&recs, GRACE_NS);
        let (recorded, replayed) = (verdicts(&recs), verdicts(&out));
        assert!(!recorded.is_empty(), "{name}: no verdict recorded");
        assert_eq!(
            recorded, replayed,
            "{name}: replay derives other verdicts than the live run wrote; \
             run `cargo xtask fixtures` and review the diff"
        );
    }
}
