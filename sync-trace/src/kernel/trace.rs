//! Turns raw entry/exit records into completed-call records, with the
//! entry stack. No kernel needed: fed by the ring-buffer reader, or by tests.

use std::collections::HashMap;

use compact_str::CompactString;
use foldhash::fast::RandomState;

use sync_trace_common::{
    raw::{COMM_LEN, FLAG_NO_ENTRY},
    Kind, Layout, RawBatch, RawEvent, Target,
};

use super::symbols::Symbols;
use crate::record::{Batch, CallStack, CompletedCall, Record, Task};

/// A call whose entry was read and whose exit was not yet: its stack is
/// the shared one of its call site, so nothing is allocated per event.
struct InFlight {
    cpu: u32,
    stack: CallStack,
}

/// Calls of one thread in flight at once, across targets; more means a
/// runaway and entries are dropped (their exits then show `entry_seen: false`).
const MAX_IN_FLIGHT: usize = 4096;
/// Symbolized return addresses kept; the cache starts over beyond (the
/// call sites of the syncs are a few hundred on a busy kernel).
const MAX_FRAMES_CACHED: usize = 16_384;
/// Distinct stacks kept, each symbolized with its JSON rendered once; the
/// cache starts over beyond.
const MAX_STACKS_CACHED: usize = 4096;

pub struct Tracer {
    /// By thread and target. (foldhash: SipHash, std's default, was a
    /// tenth of the time per event.)
    in_flight: HashMap<(u32, Target), InFlight, RandomState>,
    layout: Layout,
    /// `symbol+0xoff` of the return addresses seen: a frame is looked up
    /// and formatted once, then copied. The tracer is always given the
    /// session's one symbol table.
    frames: HashMap<u64, String, RandomState>,
    /// The stacks seen, keyed by their raw frames (the bytes of the ring
    /// record): a call from a known call site costs one hash of its frames.
    stacks: HashMap<Box<[u8]>, CallStack, RandomState>,
    /// The last task name read per thread (at `tid % COMM_SLOTS`), raw
    /// and decoded: a thread's name rarely changes, and decoding it
    /// (UTF-8 checked, lossy when not) was a tenth of the time per call.
    comms: Box<[([u8; COMM_LEN], CompactString); COMM_SLOTS]>,
}

/// Threads whose last task name is kept (a direct-mapped cache: two
/// threads at the same slot take turns decoding).
const COMM_SLOTS: usize = 64;

/// A kernel task name, up to its NUL, inline (no allocation).
fn comm_of(comm: &[u8; COMM_LEN]) -> CompactString {
    let end = comm.iter().position(|&b| b == 0).unwrap_or(COMM_LEN);
    match std::str::from_utf8(&comm[..end]) {
        // At most 16 bytes: inline.
        Ok(s) => CompactString::new(s),
        Err(_) => CompactString::from_utf8_lossy(&comm[..end]),
    }
}

impl Tracer {
    pub fn new(layout: Layout) -> Self {
        Self {
            in_flight: HashMap::with_capacity_and_hasher(256, RandomState::default()),
            layout,
            frames: HashMap::with_capacity_and_hasher(256, RandomState::default()),
            stacks: HashMap::with_capacity_and_hasher(256, RandomState::default()),
            // An all-NUL name is the empty one: the slots start valid.
            comms: Box::new(std::array::from_fn(|_| {
                ([0; COMM_LEN], CompactString::default())
            })),
        }
    }

    /// The task name of a record of thread `tid`, decoded once per name.
    fn comm(&mut self, tid: u32, raw: &[u8; COMM_LEN]) -> CompactString {
        let slot = &mut self.comms[tid as usize % COMM_SLOTS];
        if slot.0 != *raw {
            *slot = (*raw, comm_of(raw));
        }
        slot.1.clone()
    }

