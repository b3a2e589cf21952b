//! The EVENTS ring as the daemon reads it: records of any length and
//! content, decoded (`RawRecord::from_bytes`), paired into calls by the
//! tracer, fed to the model, and what comes out written as NDJSON and read
//! back as `replay` would.

use sync_trace::{
    kernel::{kallsyms::Kallsyms, symbols::Symbols, trace::Tracer},
    model::Model,
    record::Record,
};
use sync_trace_common::{
    batch::BATCH_SIZE,
    raw::{DIAG_SIZE, EVENT_SIZE},
    DecodeError, Kind, Layout, RawRecord,
};

use crate::{assert_error_line, input::Input};

/// A few symbols around the traced functions, as `/proc/kallsyms` has them.
pub const SYMS: &str = "\
ffffffff81000000 T _text
ffffffff81077a10 t sync_global_pgds
ffffffff81077c00 T arch_sync_kernel_mappings
ffffffff8107a000 T vmemmap_populate
ffffffff82a00000 D init_mm
";

/// Records per input at most (each is at least one byte of input anyway).
const MAX_RECORDS: usize = 4096;

pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let syms = Symbols::from_table(Kallsyms::parse(SYMS));
    // 4- or 5-level paging, bases anywhere (the kernel gives them).
    let shift = if input.bool() { 48 } else { 39 };
    let layout = Layout::new(shift, input.u64(), input.u64(), input.u64());
    let mut tracer = Tracer::new(layout);
    let mut model = Model::new(u64::from(input.u16()) * 1000);
    let mut out = Vec::new();
    let mut n = 0;
    while !input.is_empty() && n < MAX_RECORDS {
        n += 1;
        // The ring gives each record's length: an event, a diagnostic, or
        // any other length (a daemon and object out of step).
        let len = match input.u8() % 5 {
            0 | 1 => EVENT_SIZE,
            2 => DIAG_SIZE,
            3 => BATCH_SIZE,
            _ => usize::from(input.u16()) % (2 * EVENT_SIZE),
        };
        let bytes = input.padded(len);
        match RawRecord::from_bytes(&bytes) {
            Ok(RawRecord::Event(ev)) => {
                let _ = ev.comm();
                assert!(ev.frames().len() <= sync_trace_common::raw::MAX_STACK);
                if ev.kind == Kind::Entry {
                    model.note_entry(ev.target, ev.ts_ns, ev.args);
                }
                if let Some(rec) = tracer.on_event(&ev, &syms) {
                    out.push(rec.clone());
                    model.observe(&rec, &mut out);
                }
            }
            Ok(RawRecord::Diag(d)) => assert_error_line(&d.message(), &[]),
            Ok(RawRecord::Batch(b)) => {
                let rec = tracer.on_batch(&b, &syms);
                out.push(rec.clone());
                model.observe(&rec, &mut out);
            }
            Err(e) => {
                model.count_undecodable();
                let field = match e {
                    DecodeError::Length { .. }
                    | DecodeError::DiagLength { .. }
                    | DecodeError::BatchLength { .. }
                    | DecodeError::RecordLength { .. } => "bytes",
                    DecodeError::Kind(_) | DecodeError::DiagKind(_) | DecodeError::BatchKind(_) => {
                        "kind"
                    }
                    DecodeError::BatchReason(_) => "reason",
                    DecodeError::DiagCode(_) => "code",
                    DecodeError::Target(_) => "target",
                    DecodeError::Method(_) => "method",
                };
                assert_error_line(&e.to_string(), &[field]);
            }
        }
    }
    model.finish(&mut out);
    round_trip(&out);
}

/// Every record the daemon writes reads back as the same record (what
/// `replay` relies on).
pub fn round_trip(out: &[Record]) {
    for rec in out {
        let line = serde_json::to_string(rec).expect("a record serializes");
        assert!(!line.contains('\n'), "an NDJSON line with a newline");
        let back: Record = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("{line} does not read back: {e}"));
        // Compared as written: a record may keep working state (histogram
        // counters) that its NDJSON carries in another form.
        let again = serde_json::to_string(&back).expect("a record serializes");
        assert_eq!(again, line, "a record reads back as another record");
    }
}
