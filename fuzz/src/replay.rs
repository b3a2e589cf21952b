//! The NDJSON that `replay` reads, of any content: parsed line by line; a
//! recording that parses is replayed through the model and what it derives
//! reads back as written; one that does not is rejected with one line that
//! names the first bad line.

use sync_trace::{
    cmd::{
        one_line,
        replay::{parse_records, replay_records},
    },
    record::Record,
};

use crate::{assert_error_line, ring::round_trip};

/// The recording's name in errors.
const NAME: &str = "recording.ndjson";

/// The first line (1-based) that is not a record: not UTF-8, or neither
/// blank nor a record's JSON. Found independently of `parse_records`.
fn first_bad_line(data: &[u8]) -> Option<usize> {
    data.split(|&b| b == b'\n').enumerate().find_map(|(i, l)| {
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        let bad = match std::str::from_utf8(l) {
            Err(_) => true,
            Ok(s) if s.trim().is_empty() => false,
            // The reader trims each line (Unicode whitespace, such as a form
            // feed, which JSON itself does not allow) before parsing it.
            Ok(s) => serde_json::from_str::<Record>(s.trim()).is_err(),
        };
        bad.then_some(i + 1)
    })
}

pub fn run(data: &[u8]) {
    match parse_records(data, NAME) {
        Ok(recs) => {
            assert_eq!(first_bad_line(data), None, "a bad line was accepted");
            round_trip(&recs);
            round_trip(&replay_records(&recs, 100_000_000));
        }
        Err(e) => {
            let line = first_bad_line(data).expect("a good recording was rejected");
            assert_error_line(&one_line(&e), &[&format!("{NAME}:{line}:")]);
        }
    }
}
