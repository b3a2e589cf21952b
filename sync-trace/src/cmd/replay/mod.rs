//! `sync-trace replay FILE`: rebuilds pairing, latencies, unsynced flags and
//! the summary from a recorded `run --json` stream, on any machine.

mod reader;
mod time_order;

use std::{net::SocketAddr, path::Path, sync::Arc};

use sync_trace_common::Paging;

pub use self::reader::{parse_records, RecordReader};
use self::time_order::TimeOrder;
use super::StopSignals;
use crate::{
    model::Model,
    output::{
        exporter,
        metrics::{Context, Metrics},
        sink::Sink,
    },
    record::Record,
};

/// Records read ahead for the `layout` record the metrics are labelled
/// with (`run` writes it first); a recording without one within them is
/// labelled `unknown`, 4-level.
const LAYOUT_LOOKAHEAD: usize = 1_000;

/// Reads every record of a recording into memory (tests and small files;
/// `replay` itself streams with [`RecordReader`]); `-` is standard input.
pub fn read_records(path: &Path) -> anyhow::Result<Vec<Record>> {
    RecordReader::open(path)?.collect()
}

/// Runs the model over records one at a time, handing `derived` each
/// input record with what it derives, then (with `None`) what the end of
/// the stream derives, ending with the summary. Memory does not grow with
/// the number of records: the model's state is bounded.
pub fn replay_stream(
    records: impl IntoIterator<Item = anyhow::Result<Record>>,
    grace_ns: u64,
    mut derived: impl FnMut(Option<&Record>, &mut Vec<Record>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut model = Model::new(grace_ns);
    let mut out = Vec::new();
    for r in records {
        let r = r?;
        model.observe(&r, &mut out);
        derived(Some(&r), &mut out)?;
        out.clear();
    }
    model.finish(&mut out);
    derived(None, &mut out)
}

/// Runs the model over recorded records; returns what it derives, ending
/// with the summary.
pub fn replay_records(recs: &[Record], grace_ns: u64) -> Vec<Record> {
    let mut all = Vec::new();
    let stream = recs.iter().cloned().map(Ok);
    replay_stream(stream, grace_ns, |_, out| {
        all.append(out);
        Ok(())
    })
    .expect("replaying records in memory cannot fail");
    all
}

/// Metrics labelled by the recording's `layout` record, when one comes
/// within the first records (read ahead into `ahead`).
fn metrics_for(reader: &mut RecordReader, ahead: &mut Vec<anyhow::Result<Record>>) -> Metrics {
    let mut found = None;
    for r in reader.by_ref().take(LAYOUT_LOOKAHEAD) {
        if let Ok(Record::Layout(l)) = &r {
            found = Some((l.kernel.clone(), l.paging));
        }
        let stop = found.is_some() || r.is_err();
        ahead.push(r);
        if stop {
            break;
        }
    }
    let (kernel, paging) = found.unwrap_or_else(|| ("unknown".into(), Paging::Four));
    Metrics::new(&Context {
        kernel: &kernel,
        paging,
        probes: &[],
    })
}

/// Replays records into `sink`: every input record is counted in its
/// metrics, what the model derives is written (NDJSON in the order made,
/// text lines in the order of their times).
pub fn replay_into(
    records: impl IntoIterator<Item = anyhow::Result<Record>>,
    grace_ns: u64,
    json: bool,
    sink: &mut Sink,
) -> anyhow::Result<()> {
    let mut order = (!json).then(TimeOrder::default);
    replay_stream(records, grace_ns, |input, out| {
        // The observed records count too, not only what the model derives.
        if let Some(r) = input.filter(|r| !is_derived(r)) {
            sink.count(r);
        }
        let Some(order) = &mut order else {
            return out.iter().try_for_each(|r| sink.put(r));
        };
        order.hold(out.drain(..));
        match input {
            Some(r) => {
                if let Some(ts) = r.ts_ns() {
                    order.advance(ts);
                }
                order.ready().try_for_each(|r| sink.put(&r))
            }
            None => order.drain().try_for_each(|r| sink.put(&r)),
        }
    })?;
    sink.flush()
}

pub async fn replay(
    path: &Path,
    json: bool,
    grace_ns: u64,
    metrics_addr: Option<SocketAddr>,
) -> anyhow::Result<i32> {
    let mut reader = RecordReader::open(path)?;
    let mut ahead = Vec::new();
    let metrics = metrics_addr.map(|_| Arc::new(metrics_for(&mut reader, &mut ahead)));
    let mut sink = Sink::stdout(json).with_metrics(metrics.clone());
    replay_into(ahead.into_iter().chain(reader), grace_ns, json, &mut sink)?;
    if let (Some(addr), Some(m)) = (metrics_addr, metrics) {
        let mut signals = StopSignals::install()?;
        exporter::start(addr, m).await?;
        signals.recv().await;
    }
    Ok(0)
}

/// Records the model makes itself from the others.
fn is_derived(r: &Record) -> bool {
    matches!(
        r,
        Record::Paired(_) | Record::Unsynced(_) | Record::Summary(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn parse(text: &str) -> Vec<Record> {
        text.lines()
            .map(|l| serde_json::from_str(l).expect(l))
            .collect()
    }

    fn derived(out: &[Record]) -> (Vec<usize>, Vec<usize>) {
        let paired = out.iter().filter_map(|r| match r {
            Record::Paired(p) => Some(p.pop.slot),
            _ => None,
        });
        let unsynced = out.iter().filter_map(|r| match r {
            Record::Unsynced(u) => Some(u.pop.slot),
            _ => None,
        });
        (paired.collect(), unsynced.collect())
    }

    /// Recorded in guests: a DIMM hot-added at 32 TiB creates the vmemmap
    /// slot 469 (helper) and the direct-map slot 337 (effect).
    #[test]
    fn recorded_hotadds_pair_both_new_entries() {
        for text in [
            include_str!("../../../tests/fixtures/6.1-hotadd-32T.ndjson"),
            include_str!("../../../tests/fixtures/newest-hotadd-32T.ndjson"),
        ] {
            let recs = parse(text);
            let out = replay_records(&recs, 100 * MS);
            let (mut paired, unsynced) = derived(&out);
            paired.sort();
            assert_eq!(paired, vec![337, 469]);
            assert!(unsynced.is_empty());
            // Replay agrees with what the live run derived. (These
            // recordings predate `populated_ns` meaning where the latency
            // runs from; the verdict, sync and latency are compared.)
            let verdicts = |recs: &[Record]| -> Vec<String> {
                recs.iter()
                    .filter_map(|r| match r {
                        Record::Paired(p) => Some(format!(
                            "{} {:?} {:?} {} {} {:?}",
                            p.pop.slot,
                            p.sync_function,
                            p.sync_start,
                            p.latency_ns,
                            p.late,
                            p.latency_kind
                        )),
                        _ => None,
                    })
                    .collect()
            };
            assert_eq!(verdicts(&recs), verdicts(&out));
            let Some(Record::Summary(s)) = out.last() else {
                panic!("no summary")
            };
            assert_eq!((s.paired, s.unsynced), (2, 0));
        }
    }

    /// The same stream without the syncs that cover slot 469 must flag it.
    #[test]
    fn removing_the_vmemmap_syncs_makes_it_unsynced() {
        let mut recs: Vec<Record> = parse(include_str!(
            "../../../tests/fixtures/6.1-hotadd-32T.ndjson"
        ))
        .into_iter()
        .filter(|r| !matches!(r, Record::Sync(s) if s.covers(469)))
        .collect();
        // Time must pass beyond the grace window: repeat the last walk later.
        let Some(Record::Verify(mut later)) = recs
            .iter()
            .rev()
            .find(|r| matches!(r, Record::Verify(_)))
            .cloned()
        else {
            panic!("the fixture has no verify record");
        };
        later.ts_ns += 200 * MS;
        later.start_ns += 200 * MS;
        recs.push(Record::Verify(later));
        let out = replay_records(&recs, 100 * MS);
        let (paired, unsynced) = derived(&out);
        assert_eq!(paired, vec![337]);
        assert_eq!(unsynced, vec![469]);
    }

    /// Recorded in a 6.12 guest with the st_populate module: a synced
    /// population (507), a late one (506, synced after 300 ms), a
    /// never-synced one (505), one cleared and written back, synced both
    /// times (504), and one synced then pointed elsewhere (503).
    #[test]
    fn recorded_module_run_flags_late_and_never() {
        let recs = parse(include_str!("../../../tests/fixtures/6.12-module.ndjson"));
        let out = replay_records(&recs, 100 * MS);
        let (paired, unsynced) = derived(&out);
        assert_eq!(paired, vec![507, 506, 504, 504, 503]);
        assert_eq!(unsynced, vec![506, 505]);
        let Some(Record::Summary(s)) = out.last() else {
            panic!("no summary")
        };
        assert_eq!((s.depopulations, s.mismatches), (1, 1), "{s:?}");
        let late = out.iter().find_map(|r| match r {
            Record::Paired(p) if p.pop.slot == 506 => Some(p),
            _ => None,
        });
        let late = late.expect("late pairing");
        assert!(late.late && late.latency_ns >= 300 * MS, "{late:?}");
        for r in &out {
            if let Record::Unsynced(u) = r {
                assert!(
                    u.pgds_missing > 0 && u.pgds_total >= u.pgds_missing,
                    "{u:?}"
                );
            }
        }
        // With a 1 s window the late sync is in time; no recorded walk after
        // the never-synced population's window compared its slot, so it is
        // left undecided, and the summary says so.
        let out = replay_records(&recs, 1000 * MS);
        let (paired, unsynced) = derived(&out);
        assert_eq!((paired, unsynced), (vec![507, 506, 504, 504, 503], vec![]));
        let Some(Record::Summary(s)) = out.last() else {
            panic!("no summary")
        };
        assert_eq!(s.pending, 1, "{s:?}");
    }

    #[test]
    fn a_bad_line_is_one_error_naming_the_line() {
        let dir = std::env::temp_dir().join(format!("st-replay-{}", std::process::id()));
        std::fs::write(
            &dir,
            "{\"event\":\"lost\",\"what\":\"events\",\"count\":1,\"total\":1}\nnot json\n",
        )
        .unwrap();
        let e = read_records(&dir).unwrap_err().to_string();
        std::fs::remove_file(&dir).ok();
        assert!(e.contains(":2: not a sync-trace event"), "{e}");
    }

    /// A writer whose bytes the test reads afterwards.
    #[derive(Clone, Default)]
    struct Shared(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn streamed(recs: &[Record], json: bool, grace_ns: u64) -> String {
        let out = Shared::default();
        let mut sink = Sink::writer(json, Box::new(out.clone()));
        replay_into(recs.iter().cloned().map(Ok), grace_ns, json, &mut sink).unwrap();
        let bytes = out.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    /// What writing the whole output at once gives: NDJSON in the order
    /// made, text lines sorted by time (the summary last).
    fn at_once(recs: &[Record], json: bool, grace_ns: u64) -> String {
        let out = Shared::default();
        let mut sink = Sink::writer(json, Box::new(out.clone()));
        sink.emit_all(&mut replay_records(recs, grace_ns)).unwrap();
        let bytes = out.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn streamed_output_is_the_output_written_at_once() {
        for text in [
            include_str!("../../../tests/fixtures/6.1-hotadd-32T.ndjson"),
            include_str!("../../../tests/fixtures/6.12-module.ndjson"),
            include_str!("../../../tests/fixtures/newest-hotadd-32T.ndjson"),
        ] {
            let recs = parse(text);
            for json in [true, false] {
                for grace in [100 * MS, 1000 * MS] {
                    let s = streamed(&recs, json, grace);
                    assert!(s.lines().count() >= 2, "{s}");
                    assert_eq!(s, at_once(&recs, json, grace));
                }
            }
        }
    }

    /// Text lines come out in time order even when the records deriving
    /// them arrive out of it, within the window.
    #[test]
    fn text_lines_are_put_in_time_order_within_the_window() {
        let recs = parse(include_str!("../../../tests/fixtures/6.12-module.ndjson"));
        // The recording twice, the second copy 30 s later: the verdicts of
        // the second copy come after those of the first.
        let mut twice = recs.clone();
        for r in &recs {
            let mut v = serde_json::to_value(r).unwrap();
            for key in [
                "ts_ns",
                "end_ns",
                "start_ns",
                "seen_ns",
                "empty_ns",
                "not_before_ns",
            ] {
                if let Some(n) = v.get(key).and_then(|n| n.as_u64()) {
                    v[key] = (n + 30_000 * MS).into();
                }
            }
            twice.push(serde_json::from_value(v).unwrap());
        }
        let s = streamed(&twice, false, 100 * MS);
        assert_eq!(s, at_once(&twice, false, 100 * MS));
    }
}
