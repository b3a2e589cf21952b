//! Well-formed inputs for each target, which libFuzzer starts from (its
//! corpus) and the smoke test edits: without them a random search takes
//! long to find a 288-byte record of valid kinds or a JSON line of a record.

use std::mem::size_of;

use sync_trace_common::{
    raw::{self, RawEventC, RawScan, EVENT_SIZE, HALF, KIND_DIAG, MAX_STACK, PTRS},
    Kind, Method, Target,
};

/// The three recordings the replay tests use (real guests).
const RECORDINGS: [&[u8]; 3] = [
    include_bytes!("../../sync-trace/tests/fixtures/6.1-hotadd-32T.ndjson"),
    include_bytes!("../../sync-trace/tests/fixtures/6.12-module.ndjson"),
    include_bytes!("../../sync-trace/tests/fixtures/newest-hotadd-32T.ndjson"),
];

pub fn of(target: &str) -> Vec<Vec<u8>> {
    match target {
        "ring" => vec![ring()],
        "scan" => vec![scan(false), scan(true)],
        "kallsyms" => vec![crate::ring::SYMS.as_bytes().to_vec()],
        "replay" => RECORDINGS.iter().map(|r| r.to_vec()).collect(),
        "cli" => cli(),
        _ => Vec::new(),
    }
}

fn bytes_of<T: Copy>(v: &T) -> Vec<u8> {
    // SAFETY: only repr(C) plain-data records are passed; their bytes are
    // read, never reinterpreted as another type.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
}

/// 4-level layout, nokaslr bases, 100 µs grace; then an entry and an exit
/// of every target, and a diagnostic.
fn ring() -> Vec<u8> {
    let mut v = vec![0];
    for base in [
        0xffff_8880_0000_0000u64,
        0xffff_c900_0000_0000,
        0xffff_ea00_0000_0000,
    ] {
        v.extend_from_slice(&base.to_le_bytes());
    }
    v.extend_from_slice(&100u16.to_le_bytes());
    for (i, target) in Target::ALL.iter().enumerate() {
        for kind in [Kind::Entry, Kind::Exit] {
            let ts = 1_000 * i as u64 + kind as u64;
            let ev = RawEventC {
                ts_ns: ts,
                args: [0xffff_ea80_0000_0000, 0xffff_ea80_0020_0000, 0],
                ret: 0,
                duration_ns: 10,
                pid: 7,
                tid: 7,
                cpu: 0,
                flags: 0,
                kind: kind as u8,
                target: *target as u8,
                method: Method::Kprobe as u8,
                pad: 0,
                stack_bytes: 16,
                comm: *b"kworker/u4:1\0\0\0\0",
                stack: [0xffff_ffff_8107_7a20; MAX_STACK],
            };
            v.push(0);
            v.extend_from_slice(&bytes_of(&ev));
        }
    }
    let diag = raw::RawDiagC {
        ts_ns: 5,
        value: 1,
        pid: 7,
        cpu: 0,
        kind: KIND_DIAG,
        code: 1,
        pad: [0; 6],
    };
    v.push(2);
    v.extend_from_slice(&bytes_of(&diag));
    assert_eq!(EVENT_SIZE, size_of::<RawEventC>());
    v
}

/// A baseline table scan and a complete walk of every slot, the second
/// with a missing entry in slot 337 when `missing`.
fn scan(missing: bool) -> Vec<u8> {
    let mut r = RawScan::zeroed();
    r.pgdir_shift = 39;
    r.page_offset_base = 0xffff_8880_0000_0000;
    r.vmalloc_base = 0xffff_c900_0000_0000;
    r.vmemmap_base = 0xffff_ea00_0000_0000;
    r.page_size = 64;
    r.core = raw::CORE_NEEDED;
    r.status = raw::SCAN_DONE;
    for slot in [273, 337, 402, 468, 511] {
        r.top[slot] = (0x1000 * slot as u64) | 0x67;
    }
    let table = r;
    r.ts_ns = 1_000_000;
    r.status |= raw::SCAN_WALKED;
    r.pgds = 30;
    r.slots = [u64::MAX; raw::SLOT_WORDS];
    r.nslots = HALF as u32;
    if missing {
        r.missing[337 - raw::KERNEL_HALF] = 3;
    }
    let mut v = vec![0];
    for s in [table, r, r] {
        let b = bytes_of(&s);
        v.extend_from_slice(&(b.len() as u16).to_le_bytes());
        v.extend_from_slice(&b);
    }
    assert!(size_of::<RawScan>() < usize::from(u16::MAX) && PTRS == 512);
    v
}

fn cli() -> Vec<Vec<u8>> {
    let mut v = vec![b"\0run\0--duration\x001s\0--json".to_vec()];
    for (i, value) in [
        &b"10s"[..],
        b"9464",
        b"100ms",
        b"50ms",
        b"10s",
        b"1000",
        b"4096",
    ]
    .iter()
    .enumerate()
    {
        let mut s = vec![1, i as u8];
        s.extend_from_slice(value);
        v.push(s);
    }
    v.push(b"\x01\x0c32,40-47".to_vec());
    v.push(b"\x01\x0ddax0.0,dax1.0".to_vec());
    v.push(b"\x020x200000000000:128M".to_vec());
    v.push(b"\x020x8000000000:2G:1G".to_vec());
    v
}