    fn frame(&mut self, addr: u64, syms: &Symbols) -> String {
        if let Some(f) = self.frames.get(&addr) {
            return f.clone();
        }
        if self.frames.len() >= MAX_FRAMES_CACHED {
            self.frames.clear();
        }
        let f = syms.format(addr);
        self.frames.insert(addr, f.clone());
        f
    }

    /// The shared stack of an entry's frames, made the first time they are seen.
    fn call_stack(&mut self, ev: &RawEvent, syms: &Symbols) -> CallStack {
        let key = ev.frame_bytes();
        if let Some(s) = self.stacks.get(key) {
            return s.clone();
        }
        if self.stacks.len() >= MAX_STACKS_CACHED {
            self.stacks.clear();
        }
        let frames = ev.frames().map(|a| self.frame(a, syms)).collect();
        let s = CallStack::new(frames);
        self.stacks.insert(key.into(), s.clone());
        s
    }

    /// Feeds one record; returns the completed call, if this was an exit.
    pub fn on_event(&mut self, ev: &RawEvent, syms: &Symbols) -> Option<Record> {
        let key = (ev.tid, ev.target);
        match ev.kind {
            Kind::Entry => {
                if self.in_flight.len() < MAX_IN_FLIGHT || self.in_flight.contains_key(&key) {
                    let stack = self.call_stack(ev, syms);
                    self.in_flight.insert(key, InFlight { cpu: ev.cpu, stack });
                }
                None
            }
            Kind::Exit => {
                let entry = self.in_flight.remove(&key);
                Some(self.complete(ev, entry))
            }
        }
    }

    fn complete(&mut self, ev: &RawEvent, entry: Option<InFlight>) -> Record {
        let (start, end) = ev.target.range_in(&ev.args, &self.layout);
        let entry_seen = entry.is_some() && ev.flags & FLAG_NO_ENTRY == 0;
        let (cpu, stack) = match entry {
            Some(p) => (p.cpu, p.stack),
            None => (ev.cpu, CallStack::default()),
        };
        CompletedCall {
            ts_ns: ev.ts_ns.saturating_sub(ev.duration_ns),
            end_ns: ev.ts_ns,
            duration_ns: ev.duration_ns,
            task: Task {
                cpu,
                pid: ev.pid,
                tid: ev.tid,
                comm: self.comm(ev.tid, &ev.comm),
            },
            function: ev.target,
            start,
            end,
            method: ev.method,
            entry_seen,
            stack,
            batch: None,
        }
        .into_record(&self.layout)
    }

    /// A batch of populate calls (`struct st_batch`): one `call` record
    /// that counts them.
    pub fn on_batch(&self, b: &RawBatch, syms: &Symbols) -> Record {
        CompletedCall {
            ts_ns: b.ts_ns,
            end_ns: b.end_ns,
            duration_ns: b.busy_ns,
            task: Task {
                cpu: b.cpu,
                pid: b.pid,
                tid: b.tid,
                comm: comm_of(&b.comm),
            },
            function: b.target,
            start: b.addr_first,
            end: b.addr_first,
            method: b.method,
            entry_seen: true,
            stack: CallStack::new(b.frames().iter().map(|&a| syms.format(a)).collect()),
            batch: Some(Batch {
                calls: b.calls,
                addr_last: b.addr_last,
            }),
        }
        .into_record(&self.layout)
    }
}

#[cfg(test)]
mod tests {
    use sync_trace_common::{
        raw::{RawEventC, EVENT_SIZE, MAX_STACK},
        Method,
    };

    use super::*;
    use crate::{kernel::kallsyms::Kallsyms, record::Hex};

    const SYMS: &str = "\
ffffffff81077a10 t sync_global_pgds
ffffffff81077c00 T arch_sync_kernel_mappings
ffffffff81300000 T vmemmap_p4d_populate
ffffffff81300400 T vmemmap_populate
";

    fn layout() -> Layout {
        Layout::new(
            39,
            0xffff888000000000,
            0xffffc90000000000,
            0xffffea0000000000,
        )
    }

