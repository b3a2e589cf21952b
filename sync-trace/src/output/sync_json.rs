//! The NDJSON of a `sync` record, written by hand: it is the record of
//! every traced call, and serde's derived serializer (a map of fields
//! through a flattened struct, every string escaped byte by byte) was
//! most of the cost of writing it. The bytes are exactly those of
//! `serde_json::to_writer(&Record::Sync(..))`: field order, number and
//! string forms and escapes (checked against serde_json in the tests and
//! by the pipeline benchmark's byte-for-byte comparison). The stack's
//! JSON array is rendered once per distinct stack ([`Stack::json`]).

use compact_str::CompactString;
use sync_trace_common::{Method, Target};

use super::json_bytes::{digits, eight_digits, escape, HEX_PAIRS};
use crate::record::{Caller, Hex, SyncRecord, Task};

/// Appends the record's JSON (without the newline).
pub fn write_sync(out: &mut Vec<u8>, s: &SyncRecord) {
    SyncJson::default().write(out, s);
}

/// Writes `sync` records: the fields are formatted into a scratch buffer
/// kept from one record to the next (no allocation, no zeroing, a bounds
/// check per field rather than a capacity check and a copy call), which
/// goes to the output in one copy, followed by the stack's JSON. The runs
/// of constant text between the numbers are made once per value of the
/// fields they hold (function; helper, caller, method and entry_seen),
/// padded so that each is one copy of a fixed size; so is the task's run
/// (pid, tid, task name) per thread while its values stay the same.
pub struct SyncJson {
    buf: Box<[u8; SCRATCH]>,
    len: usize,
    /// `,"function":"…","start":` by [`Target`].
    functions: Vec<Padded<PAD>>,
    /// `,"helper":…,"caller":"…","method":"…","entry_seen":…,"stack":` by
    /// [`flags_index`].
    flags: Vec<Padded<PAD>>,
    /// `,"pid":…,"tid":…,"comm":"…"` of the last task written per thread
    /// (at `tid % TASK_SLOTS`), for task names of up to [`COMM_CACHED`] bytes.
    tasks: Vec<Option<TaskRun>>,
}

/// Text, zero-padded to a fixed size, and its length.
struct Padded<const N: usize>([u8; N], usize);

/// The padded size of the constant runs (the longest is 89 bytes).
const PAD: usize = 96;

/// A task's run and the values it was written from.
struct TaskRun {
    pid: u32,
    tid: u32,
    comm: CompactString,
    run: Padded<TASK_PAD>,
}

/// Threads whose task run is kept (direct-mapped by tid).
const TASK_SLOTS: usize = 64;
/// Task names kept with their run: a kernel's (15 bytes and a NUL).
const COMM_CACHED: usize = 16;
/// The padded size of a task's run: two 10-digit integers, the keys and
/// a task name of [`COMM_CACHED`] bytes escaped (140 bytes at most).
const TASK_PAD: usize = 160;
/// Where a task's run starts at the latest (after the three integers of
/// up to 20 digits, the cpu and the keys).
const TASK_AT: usize = 24 + 20 + 10 + 20 + 15 + 20 + 7 + 10;
const _: () = assert!(TASK_AT + TASK_PAD <= SCRATCH);

/// The scratch buffer's size: the fields but the task name and the stack
/// take at most 520 bytes (eight integers of up to 20 digits, two hex
/// addresses, the constant runs); a task name of up to [`COMM_INLINE`]
/// bytes, escaped (6 bytes each at most), fits with them, and a padded
/// run's copy past the end of what is written.
const SCRATCH: usize = 1024;
/// Longer task names (not a kernel's, whose names have 15 bytes; a
/// recording's may) are escaped straight into the output.
const COMM_INLINE: usize = 64;
const _: () = assert!(520 + 2 + 6 * COMM_INLINE + PAD <= SCRATCH);

impl<const N: usize> Padded<N> {
    fn new(text: &[u8]) -> Self {
        let mut b = [0; N];
        b[..text.len()].copy_from_slice(text);
        Self(b, text.len())
    }
}

