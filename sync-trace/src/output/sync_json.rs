//! The NDJSON of a `sync` record, written by hand: it is the record of
//! every traced call, and serde's derived serializer (a map of fields
//! through a flattened struct, every string escaped byte by byte) was
//! most of the cost of writing it. The bytes are exactly those of
//! `serde_json::to_writer(&Record::Sync(..))`: field order, number and
//! string forms and escapes (checked against serde_json in the tests and
//! by the pipeline benchmark's byte-for-byte comparison). The stack's
//! JSON array is rendered once per distinct stack ([`Stack::json`]).

use crate::record::{Hex, SyncRecord};

/// Appends the record's JSON (without the newline).
pub fn write_sync(out: &mut Vec<u8>, s: &SyncRecord) {
    // The fixed part is under 512 bytes with a task name of 16 escaped bytes.
    out.reserve(512 + s.task.comm.len() * 6 + s.stack.json().len());
    let mut n = itoa::Buffer::new();
    let mut num = |out: &mut Vec<u8>, key: &[u8], v: u64| {
        out.extend_from_slice(key);
        out.extend_from_slice(n.format(v).as_bytes());
    };
    num(out, b"{\"event\":\"sync\",\"ts_ns\":", s.ts_ns);
    num(out, b",\"end_ns\":", s.end_ns);
    num(out, b",\"duration_ns\":", s.duration_ns);
    num(out, b",\"cpu\":", s.task.cpu.into());
    num(out, b",\"pid\":", s.task.pid.into());
    num(out, b",\"tid\":", s.task.tid.into());
    out.extend_from_slice(b",\"comm\":");
    write_str(out, &s.task.comm);
    out.extend_from_slice(b",\"function\":\"");
    out.extend_from_slice(s.function.symbol().as_bytes());
    out.extend_from_slice(b"\",\"start\":");
    write_hex(out, s.start);
    out.extend_from_slice(b",\"end\":");
    write_hex(out, s.end);
    num(out, b",\"slot_first\":", s.slot_first as u64);
    num(out, b",\"slot_last\":", s.slot_last as u64);
    out.extend_from_slice(if s.helper {
        b",\"helper\":true,\"caller\":\""
    } else {
        b",\"helper\":false,\"caller\":\""
    });
    out.extend_from_slice(s.caller.name().as_bytes());
    out.extend_from_slice(b"\",\"method\":\"");
    out.extend_from_slice(s.method.name().as_bytes());
    out.extend_from_slice(if s.entry_seen {
        b"\",\"entry_seen\":true,\"stack\":"
    } else {
        b"\",\"entry_seen\":false,\"stack\":"
    });
    out.extend_from_slice(s.stack.json().as_bytes());
    out.push(b'}');
}

/// `"0x"` and 16 lowercase hex digits, quoted (as `Hex` displays).
fn write_hex(out: &mut Vec<u8>, h: Hex) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut b = *b"\"0x0000000000000000\"";
    for i in 0..16 {
        b[3 + i] = DIGITS[((h.0 >> (60 - 4 * i)) & 0xf) as usize];
    }
    out.extend_from_slice(&b);
}

/// A JSON string as serde_json writes it: `"` and `\` escaped, control
/// characters as `\b \t \n \f \r` or `\u00XX` (lowercase), everything
/// else (DEL and non-ASCII included) as is.
fn write_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut from = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x09 => b"\\t",
            0x0a => b"\\n",
            0x0c => b"\\f",
            0x0d => b"\\r",
            0x00..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ],
            _ => continue,
        };
        out.extend_from_slice(&bytes[from..i]);
        out.extend_from_slice(esc);
        from = i + 1;
    }
    out.extend_from_slice(&bytes[from..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
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
}