    /// The bytes of an `st_event` record.
    fn ev(kind: Kind, target: Target, ts: u64, dur: u64, start: u64, end: u64) -> Vec<u8> {
        let c = raw_ev(kind, target, ts, dur, start, end);
        // SAFETY: RawEventC is repr(C) plain data without padding.
        unsafe { std::slice::from_raw_parts((&c as *const RawEventC).cast::<u8>(), EVENT_SIZE) }
            .to_vec()
    }

    fn decoded(bytes: &[u8]) -> RawEvent<'_> {
        RawEvent::from_bytes(bytes).unwrap()
    }

    fn raw_ev(kind: Kind, target: Target, ts: u64, dur: u64, start: u64, end: u64) -> RawEventC {
        let mut stack = [0; MAX_STACK];
        stack[0] = 0xffffffffc0001234; // the BPF program: not in kallsyms
        stack[1] = 0xffffffff81077c04;
        stack[2] = 0xffffffff81300050;
        stack[3] = 0xffffffff81300420;
        RawEventC {
            ts_ns: ts,
            args: [start, end, 0],
            ret: 0,
            duration_ns: dur,
            pid: 50,
            tid: 51,
            cpu: 1,
            flags: 0,
            // `enum st_kind`, `enum st_method` (events.h): entry 1, exit 2; fentry 1.
            kind: if kind == Kind::Entry { 1 } else { 2 },
            target: target as u8,
            method: 1,
            pad: 0,
            stack_bytes: if kind == Kind::Entry { 32 } else { 0 },
            comm: *b"kworker/u4:1\0\0\0\0",
            stack,
        }
    }

    #[test]
    fn pairs_entry_and_exit_into_a_helper_sync() {
        let syms = Symbols::from_table(Kallsyms::parse(SYMS));
        let mut t = Tracer::new(layout());
        let a = 0xffffea8000000000;
        assert!(t
            .on_event(
                &decoded(&ev(
                    Kind::Entry,
                    Target::ArchSyncKernelMappings,
                    1000,
                    0,
                    a,
                    a
                )),
                &syms
            )
            .is_none());
        let Some(Record::Sync(s)) = t.on_event(
            &decoded(&ev(
                Kind::Exit,
                Target::ArchSyncKernelMappings,
                4000,
                3000,
                a,
                a,
            )),
            &syms,
        ) else {
            panic!("no sync record");
        };
        assert_eq!((s.ts_ns, s.end_ns, s.duration_ns), (1000, 4000, 3000));
        assert!(s.helper && s.entry_seen);
        assert_eq!((s.slot_first, s.slot_last), (469, 469));
        assert_eq!(s.caller, crate::record::Caller::PopulateHelper);
        // The BPF program's own frame is dropped.
        assert_eq!(s.stack[0], "arch_sync_kernel_mappings+0x4");
        assert_eq!(s.stack[1], "vmemmap_p4d_populate+0x50");
        let json = serde_json::to_value(Record::Sync(s)).unwrap();
        assert_eq!(json["event"], "sync");
        assert_eq!(json["start"], "0xffffea8000000000");
        assert_eq!(json["caller"], "populate_helper");
    }

    #[test]
    fn an_init_memory_mapping_call_keeps_its_physical_range() {
        let syms = Symbols::from_table(Kallsyms::parse(SYMS));
        let mut t = Tracer::new(layout());
        let (start, end) = (0x8000000000, 0x8008000000);
        let entry = ev(Kind::Entry, Target::InitMemoryMapping, 100, 0, start, end);
        assert!(t.on_event(&decoded(&entry), &syms).is_none());
        let exit = ev(Kind::Exit, Target::InitMemoryMapping, 900, 800, start, end);
        let Some(Record::Call(c)) = t.on_event(&decoded(&exit), &syms) else {
            panic!()
        };
        assert_eq!((c.addr, c.end), (Hex(start), Some(Hex(end))));
        assert_eq!((c.ts_ns, c.end_ns), (100, 900));
    }

    #[test]
    fn a_batch_is_one_call_record_that_counts_its_calls() {
        let syms = Symbols::from_table(Kallsyms::parse(SYMS));
        let t = Tracer::new(layout());
        let e = raw_ev(Kind::Entry, Target::VmemmapP4dPopulate, 0, 0, 0, 0);
        let b = RawBatch {
            ts_ns: 1_000,
            end_ns: 90_000,
            busy_ns: 40_000,
            addr_first: 0xffffea8000000000,
            addr_last: 0xffffea80001ff000,
            calls: 512,
            pid: 50,
            tid: 51,
            cpu: 1,
            target: Target::VmemmapP4dPopulate,
            method: Method::Fentry,
            reason: sync_trace_common::BatchReason::Flush,
            stack_bytes: 32,
            comm: e.comm,
            stack: e.stack,
        };
        let Record::Call(c) = t.on_batch(&b, &syms) else {
            panic!()
        };
        assert_eq!((c.ts_ns, c.end_ns, c.duration_ns), (1_000, 90_000, 40_000));
        assert_eq!((c.calls, c.calls()), (Some(512), 512));
        assert_eq!(
            (c.addr, c.addr_last, c.end),
            (Hex(0xffffea8000000000), Some(Hex(0xffffea80001ff000)), None)
        );
        assert_eq!(c.stack[0], "arch_sync_kernel_mappings+0x4");
        let json = serde_json::to_value(Record::Call(c)).unwrap();
        assert_eq!(json["calls"], 512);
        assert_eq!(json["addr_last"], "0xffffea80001ff000");
    }

    #[test]
    fn exit_without_entry_is_reported_as_such() {
        let syms = Symbols::from_table(Kallsyms::parse(SYMS));
        let mut t = Tracer::new(layout());
        let mut e = raw_ev(Kind::Exit, Target::SyncGlobalPgds, 10, 0, 1, 2);
        e.flags = FLAG_NO_ENTRY;
        // SAFETY: as in `ev`.
        let bytes = unsafe {
            std::slice::from_raw_parts((&e as *const RawEventC).cast::<u8>(), EVENT_SIZE)
        };
        let Some(Record::Sync(s)) = t.on_event(&decoded(bytes), &syms) else {
            panic!()
        };
        assert!(!s.entry_seen && s.stack.is_empty() && !s.helper);
    }

    /// The cached task name follows a rename, and threads that share a
    /// cache slot keep their own names (not UTF-8 included).
    #[test]
    fn task_names_follow_renames_and_shared_slots() {
        let syms = Symbols::from_table(Kallsyms::parse(SYMS));
        let mut t = Tracer::new(layout());
        let slot = COMM_SLOTS as u32;
        for (tid, comm, want) in [
            (7, *b"first\0\0\0\0\0\0\0\0\0\0\0", "first"),
            (7, *b"second\0\0\0\0\0\0\0\0\0\0", "second"),
            (7 + slot, *b"\xff-bin\0\0\0\0\0\0\0\0\0\0\0", "\u{fffd}-bin"),
            (7, *b"second\0\0\0\0\0\0\0\0\0\0", "second"),
        ] {
            let mut e = raw_ev(Kind::Exit, Target::SyncGlobalPgds, 10, 0, 1, 2);
            (e.tid, e.comm) = (tid, comm);
            // SAFETY: as in `ev`.
            let bytes = unsafe {
                std::slice::from_raw_parts((&e as *const RawEventC).cast::<u8>(), EVENT_SIZE)
            };
            let Some(Record::Sync(s)) = t.on_event(&decoded(bytes), &syms) else {
                panic!()
            };
            assert_eq!((s.task.tid, s.task.comm.as_str()), (tid, want));
        }
    }
}