/// The index in [`SyncJson::flags`] of these fields' values.
fn flags_index(helper: bool, caller: Caller, method: Method, entry_seen: bool) -> usize {
    let method = usize::from(method == Method::Kprobe);
    ((usize::from(helper) * CALLERS.len() + caller as usize) * 2 + method) * 2
        + usize::from(entry_seen)
}

const CALLERS: [Caller; 5] = [
    Caller::PopulateHelper,
    Caller::DirectMap,
    Caller::Vmemmap,
    Caller::Vmalloc,
    Caller::Other,
];
const _: () = assert!(<Caller as strum::VariantNames>::VARIANTS.len() == CALLERS.len());

impl Default for SyncJson {
    fn default() -> Self {
        let functions = Target::ALL
            .iter()
            .enumerate()
            .map(|(i, t)| {
                debug_assert_eq!(i, *t as usize);
                Padded::new(format!(",\"function\":\"{}\",\"start\":", t.symbol()).as_bytes())
            })
            .collect();
        let mut flags: Vec<(usize, Padded<PAD>)> = Vec::new();
        for helper in [false, true] {
            for caller in CALLERS {
                for method in [Method::Fentry, Method::Kprobe] {
                    for entry_seen in [false, true] {
                        let text = format!(
                            ",\"helper\":{helper},\"caller\":\"{}\",\"method\":\"{}\",\"entry_seen\":{entry_seen},\"stack\":",
                            caller.name(),
                            method.name()
                        );
                        flags.push((
                            flags_index(helper, caller, method, entry_seen),
                            Padded::new(text.as_bytes()),
                        ));
                    }
                }
            }
        }
        flags.sort_by_key(|(i, _)| *i);
        Self {
            buf: Box::new([0; SCRATCH]),
            len: 0,
            functions,
            flags: flags.into_iter().map(|(_, p)| p).collect(),
            tasks: (0..TASK_SLOTS).map(|_| None).collect(),
        }
    }
}

impl SyncJson {
    /// Appends the record's JSON (without the newline).
    pub fn write(&mut self, out: &mut Vec<u8>, s: &SyncRecord) {
        self.len = 0;
        self.put(b"{\"event\":\"sync\",\"ts_ns\":");
        self.num(s.ts_ns);
        self.put(b",\"end_ns\":");
        self.num(s.end_ns);
        self.put(b",\"duration_ns\":");
        self.num(s.duration_ns);
        self.put(b",\"cpu\":");
        self.num(s.task.cpu.into());
        self.task(out, &s.task);
        self.padded(Run::Function(s.function));
        self.hex(s.start);
        self.put(b",\"end\":");
        self.hex(s.end);
        self.put(b",\"slot_first\":");
        self.num(s.slot_first as u64);
        self.put(b",\"slot_last\":");
        self.num(s.slot_last as u64);
        self.padded(Run::Flags(flags_index(
            s.helper,
            s.caller,
            s.method,
            s.entry_seen,
        )));
        let stack = s.stack.json().as_bytes();
        out.reserve(self.len + stack.len() + 1);
        self.drain_into(out);
        out.extend_from_slice(stack);
        out.push(b'}');
    }

    /// `,"pid":…,"tid":…,"comm":"…"`: the thread's kept run when its
    /// values are those it was written from, else written and kept.
    fn task(&mut self, out: &mut Vec<u8>, t: &Task) {
        let slot = t.tid as usize % TASK_SLOTS;
        if t.comm.len() <= COMM_CACHED {
            if let Some(k) = &self.tasks[slot] {
                if k.tid == t.tid && k.pid == t.pid && k.comm == t.comm {
                    self.buf[self.len..self.len + TASK_PAD].copy_from_slice(&k.run.0);
                    self.len += k.run.1;
                    return;
                }
            }
        }
        let at = self.len;
        self.put(b",\"pid\":");
        self.num(t.pid.into());
        self.put(b",\"tid\":");
        self.num(t.tid.into());
        self.put(b",\"comm\":");
        if t.comm.len() <= COMM_CACHED {
            self.string(&t.comm);
            self.tasks[slot] = Some(TaskRun {
                pid: t.pid,
                tid: t.tid,
                comm: t.comm.clone(),
                run: Padded::new(&self.buf[at..self.len]),
            });
        } else if t.comm.len() <= COMM_INLINE {
            self.string(&t.comm);
        } else {
            self.drain_into(out);
            write_str(out, &t.comm);
        }
    }

