use sync_trace_common::{Method, Target};

use super::*;
use crate::record::{Caller, Record, Stack, Task};

fn serde(s: &SyncRecord) -> String {
    serde_json::to_string(&Record::Sync(s.clone())).unwrap()
}

fn ours(s: &SyncRecord) -> String {
    let mut v = Vec::new();
    write_sync(&mut v, s);
    String::from_utf8(v).unwrap()
}

fn sync(comm: &str, stack: Vec<String>) -> SyncRecord {
    SyncRecord {
        ts_ns: u64::MAX,
        end_ns: 0,
        duration_ns: 1_234_567,
        task: Task {
            cpu: u32::MAX,
            pid: 1,
            tid: 0,
            comm: comm.into(),
        },
        function: Target::SyncGlobalPgds,
        start: Hex(0xffff_ea80_0000_0000),
        end: Hex(0),
        slot_first: 256,
        slot_last: 511,
        helper: true,
        caller: Caller::PopulateHelper,
        method: Method::Kprobe,
        entry_seen: false,
        stack: Stack::new(stack),
    }
}

#[test]
fn every_character_is_written_as_serde_json_writes_it() {
    let all: String = (0u32..0x80)
        .chain([0xe9, 0x2028, 0xfffd, 0x1f600])
        .filter_map(char::from_u32)
        .collect();
    for comm in ["", "kworker/u4:1", "we\"ird\\tab\t", &all] {
        let s = sync(comm, vec![all.clone(), "a+0x1 [m]".into()]);
        assert_eq!(ours(&s), serde(&s));
    }
}

#[test]
fn every_field_value_is_written_as_serde_json_writes_it() {
    let mut s = sync("bpftool", vec![]);
    for (helper, entry_seen) in [(false, true), (true, false)] {
        for caller in <Caller as strum::IntoEnumIterator>::iter() {
            for function in Target::ALL {
                for method in [Method::Fentry, Method::Kprobe] {
                    (s.helper, s.entry_seen, s.caller) = (helper, entry_seen, caller);
                    (s.function, s.method) = (function, method);
                    s.start = Hex(s.start.0.rotate_left(7) ^ 0x1234_5678);
                    assert_eq!(ours(&s), serde(&s));
                }
            }
        }
    }
}

/// The records the daemon wrote in guests.
#[test]
fn the_recorded_syncs_are_written_again_byte_for_byte() {
    let mut n = 0;
    for text in [
        include_str!("../../tests/fixtures/6.1-hotadd-32T.ndjson"),
        include_str!("../../tests/fixtures/6.12-module.ndjson"),
        include_str!("../../tests/fixtures/newest-hotadd-32T.ndjson"),
    ] {
        for line in text.lines() {
            if let Ok(Record::Sync(s)) = serde_json::from_str::<Record>(line) {
                assert_eq!(ours(&s), serde(&s));
                n += 1;
            }
        }
    }
    assert!(n > 10, "only {n} sync records in the fixtures");
}

/// Integers at every length boundary, the padded runs of every value,
/// and task names around the length written in place.
#[test]
fn numbers_runs_and_names_at_their_bounds_are_written_as_serde_json_writes_them() {
    let mut w = SyncJson::default();
    let mut s = sync("k", vec!["a+0x1".into()]);
    let mut p = 1u64;
    for _ in 0..20 {
        for v in [p - 1, p, p + 1, p.wrapping_mul(10).wrapping_sub(1)] {
            (s.ts_ns, s.end_ns, s.duration_ns, s.slot_first) = (v, v, v, v as usize);
            let mut out = Vec::new();
            w.write(&mut out, &s);
            assert_eq!(String::from_utf8(out).unwrap(), serde(&s));
        }
        p = p.wrapping_mul(10);
    }
    for n in [COMM_INLINE - 1, COMM_INLINE, COMM_INLINE + 1] {
        for c in ["x", "\"", "\u{1}", "é"] {
            s.task.comm = c.repeat(n).into();
            let mut out = b"before ".to_vec();
            w.write(&mut out, &s);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                format!("before {}", serde(&s))
            );
        }
    }
}

/// A thread's kept task run is written only while its pid, tid and name
/// are those it was made from; threads that share a slot keep their own.
#[test]
fn task_runs_follow_their_thread() {
    let mut w = SyncJson::default();
    let mut s = sync("a", vec![]);
    let slot = TASK_SLOTS as u32;
    for (pid, tid, comm) in [
        (1, 0, "a"),
        (1, 0, "a"),
        (2, 0, "a"),
        (2, slot, "a"),
        (2, 0, "b\""),
        (2, 0, "b\""),
        (2, 0, ""),
    ] {
        (s.task.pid, s.task.tid, s.task.comm) = (pid, tid, comm.into());
        let mut out = Vec::new();
        w.write(&mut out, &s);
        assert_eq!(String::from_utf8(out).unwrap(), serde(&s));
    }
}
