//! Text lines of a replay in the order of their times, without holding
//! the whole output: a derived record is held until the recording has
//! moved [`WINDOW_NS`] past its time (no later input can derive an earlier
//! one then), or until [`MAX_HELD`] are held, and goes out earliest first;
//! records of one time keep the order they were made in.
//!
//! A derived record's time is at most a little older than the input that
//! derives it: a `paired` carries its sync's end (a sync is kept for
//! pairing 10 s after the newest one), an `unsynced` its walk's end, read
//! right after the walk. Within the window the lines come out exactly as a
//! sort of the whole output would put them.

use std::{
    cmp::{Ordering, Reverse},
    collections::BinaryHeap,
};

use crate::record::Record;

/// How far behind the newest input time a derived record can be and
/// still be put in order: 6× the 10 s a sync is kept for pairing.
pub const WINDOW_NS: u64 = 60_000_000_000;
/// Held records at most (a few MB): beyond, the earliest goes out.
pub const MAX_HELD: usize = 16_384;

struct Held {
    ts_ns: u64,
    seq: u64,
    rec: Record,
}

impl PartialEq for Held {
    fn eq(&self, o: &Self) -> bool {
        (self.ts_ns, self.seq) == (o.ts_ns, o.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Held {
    fn cmp(&self, o: &Self) -> Ordering {
        (self.ts_ns, self.seq).cmp(&(o.ts_ns, o.seq))
    }
}

#[derive(Default)]
pub struct TimeOrder {
    held: BinaryHeap<Reverse<Held>>,
    seq: u64,
    /// The newest time of an input record.
    newest_ns: u64,
}

impl TimeOrder {
    /// The recording reached `ts_ns` (the time of an input record).
    pub fn advance(&mut self, ts_ns: u64) {
        self.newest_ns = self.newest_ns.max(ts_ns);
    }

    /// Holds derived records; a record without a time (the summary) sorts last.
    pub fn hold(&mut self, recs: impl IntoIterator<Item = Record>) {
        for rec in recs {
            let ts_ns = rec.ts_ns().unwrap_or(u64::MAX);
            self.seq += 1;
            self.held.push(Reverse(Held {
                ts_ns,
                seq: self.seq,
                rec,
            }));
        }
    }

    /// The records whose place is certain, earliest first.
    pub fn ready(&mut self) -> impl Iterator<Item = Record> + '_ {
        let horizon = self.newest_ns.saturating_sub(WINDOW_NS);
        std::iter::from_fn(move || {
            let top = self.held.peek()?;
            if top.0.ts_ns < horizon || self.held.len() > MAX_HELD {
                self.held.pop().map(|h| h.0.rec)
            } else {
                None
            }
        })
    }

    /// Every record still held, earliest first (the recording ended).
    pub fn drain(&mut self) -> impl Iterator<Item = Record> + '_ {
        std::iter::from_fn(move || self.held.pop().map(|h| h.0.rec))
    }
}