    fn drain_into(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.buf[..self.len]);
        self.len = 0;
    }

    #[inline(always)]
    fn put(&mut self, b: &[u8]) {
        let end = self.len + b.len();
        self.buf[self.len..end].copy_from_slice(b);
        self.len = end;
    }

    /// A constant run: [`PAD`] bytes copied, its length kept.
    #[inline(always)]
    fn padded(&mut self, run: Run) {
        let p = match run {
            Run::Function(t) => &self.functions[t as usize],
            Run::Flags(i) => &self.flags[i],
        };
        self.buf[self.len..self.len + PAD].copy_from_slice(&p.0);
        self.len += p.1;
    }

    /// An integer in decimal, as itoa (serde_json's) writes it: in groups
    /// of eight digits made at once ([`eight_digits`]), the first without
    /// its leading zeros.
    #[inline(always)]
    fn num(&mut self, v: u64) {
        const E8: u64 = 100_000_000;
        if v < E8 {
            self.leading(v as u32);
        } else if v < E8 * E8 {
            self.leading((v / E8) as u32);
            self.eight((v % E8) as u32);
        } else {
            self.leading((v / (E8 * E8)) as u32);
            self.eight((v / E8 % E8) as u32);
            self.eight((v % E8) as u32);
        }
    }

    /// Up to eight digits, without leading zeros.
    #[inline(always)]
    fn leading(&mut self, v: u32) {
        let n = digits(v.into());
        let d = u64::from_le_bytes(eight_digits(v)) >> (8 * (8 - n));
        self.buf[self.len..self.len + 8].copy_from_slice(&d.to_le_bytes());
        self.len += n;
    }

    /// Eight digits, leading zeros included.
    #[inline(always)]
    fn eight(&mut self, v: u32) {
        self.buf[self.len..self.len + 8].copy_from_slice(&eight_digits(v));
        self.len += 8;
    }

    /// `"0x"` and 16 lowercase hex digits, quoted (as `Hex` displays).
    #[inline(always)]
    fn hex(&mut self, h: Hex) {
        let mut b = *b"\"0x0000000000000000\"";
        for (i, byte) in h.0.to_be_bytes().into_iter().enumerate() {
            b[3 + 2 * i..5 + 2 * i].copy_from_slice(&HEX_PAIRS[byte as usize]);
        }
        self.put(&b);
    }

    /// A short string ([`COMM_INLINE`] bytes at most), quoted and escaped
    /// as [`write_str`] writes it.
    fn string(&mut self, s: &str) {
        self.put(b"\"");
        let bytes = s.as_bytes();
        let mut from = 0;
        for (i, &b) in bytes.iter().enumerate() {
            if let Some((esc, n)) = escape(b) {
                self.put(&bytes[from..i]);
                self.put(&esc[..n]);
                from = i + 1;
            }
        }
        self.put(&bytes[from..]);
        self.put(b"\"");
    }
}

/// Which constant run.
enum Run {
    Function(Target),
    Flags(usize),
}

/// A JSON string as serde_json writes it ([`escape`]).
fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut from = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if let Some((esc, n)) = escape(b) {
            out.extend_from_slice(&bytes[from..i]);
            out.extend_from_slice(&esc[..n]);
            from = i + 1;
        }
    }
    out.extend_from_slice(&bytes[from..]);
    out.push(b'"');
}

#[cfg(test)]
#[path = "sync_json_tests.rs"]
mod tests;
