//! The model behind `run` and `replay`: counts, population detection,
//! pairing and unsynced flags, fed with records in time order.

use crate::{
    detect::Detector,
    pairing::Pairing,
    record::{Record, Trigger},
    snapshot::Snapshot,
    summary::Summary,
};

pub struct Model {
    pub summary: Summary,
    pub detector: Detector,
    pairing: Pairing,
    /// Latest record time seen (replay's clock).
    now_ns: u64,
}

impl Model {
    pub fn new(grace_ns: u64) -> Self {
        Self {
            summary: Summary::default(),
            detector: Detector::default(),
            pairing: Pairing::new(grace_ns),
            now_ns: 0,
        }
    }

    /// Applies one observed record (from the kernel, the scanner, or a
    /// recording) and appends what follows from it. Derived records
    /// (`paired`, `unsynced`, `summary`) are ignored: the model makes its own.
    pub fn observe(&mut self, rec: &Record, out: &mut Vec<Record>) {
        match rec {
            Record::Sync(s) => {
                self.advance(s.end_ns, out);
                self.summary.count_sync(
                    s.function.symbol(),
                    s.caller.name(),
                    s.entry_seen.then_some(s.duration_ns),
                );
                self.detector.hint_sync(s);
                self.pairing.on_sync(s, out, &mut self.summary);
            }
            Record::Call(c) => {
                self.advance(c.end_ns, out);
                self.summary.count_call(c.function.symbol());
                self.detector.hint_call(c);
            }
            Record::Populate(p) => {
                self.advance(p.ts_ns, out);
                self.pairing.on_populate(p, out, &mut self.summary);
            }
            Record::Verify(v) => {
                self.summary.verifications += 1;
                self.pairing.on_verify(v);
                // A verify comes just before the unsynced it counts for.
                self.advance(v.ts_ns, out);
            }
            Record::Mismatch(_) => self.summary.mismatches += 1,
            Record::Lost(l) => {
                self.summary.lost.insert(l.what.clone(), l.total);
            }
            Record::Layout(_) | Record::Paired(_) | Record::Unsynced(_) | Record::Summary(_) => {}
        }
    }

    /// Moves the clock to `now_ns` and reports closed grace windows.
    pub fn advance(&mut self, now_ns: u64, out: &mut Vec<Record>) {
        self.now_ns = self.now_ns.max(now_ns);
        self.pairing.tick(self.now_ns, out, &mut self.summary);
    }

    /// Feeds a live scan: new populations, verification, then closed windows.
    pub fn on_scan(&mut self, snap: &Snapshot, trigger: Trigger, out: &mut Vec<Record>) {
        let start = out.len();
        self.detector.on_scan(snap, trigger, out);
        let found: Vec<Record> = out[start..].to_vec();
        for r in &found {
            self.observe(r, out);
        }
        self.advance(snap.raw.end_ns, out);
    }

    pub fn next_deadline(&self) -> Option<u64> {
        self.pairing.next_deadline()
    }
}
